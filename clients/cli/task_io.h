// The bytes around a task: its request built from the command line (kind,
// -p key=value, --input), and its output written to stdout or --output.
//
// Output rules: with --output, or when stdout is a pipe or a file, the bytes
// are written as they are. On a terminal, text is printed with a newline added
// if it lacks one, and binary output (a NUL or invalid UTF-8) is replaced by
// "<N bytes of binary output; use --output FILE>" so it cannot garble the terminal.

#ifndef CRUNCH_CLIENTS_CLI_TASK_IO_H_
#define CRUNCH_CLIENTS_CLI_TASK_IO_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/cli/options.h"
#include "crunch/v1/crunch.pb.h"

namespace crunch::cli {

// INVALID_ARGUMENT naming the expected form (key=value) or the repeated key.
absl::StatusOr<std::map<std::string, std::string>> ParseParams(
    const std::vector<std::string>& params);

// The payload: the file `input`, stdin for "-", nothing for "". INVALID_ARGUMENT
// naming the file when it cannot be read.
absl::StatusOr<std::string> ReadInput(const std::string& input);

// The request for `task`; errors as above.
absl::StatusOr<crunch::v1::TaskRequest> BuildRequest(const TaskOptions& task);

// Writes a task's output by the rules above; returns the exit status (1 when
// `path` cannot be written).
int EmitOutput(const std::string& output, const std::string& path);

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_TASK_IO_H_
