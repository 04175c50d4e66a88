// Daemon: crunchd's life cycle around the Scheduler.
//
// Owns the io_context (the one coordination thread), the scheduler, the
// signal handling and the front-end that carries requests in. Start-up: the
// front-end starts listening, the worker processes start; the daemon counts as
// ready once both are done. SIGTERM/SIGINT drain: the scheduler refuses new
// tasks and lets accepted ones finish within [server] drain_grace_ms, the rest
// end with UNAVAILABLE, the workers are killed and reaped, the front-end shuts
// down and removes its sockets, Run() returns 0. A second signal ends the
// grace period at once. SIGHUP re-reads the configuration file and applies it
// without dropping tasks.
//
// The daemon does not know which transport the front-end speaks (gRPC today):
// it only starts and stops it.
//
// With [metrics] listen set, a Prometheus endpoint (MetricsServer) serves the
// scheduler's counters on the same thread.
//
// Under systemd (Type=notify) the life cycle is reported with sd_notify:
// READY=1 once ready, RELOADING=1/READY=1 around a reload, STOPPING=1 when the
// drain starts, a STATUS= line and the watchdog pings (SystemdNotifier).
//
// Thread safety: Run() on one thread; everything else happens on that thread.

#ifndef CRUNCH_DAEMON_DAEMON_H_
#define CRUNCH_DAEMON_DAEMON_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/signal_set.hpp"
#include "daemon/config.h"
#include "daemon/metrics_server.h"
#include "daemon/scheduler.h"
#include "daemon/systemd_notifier.h"

namespace crunch::daemon {

// What carries requests to the scheduler (the gRPC server).
class Frontend {
 public:
  virtual ~Frontend() = default;
  // Starts listening. Called on the daemon's thread before the workers start.
  virtual absl::Status Start() = 0;
  // The drain began: the scheduler refuses new tasks from now on (health
  // checks should say so). Called on the daemon's thread.
  virtual void Draining() {}
  // Stops listening, ends every open call and releases the listening sockets.
  // Called on the daemon's thread once every task has ended.
  virtual void Shutdown() = 0;
  // Where it listens, for logs.
  virtual std::string Describe() const = 0;
};

class Daemon {
 public:
  // `config` has been Finalize()d and its cpu.worker_path and server.listen
  // resolved; `default_listen` is what an empty server.listen resolves to.
  // `config_path` (may be empty) and `overrides` are kept for SIGHUP reloads.
  static absl::StatusOr<std::unique_ptr<Daemon>> Create(Config config, std::string config_path,
                                                        ConfigOverrides overrides,
                                                        std::string default_listen);

  boost::asio::io_context& io() { return io_; }
  Scheduler& scheduler() { return *scheduler_; }
  const Config& config() const { return config_; }
  std::chrono::steady_clock::time_point started() const { return started_; }

  // Serves until a drain completes. Returns the process exit status.
  int Run(Frontend* frontend);

 private:
  Daemon(Config config, std::string config_path, ConfigOverrides overrides,
         std::string default_listen);
  void WaitForSignal();
  void OnSignal(int signo);
  void Reload();

  boost::asio::io_context io_;
  Config config_;
  std::string config_path_;
  ConfigOverrides overrides_;
  std::string default_listen_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<MetricsServer> metrics_;     // Null unless [metrics] listen is set.
  std::unique_ptr<SystemdNotifier> notifier_;  // Created by Run().
  boost::asio::signal_set signals_;
  Frontend* frontend_ = nullptr;
  bool draining_ = false;
  std::chrono::steady_clock::time_point started_;
};

// Points spdlog's default logger at stderr with `format` ("text" or "json")
// and `level`; journald picks stderr up under systemd.
void ConfigureLogging(const std::string& level, const std::string& format);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_DAEMON_H_
