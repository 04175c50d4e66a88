// crunchctl: query crunchd and run tasks from a shell.

#include <CLI/CLI.hpp>
#include <cstdio>

#include "crunch/version.h"
#include "rpc/default_address.h"

int main(int argc, char** argv) {
  CLI::App app("crunchctl: query crunchd and run tasks on it", "crunchctl");
  app.set_version_flag("--version", std::string("crunchctl ") + crunch::kVersion);
  std::string address = crunch::rpc::DefaultAddress();
  app.add_option("--address", address, "crunchd's gRPC address")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return 0;
}
