// SystemdNotifier: tells systemd how crunchd is doing, over sd_notify(3).
//
// Under a `Type=notify` unit systemd passes NOTIFY_SOCKET (and WATCHDOG_USEC
// with `WatchdogSec=`); without them, as when crunchd runs from a shell, every
// call here does nothing. What is sent:
//   * READY=1 once crunchd listens and its workers are attached (Ready()),
//     and again after a reload;
//   * STATUS=<one line> with a live summary from the scheduler's Snapshot(),
//     refreshed every few seconds while it changes (`systemctl status`);
//   * RELOADING=1 while a SIGHUP reload runs, STOPPING=1 once draining starts;
//   * WATCHDOG=1 at half the watchdog interval, from a timer on the daemon's
//     io_context: if that thread wedges, the pings stop and systemd restarts
//     the service. That is the point of sending them from there.
//
// Thread safety: not thread-safe; every call on the io_context's thread.

#ifndef CRUNCH_DAEMON_SYSTEMD_NOTIFIER_H_
#define CRUNCH_DAEMON_SYSTEMD_NOTIFIER_H_

#include <chrono>
#include <string>

#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "daemon/scheduler.h"

namespace crunch::daemon {

// The STATUS= line for `snapshot`, e.g. "2/2 workers; cpu 1 running, 0 queued;
// io 0 running, 0 queued; 42 done, 1 failed".
std::string StatusLine(const SchedulerSnapshot& snapshot);

class SystemdNotifier {
 public:
  static constexpr std::chrono::seconds kStatusInterval{5};

  // Reads NOTIFY_SOCKET and WATCHDOG_USEC from the environment (leaving them
  // set). `scheduler` must outlive this object.
  SystemdNotifier(boost::asio::io_context& io, const Scheduler& scheduler);

  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // True if systemd listens (NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  // The ping interval, zero if systemd asked for no watchdog.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

  // Starts the watchdog pings, if systemd asked for them.
  void StartWatchdog();
  // READY=1 with the status line; starts the status refreshes.
  void Ready();
  // RELOADING=1 before a reload; Reloaded() sends READY=1 after it (whether
  // or not the new configuration was taken). Ignored before Ready() and once
  // stopping.
  void Reloading();
  void Reloaded();
  // STOPPING=1 with the status line. Later Ready()/Reloaded() are ignored.
  void Stopping();
  // Cancels the timers (the io_context may then run out of work).
  void Stop();

 private:
  void Notify(const std::string& message);
  void RefreshStatus();
  void ArmWatchdog();
  void ArmStatus();

  const Scheduler& scheduler_;
  const bool enabled_;
  std::chrono::microseconds watchdog_interval_{0};
  boost::asio::steady_timer watchdog_timer_;
  boost::asio::steady_timer status_timer_;
  std::string last_status_;
  bool ready_ = false;
  bool stopping_ = false;
  bool stopped_ = false;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_SYSTEMD_NOTIFIER_H_
