// crunchctl: query crunchd and run tasks from a shell. Parses the command line
// and hands over to the commands in clients/cli/commands.h; the exit status is
// documented in clients/cli/exit_codes.h and in `crunchctl --help`.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/options.h"
#include "crunch/version.h"
#include "rpc/default_address.h"

namespace {

using namespace crunch::cli;

// -p key=value: the form is checked here so a bad one is a usage error.
const CLI::Validator kKeyValue(
    [](std::string& p) -> std::string {
      const size_t eq = p.find('=');
      if (eq == std::string::npos || eq == 0) {
        return "expected key=value (e.g. -p n=30), got '" + p + "'";
      }
      return "";
    },
    "");

void AddTaskOptions(CLI::App* command, TaskOptions* task) {
  command->add_option("kind", task->kind, "what to run (see `crunchctl kinds`)")->required();
  command->add_option("-p,--param", task->params, "a parameter of the kind, repeatable")
      ->check(kKeyValue)
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  command->add_option("--input", task->input, "the payload: a file, or - for stdin")
      ->type_name("FILE|-");
  command
      ->add_option("--timeout", task->timeout_ms,
                   "the task's time limit in ms (default: the pool's)")
      ->type_name("MS");
  command->add_option("--priority", task->priority, "higher runs first (default 0)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("crunchctl: query crunchd and run tasks on it", "crunchctl");
  app.set_version_flag("--version", std::string("crunchctl ") + crunch::kVersion);
  app.footer(kExitStatusHelp);
  app.require_subcommand(1);
  app.fallthrough();  // Global options may follow the command too.

  GlobalOptions global{.address = crunch::rpc::DefaultAddress()};
  app.add_option("--address", global.address,
                 "crunchd's gRPC address: unix:PATH, host:port or any gRPC target; "
                 "a comma-separated list is balanced round-robin")
      ->capture_default_str();
  app.add_option("--deadline", global.deadline_ms,
                 "per call, in ms; 0 = none (default: none for run and wait, 5000 otherwise)")
      ->type_name("MS")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--token-file", global.security.token_file,
                 "send the bearer token in FILE with every call ([server] token_file)")
      ->type_name("FILE")
      ->envname("CRUNCH_TOKEN_FILE");
  app.add_flag("--tls", global.security.tls,
               "TCP addresses use TLS (implied by --tls-ca, --tls-cert); unix sockets never do");
  app.add_option("--tls-ca", global.security.tls_ca,
                 "PEM CAs to verify crunchd's certificate (default: the system's)")
      ->type_name("FILE");
  app.add_option("--tls-cert", global.security.tls_cert,
                 "PEM client certificate, for a crunchd with [server] tls_client_ca_file")
      ->type_name("FILE");
  app.add_option("--tls-key", global.security.tls_key, "the private key of --tls-cert")
      ->type_name("FILE");

  ShowOptions show;
  CLI::App* status = app.add_subcommand("status", "the daemon's workers, pools and counters");
  status->add_flag("--json", show.json, "print JSON (the .proto field names)");
  CLI::App* kinds = app.add_subcommand("kinds", "the kinds of task and their parameters");
  kinds->add_flag("--json", show.json, "print JSON (the .proto field names)");

  RunOptions run;
  CLI::App* run_cmd = app.add_subcommand(
      "run", "run a task and print its output (raw when stdout is not a terminal)");
  AddTaskOptions(run_cmd, &run.task);
  CLI::Option* output =
      run_cmd->add_option("--output", run.output, "write the output to FILE")->type_name("FILE");
  CLI::Option* repeat =
      run_cmd
          ->add_option("--repeat", run.repeat,
                       "run N copies over RunStream; print a summary instead of the output")
          ->type_name("N")
          ->check(CLI::PositiveNumber);
  run_cmd->add_option("--concurrency", run.concurrency, "with --repeat: tasks in flight at once")
      ->type_name("C")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1u << 20))
      ->needs(repeat);
  output->excludes(repeat);

  TaskOptions submit;
  CLI::App* submit_cmd = app.add_subcommand("submit", "queue a task and print its id");
  AddTaskOptions(submit_cmd, &submit);
  submit_cmd->add_option("--key", submit.idempotency_key,
                         "idempotency key: the same key returns the same task while it is kept");

  WaitOptions wait;
  CLI::App* wait_cmd = app.add_subcommand("wait", "wait for a submitted task and print its output");
  wait_cmd->add_option("id", wait.task, "the id `submit` printed (ID, or ID@ADDRESS with a list)")
      ->required();
  wait_cmd->add_option("--output", wait.output, "write the output to FILE")->type_name("FILE");

  std::string cancel_id;
  CLI::App* cancel = app.add_subcommand(
      "cancel", "cancel a task; prints the state it had: queued, running or done");
  cancel->add_option("id", cancel_id, "the id `submit` printed (ID, or ID@ADDRESS with a list)")
      ->required();

  TopOptions top;
  CLI::App* top_cmd = app.add_subcommand(
      "top", "live status on a terminal (q or Ctrl-C quits); elsewhere a summary per refresh");
  top_cmd->add_option("--count", top.count, "stop after N refreshes (default: never)")
      ->type_name("N");
  top_cmd->add_option("--interval", top.interval_ms, "between refreshes")
      ->type_name("MS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here with 0; every real parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  if (status->parsed()) return StatusCommand(global, show);
  if (kinds->parsed()) return KindsCommand(global, show);
  if (run_cmd->parsed()) return RunCommand(global, run);
  if (submit_cmd->parsed()) return SubmitCommand(global, submit);
  if (wait_cmd->parsed()) return WaitCommand(global, wait);
  if (cancel->parsed()) return CancelCommand(global, cancel_id);
  if (top_cmd->parsed()) return TopCommand(global, top);
  return kExitUsage;
}
