#include "daemon/systemd_notifier.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace crunch::daemon {
namespace {

// A datagram socket standing in for systemd's NOTIFY_SOCKET.
class FakeSystemd {
 public:
  FakeSystemd() {
    dir_ = std::filesystem::temp_directory_path() / ("notify-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "notify.sock").string();
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    ::unlink(path_.c_str());
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  ~FakeSystemd() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }

  // Every message received so far.
  std::vector<std::string> Messages() {
    std::vector<std::string> out;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd_, buf, sizeof(buf), 0)) > 0;) out.emplace_back(buf, n);
    return out;
  }

 private:
  std::filesystem::path dir_;
  std::string path_;
  int fd_ = -1;
};

class SystemdNotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.cpu.workers = 2;
    config_.cpu.arena_bytes = 4 << 20;
    config_.io.threads = 1;
    config_.io.data_dir = std::filesystem::temp_directory_path().string();
    // Never started (no Start()), so no worker serves; Create() runs the
    // worker once to list its kinds.
    config_.cpu.worker_path = CRUNCH_WORKER_PATH;
    absl::StatusOr<std::unique_ptr<Scheduler>> s = Scheduler::Create(io_, config_);
    ASSERT_TRUE(s.ok()) << s.status();
    scheduler_ = *std::move(s);
  }

  boost::asio::io_context io_;
  Config config_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST(StatusLine, SummarizesWorkersPoolsAndCounters) {
  SchedulerSnapshot snapshot;
  snapshot.workers = {{.state = "idle"}, {.state = "busy"}, {.state = "restarting"}};
  snapshot.pools = {{.name = "cpu", .busy = 1, .queued = 4},
                    {.name = "io", .busy = 0, .queued = 0}};
  snapshot.completed = 42;
  snapshot.failed = 1;

  EXPECT_EQ(StatusLine(snapshot),
            "2/3 workers; cpu 1 running, 4 queued; io 0 running, 0 queued; 42 done, 1 failed");
  snapshot.draining = true;
  EXPECT_EQ(StatusLine(snapshot).rfind("draining: 2/3 workers", 0), 0u);
}

TEST_F(SystemdNotifierTest, DoesNothingWithoutNotifySocket) {
  ::unsetenv("NOTIFY_SOCKET");
  SystemdNotifier notifier(io_, *scheduler_);

  notifier.Ready();
  notifier.Stopping();

  EXPECT_FALSE(notifier.enabled());
}

TEST_F(SystemdNotifierTest, SendsReadyWithStatusThenReloadingAndStopping) {
  FakeSystemd systemd;
  SystemdNotifier notifier(io_, *scheduler_);

  notifier.Reloading();  // Before Ready(): ignored.
  notifier.Ready();
  notifier.Reloading();
  notifier.Reloaded();
  notifier.Stopping();
  notifier.Reloaded();  // Once stopping: ignored.

  std::vector<std::string> messages = systemd.Messages();
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].rfind("READY=1\nSTATUS=0/2 workers; cpu 0 running", 0), 0u) << messages[0];
  EXPECT_EQ(messages[1].rfind("RELOADING=1\n", 0), 0u) << messages[1];
  EXPECT_EQ(messages[2].rfind("READY=1\n", 0), 0u) << messages[2];
  EXPECT_EQ(messages[3].rfind("STOPPING=1\nSTATUS=draining: ", 0), 0u) << messages[3];
}

TEST_F(SystemdNotifierTest, PingsTheWatchdogAtHalfItsInterval) {
  FakeSystemd systemd;
  ::setenv("WATCHDOG_USEC", "200000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  SystemdNotifier notifier(io_, *scheduler_);
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
  ASSERT_EQ(notifier.watchdog_interval(), std::chrono::milliseconds(200));

  notifier.StartWatchdog();
  io_.run_for(std::chrono::milliseconds(1050));
  notifier.Stop();

  // One at once, then every 100 ms: 11 in 1050 ms; fewer on a loaded machine,
  // never more.
  std::vector<std::string> messages = systemd.Messages();
  EXPECT_GE(messages.size(), 5u);
  EXPECT_LE(messages.size(), 11u);
  for (const std::string& m : messages) EXPECT_EQ(m, "WATCHDOG=1");
}

}  // namespace
}  // namespace crunch::daemon
