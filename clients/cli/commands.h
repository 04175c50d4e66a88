// crunchctl's commands. crunchctl_main.cc parses the command line into the
// option structs (options.h) and calls one of these; each returns the process's
// exit status (exit_codes.h) and prints errors itself.
//
//   status, kinds            commands/status.cc, commands/kinds.cc
//   run                      commands/run.cc; with --repeat, commands/batch.cc
//   submit, wait, cancel     commands/tasks.cc
//   top                      commands/top.cc

#ifndef CRUNCH_CLIENTS_CLI_COMMANDS_H_
#define CRUNCH_CLIENTS_CLI_COMMANDS_H_

#include <cstdint>

#include "clients/cli/options.h"

namespace crunch::cli {

// The daemon's status as a summary, or JSON.
int StatusCommand(const GlobalOptions& global, const ShowOptions& options);
// Every kind with its pool, description and parameters, or JSON.
int KindsCommand(const GlobalOptions& global, const ShowOptions& options);
// One task through Run, its output to stdout or a file; a batch when options.repeat > 0.
int RunCommand(const GlobalOptions& global, const RunOptions& options);
// options.repeat tasks over RunStream, options.concurrency in flight; prints a summary.
int BatchCommand(const GlobalOptions& global, const RunOptions& options);
// Queues a task; prints its id.
int SubmitCommand(const GlobalOptions& global, const TaskOptions& options);
// Waits for a submitted task; prints its output like run.
int WaitCommand(const GlobalOptions& global, const WaitOptions& options);
// Cancels a task; prints the state it had: queued, running or done.
int CancelCommand(const GlobalOptions& global, const std::string& task);
// The status, refreshed: a live screen on a terminal, else a summary per refresh.
int TopCommand(const GlobalOptions& global, const TopOptions& options);

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_COMMANDS_H_
