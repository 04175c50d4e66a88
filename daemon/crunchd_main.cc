// crunchd: the compute daemon. Parses options, loads the configuration and
// hands over to crunch::daemon::Daemon with the gRPC front-end.

#include <malloc.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "absl/synchronization/mutex.h"
#include "crunch/version.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log_format.h"
#include "rpc/default_address.h"
#include "rpc/grpc_frontend.h"

namespace {

// crunch_worker next to crunchd (the build tree), else where the package puts
// it: /usr/bin/crunchd -> /usr/libexec/crunchd/crunch_worker.
std::string DefaultWorkerPath() {
  std::error_code ec;
  const std::filesystem::path dir =
      std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  const std::filesystem::path next_to_self = dir / "crunch_worker";
  const std::filesystem::path installed = dir / "../libexec/crunchd/crunch_worker";
  if (!std::filesystem::exists(next_to_self, ec) && std::filesystem::exists(installed, ec)) {
    return installed.lexically_normal().string();
  }
  return next_to_self.string();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace crunch;
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock
  // detector on: every lock gRPC takes then walks a lock graph (about 10% of
  // the daemon's instructions per task under callgrind, bench suite 8).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Keep freed memory for reuse rather than handing it back at once. gRPC
  // reads a request into slices of up to a few MiB and frees them once it is
  // decoded; with glibc's defaults that memory is unmapped or trimmed, and the
  // next large request faults every page in afresh: about 40% of the daemon's
  // CPU per 64 MiB Run (bench suite 6). Fixed thresholds (which also stop
  // glibc's dynamic ones) let each malloc arena keep up to 64 MiB free at its
  // top; blocks of 32 MiB and more still come from mmap and are unmapped on
  // free (a large payload's string: rpc/internal/task_request_decoder.h).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  CLI::App app(
      "crunchd: a compute daemon. CPU tasks run in worker processes over shared memory, "
      "blocking I/O tasks on a thread pool, all called over gRPC (crunch.v1.Crunch).",
      "crunchd");
  app.set_version_flag("--version", std::string("crunchd ") + kVersion);
  std::string config_path;
  daemon::ConfigOverrides overrides;
  bool check_config = false;
  app.add_option("--config", config_path, "TOML configuration file (default: built-in defaults)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", overrides.listen,
                 "address to serve on, repeatable: unix:/path or host:port (default: " +
                     rpc::DefaultAddress() + ")");
  app.add_option("--workers", overrides.workers, "worker processes (default: one per core)");
  app.add_option("--io-threads", overrides.io_threads, "I/O threads (default: 16)");
  app.add_option("--log-level", overrides.log_level,
                 "trace, debug, info, warn, error, critical or off (default: info)");
  app.add_option("--metrics-listen", overrides.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (default: off; "
                 "[metrics] listen)");
  app.add_flag("--check-config", check_config,
               "validate the configuration and flags, print the result and exit");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<daemon::Config> config =
      config_path.empty() ? daemon::Config() : daemon::LoadConfigFile(config_path);
  if (config.ok()) {
    if (absl::Status s = daemon::Finalize(&*config, overrides); !s.ok()) config = s;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "crunchd: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (config->server.listen.empty()) config->server.listen = {rpc::DefaultAddress()};
  if (config->cpu.worker_path.empty()) config->cpu.worker_path = DefaultWorkerPath();
  if (check_config) {
    std::printf("%s", daemon::DescribeConfig(*config).c_str());
    std::fprintf(stderr, "crunchd: configuration OK\n");
    return 0;
  }

  daemon::ConfigureLogging(config->log.level, config->log.format);
  spdlog::info("crunchd {} starting (pid {})", kVersion, ::getpid());
  absl::StatusOr<std::unique_ptr<daemon::Daemon>> d =
      daemon::Daemon::Create(*config, config_path, overrides, rpc::DefaultAddress());
  if (!d.ok()) {
    spdlog::critical("cannot start: {}", d.status().message());
    return 1;
  }
  rpc::GrpcFrontend frontend((*d)->io(), (*d)->scheduler(), *config, config->server.listen,
                             (*d)->started());
  return (*d)->Run(&frontend);
}
