#include "daemon/daemon.h"

#include <signal.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "daemon/log_format.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace crunch::daemon {

namespace {

// %j: the message as the inside of a JSON string (quotes, backslashes and
// control characters escaped), so every log line stays one valid JSON object.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            dest.append(std::string_view(buf));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

void ConfigureLogging(const std::string& level, const std::string& format) {
  auto logger = spdlog::stderr_logger_mt("crunchd");
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","pid":%P,"msg":"%j"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %L %v");
  }
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Create(Config config, std::string config_path,
                                                       ConfigOverrides overrides,
                                                       std::string default_listen) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(config), std::move(config_path),
                                       std::move(overrides), std::move(default_listen)));
  // file.* tasks live under the data directory; make sure it exists.
  std::error_code ec;
  std::filesystem::create_directories(d->config_.io.data_dir, ec);
  if (ec) {
    spdlog::warn("cannot create [io] data_dir {}: {}; file.* tasks will fail",
                 d->config_.io.data_dir, ec.message());
  }
  absl::StatusOr<std::unique_ptr<Scheduler>> scheduler = Scheduler::Create(d->io_, d->config_);
  if (!scheduler.ok()) return scheduler.status();
  d->scheduler_ = *std::move(scheduler);
  return d;
}

Daemon::Daemon(Config config, std::string config_path, ConfigOverrides overrides,
               std::string default_listen)
    : config_(std::move(config)),
      config_path_(std::move(config_path)),
      overrides_(std::move(overrides)),
      default_listen_(std::move(default_listen)),
      signals_(io_, SIGTERM, SIGINT, SIGHUP),
      started_(std::chrono::steady_clock::now()) {
  ::signal(SIGPIPE, SIG_IGN);
}

int Daemon::Run(Frontend* frontend) {
  frontend_ = frontend;
  notifier_ = std::make_unique<SystemdNotifier>(io_, *scheduler_);
  notifier_->StartWatchdog();
  if (absl::Status s = frontend_->Start(); !s.ok()) {
    spdlog::critical("cannot start: {}", s.message());
    return 1;
  }
  if (!config_.metrics.listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics = MetricsServer::Start(
        io_, config_.metrics.listen,
        [this] { return RenderMetrics(scheduler_->task_metrics(), scheduler_->Snapshot()); });
    if (!metrics.ok()) {
      spdlog::critical("cannot start: {}", metrics.status().message());
      frontend_->Shutdown();
      return 1;
    }
    metrics_ = *std::move(metrics);
    spdlog::info("metrics at {}", metrics_->Describe());
  }
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = scheduler_->Start([this, start] {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    spdlog::info("ready: {} worker process(es), {} I/O thread(s), listening on {} ({} ms)",
                 config_.cpu.workers, config_.io.threads, frontend_->Describe(), ms.count());
    notifier_->Ready();
  });
  if (!s.ok()) {
    spdlog::critical("cannot start the worker processes: {}", s.message());
    frontend_->Shutdown();
    return 1;
  }
  WaitForSignal();
  io_.run();
  spdlog::info("stopped");
  return 0;
}

void Daemon::WaitForSignal() {
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (ec) return;
    OnSignal(signo);
    WaitForSignal();
  });
}

void Daemon::OnSignal(int signo) {
  if (signo == SIGHUP) {
    notifier_->Reloading();
    Reload();
    notifier_->Reloaded();
    return;
  }
  if (draining_) {
    spdlog::warn("{} again: ending the drain now", strsignal(signo));
    scheduler_->Drain(std::chrono::milliseconds(0), nullptr);
    return;
  }
  draining_ = true;
  spdlog::info("{}: draining", strsignal(signo));
  notifier_->Stopping();
  frontend_->Draining();
  scheduler_->Drain(std::chrono::milliseconds(config_.server.drain_grace_ms), [this] {
    notifier_->Stop();
    if (metrics_) metrics_->Stop();
    frontend_->Shutdown();
    signals_.cancel();
    io_.stop();
  });
}

void Daemon::Reload() {
  if (config_path_.empty()) {
    spdlog::info("SIGHUP: no configuration file (--config) to reload");
    return;
  }
  absl::StatusOr<Config> fresh = LoadConfigFile(config_path_);
  if (fresh.ok()) {
    if (absl::Status s = Finalize(&*fresh, overrides_); !s.ok()) fresh = s;
  }
  if (!fresh.ok()) {
    spdlog::error("SIGHUP: keeping the running configuration: {}", fresh.status().message());
    return;
  }
  // Resolved once at start (crunchd_main.cc); the running workers came from it.
  fresh->cpu.worker_path = config_.cpu.worker_path;
  if (fresh->server.listen.empty()) fresh->server.listen = {default_listen_};
  scheduler_->Reload(*fresh);
  spdlog::set_level(spdlog::level::from_str(fresh->log.level));
  config_ = *std::move(fresh);
  spdlog::info("SIGHUP: configuration reloaded from {}", config_path_);
}

}  // namespace crunch::daemon
