// The options of crunchctl's commands, filled by crunchctl_main.cc's CLI11
// parser and read by the commands (commands/commands.h). Plain values.

#ifndef CRUNCH_CLIENTS_CLI_OPTIONS_H_
#define CRUNCH_CLIENTS_CLI_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

namespace crunch::cli {

// How to prove who we are: TLS for TCP targets, a bearer token for every call.
struct SecurityOptions {
  std::string token_file;  // --token-file (or $CRUNCH_TOKEN_FILE); "" = no token.
  bool tls = false;        // --tls: TCP targets use TLS (implied by the three below).
  std::string tls_ca;      // --tls-ca: PEM CAs to verify crunchd's certificate ("" = system's).
  std::string tls_cert;    // --tls-cert / --tls-key: our client certificate, if crunchd asks.
  std::string tls_key;
};

struct GlobalOptions {
  std::string address;
  // Per call, in ms; 0 = none; -1 = the command's default.
  int64_t deadline_ms = -1;
  SecurityOptions security;
};

// What a task is: shared by run, run --repeat and submit.
struct TaskOptions {
  std::string kind;
  std::vector<std::string> params;  // "key=value", as given to -p.
  std::string input;                // A file, "-" for stdin, "" for an empty payload.
  uint32_t timeout_ms = 0;
  int32_t priority = 0;
  std::string idempotency_key;
};

struct RunOptions {
  TaskOptions task;
  std::string output;   // A file for the task's output; "" for stdout.
  uint64_t repeat = 0;  // > 0: a batch of this many tasks over RunStream.
  uint32_t concurrency = 1;
};

struct ShowOptions {
  bool json = false;
};

struct WaitOptions {
  std::string task;  // "ID" or "ID@ADDRESS", as submit printed it.
  std::string output;
};

struct TopOptions {
  uint64_t count = 0;  // Refreshes before exiting; 0 = until q, Ctrl-C or a signal.
  uint32_t interval_ms = 1000;
};

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_OPTIONS_H_
