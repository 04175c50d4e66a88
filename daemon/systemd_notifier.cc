#include "daemon/systemd_notifier.h"

#include <systemd/sd-daemon.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/log_format.h"

namespace crunch::daemon {

std::string StatusLine(const SchedulerSnapshot& snapshot) {
  size_t attached = 0;
  for (const WorkerSnapshot& w : snapshot.workers) {
    if (w.state == "idle" || w.state == "busy") ++attached;
  }
  std::string line = snapshot.draining ? "draining: " : "";
  absl::StrAppend(&line, attached, "/", snapshot.workers.size(), " workers");
  for (const PoolSnapshot& pool : snapshot.pools) {
    absl::StrAppend(&line, "; ", pool.name, " ", pool.busy, " running, ", pool.queued, " queued");
  }
  absl::StrAppend(&line, "; ", snapshot.completed, " done, ", snapshot.failed, " failed");
  return line;
}

SystemdNotifier::SystemdNotifier(boost::asio::io_context& io, const Scheduler& scheduler)
    : scheduler_(scheduler),
      enabled_(std::getenv("NOTIFY_SOCKET") != nullptr),
      watchdog_timer_(io),
      status_timer_(io) {
  uint64_t usec = 0;
  // > 0: systemd wants pings from this process (WATCHDOG_PID matches).
  if (sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0 && usec > 0) {
    watchdog_interval_ = std::chrono::microseconds(usec);
  }
}

void SystemdNotifier::Notify(const std::string& message) {
  if (!enabled_) return;
  if (int r = sd_notify(/*unset_environment=*/0, message.c_str()); r < 0) {
    spdlog::warn("sd_notify failed: {}", std::strerror(-r));
  }
}

void SystemdNotifier::StartWatchdog() {
  if (watchdog_interval_.count() == 0 || stopped_) return;
  spdlog::info("systemd watchdog: {} ms, pinging every {} ms", watchdog_interval_.count() / 1000,
               watchdog_interval_.count() / 2000);
  Notify("WATCHDOG=1");
  ArmWatchdog();
}

void SystemdNotifier::ArmWatchdog() {
  watchdog_timer_.expires_after(watchdog_interval_ / 2);
  watchdog_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    Notify("WATCHDOG=1");
    ArmWatchdog();
  });
}

void SystemdNotifier::Ready() {
  if (stopping_ || stopped_) return;
  last_status_ = StatusLine(scheduler_.Snapshot());
  Notify(absl::StrCat("READY=1\nSTATUS=", last_status_));
  if (!ready_ && enabled_) ArmStatus();
  ready_ = true;
}

void SystemdNotifier::Reloading() {
  if (!ready_ || stopping_) return;
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  // MONOTONIC_USEC lets systemd >= 253 tie the reload to this message.
  Notify(absl::StrCat("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=",
                      now.count()));
}

void SystemdNotifier::Reloaded() {
  if (!ready_ || stopping_) return;
  Ready();
}

void SystemdNotifier::Stopping() {
  if (stopping_) return;
  stopping_ = true;
  // Called as the drain begins, perhaps before the scheduler knows.
  SchedulerSnapshot snapshot = scheduler_.Snapshot();
  snapshot.draining = true;
  last_status_ = StatusLine(snapshot);
  Notify(absl::StrCat("STOPPING=1\nSTATUS=", last_status_));
}

void SystemdNotifier::Stop() {
  stopped_ = true;
  watchdog_timer_.cancel();
  status_timer_.cancel();
}

void SystemdNotifier::ArmStatus() {
  status_timer_.expires_after(kStatusInterval);
  status_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    RefreshStatus();
    ArmStatus();
  });
}

void SystemdNotifier::RefreshStatus() {
  std::string line = StatusLine(scheduler_.Snapshot());
  if (line == last_status_) return;
  last_status_ = std::move(line);
  Notify(absl::StrCat("STATUS=", last_status_));
}

}  // namespace crunch::daemon
