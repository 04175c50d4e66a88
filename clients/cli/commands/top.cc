// crunchctl top: the daemon's status, refreshed every --interval ms.
//
// On a terminal: a live screen (terminal.h) with the rates since the previous
// refresh, until q, Ctrl-C, SIGTERM or --count refreshes; a failed refresh is
// shown on the screen and retried, so top survives a daemon restart. Anywhere
// else (a pipe, a file, a log): the plain status summary after a separator
// line per refresh, until killed or --count refreshes.

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <thread>

#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/format.h"
#include "clients/cli/session.h"
#include "clients/cli/terminal.h"
#include "fmt/format.h"

namespace crunch::cli {
namespace {

using SteadyClock = std::chrono::steady_clock;

grpc::Status FetchStatus(const Session& session, crunch::v1::DaemonStatus* status) {
  grpc::ClientContext context;
  session.SetDeadline(&context);
  return session.stub().Status(&context, {}, status);
}

std::string LocalTime(const char* format) {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), format, &tm);
  return buf;
}

int TopPlain(const Session& session, const TopOptions& options) {
  int rc = kExitOk;
  SteadyClock::time_point next = SteadyClock::now();
  for (uint64_t n = 0; options.count == 0 || n < options.count; ++n) {
    if (n > 0) {
      next += std::chrono::milliseconds(options.interval_ms);
      std::this_thread::sleep_until(next);
    }
    crunch::v1::DaemonStatus status;
    const grpc::Status s = FetchStatus(session, &status);
    std::printf("--- crunchd status at %s ---\n", LocalTime("%Y-%m-%d %H:%M:%S").c_str());
    if (s.ok()) {
      std::fputs(FormatStatus(status).c_str(), stdout);
      rc = kExitOk;
    } else {
      rc = session.Fail(s);
    }
    std::fflush(stdout);
  }
  return rc;
}

// "1234.5 tasks/s done (1200.0 ok, 34.5 failed), 1240.0 accepted/s" between two snapshots.
std::string Rates(const crunch::v1::DaemonStatus& before, const crunch::v1::DaemonStatus& now) {
  if (now.uptime_ms() <= before.uptime_ms() || now.pid() != before.pid()) return "rates: -";
  const double seconds = static_cast<double>(now.uptime_ms() - before.uptime_ms()) / 1000.0;
  auto rate = [&](uint64_t a, uint64_t b) {
    return b >= a ? static_cast<double>(b - a) / seconds : 0.0;
  };
  const crunch::v1::Counters& a = before.counters();
  const crunch::v1::Counters& b = now.counters();
  const double ok = rate(a.completed(), b.completed());
  const double failed = rate(a.failed(), b.failed());
  return fmt::format("rates: {:.1f} tasks/s done ({:.1f} ok, {:.1f} failed), {:.1f} accepted/s",
                     ok + failed, ok, failed, rate(a.accepted(), b.accepted()));
}

enum class Event { kRefresh, kRedraw, kQuit };

// Waits until `when`, a key or a signal.
Event WaitForEvent(RawTerminal& terminal, int signal_fd, SteadyClock::time_point when) {
  bool keys = terminal.reads_keys();
  while (true) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(when - SteadyClock::now());
    if (left.count() <= 0) return Event::kRefresh;
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {keys ? terminal.in_fd() : -1, POLLIN, 0}};
    if (::poll(fds, 2, static_cast<int>(left.count())) <= 0) continue;  // Timeout or EINTR.
    if (fds[0].revents & POLLIN) {
      char signal = 0;
      if (::read(signal_fd, &signal, 1) == 1 && signal == SIGWINCH) return Event::kRedraw;
      return Event::kQuit;
    }
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      char key = 0;
      if (::read(terminal.in_fd(), &key, 1) != 1) {
        keys = false;  // End of input: only time and signals from now on.
        continue;
      }
      if (key == 'q' || key == 'Q') return Event::kQuit;
      if (key == ' ' || key == 'r') return Event::kRefresh;
    }
  }
}

int TopLive(const Session& session, const TopOptions& options, const std::string& address) {
  std::unique_ptr<SignalPipe> signals = SignalPipe::Install({SIGINT, SIGTERM, SIGHUP, SIGWINCH});
  if (signals == nullptr) return TopPlain(session, options);
  std::unique_ptr<RawTerminal> terminal = RawTerminal::Enter(STDIN_FILENO, STDOUT_FILENO);
  if (terminal == nullptr) return TopPlain(session, options);

  std::optional<crunch::v1::DaemonStatus> previous;
  std::string screen;
  SteadyClock::time_point next = SteadyClock::now();
  for (uint64_t n = 0; options.count == 0 || n < options.count; ++n) {
    crunch::v1::DaemonStatus status;
    const grpc::Status s = FetchStatus(session, &status);
    screen = fmt::format("crunchctl top - {} - {} - every {:.1f} s - {}\n", address,
                         LocalTime("%H:%M:%S"), options.interval_ms / 1000.0,
                         terminal->reads_keys() ? "q: quit, space: refresh" : "Ctrl-C: quit");
    if (s.ok()) {
      screen += (previous ? Rates(*previous, status) : std::string("rates: -")) + "\n\n";
      screen += FormatStatus(status);
      previous = status;
    } else {
      screen += fmt::format("{}: {} (retrying)\n\n", CodeName(s.error_code()), s.error_message());
      if (previous) screen += "Last status:\n" + FormatStatus(*previous);
    }
    terminal->Draw(screen);
    if (options.count != 0 && n + 1 >= options.count) break;

    next = std::max(next + std::chrono::milliseconds(options.interval_ms), SteadyClock::now());
    Event event;
    while ((event = WaitForEvent(*terminal, signals->fd(), next)) == Event::kRedraw) {
      terminal->Draw(screen);
    }
    if (event == Event::kQuit) break;
    next = SteadyClock::now();
  }
  return kExitOk;
}

}  // namespace

int TopCommand(const GlobalOptions& global, const TopOptions& options) {
  if (options.interval_ms == 0) return ReportUsage("--interval must be at least 1 ms");
  std::optional<Session> session;
  if (int rc = Session::Start(global, kQueryDeadlineMs, &session); rc != kExitOk) return rc;
  if (::isatty(STDOUT_FILENO) == 1) return TopLive(*session, options, global.address);
  return TopPlain(*session, options);
}

}  // namespace crunch::cli
