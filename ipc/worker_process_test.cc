// The transport between this test (the daemon side) and real worker processes
// started with fork+exec (ipc_test_worker), including SIGKILL at any moment.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <random>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ipc/child_process.h"
#include "ipc/daemon_channel.h"
#include "ipc/segment.h"
#include "ipc/spawn_worker.h"
#include "ipc/testing/test_protocol.h"

namespace crunch::ipc {
namespace {

using ::testing::HasSubstr;
using namespace ::crunch::ipc::testing;

#ifdef CRUNCH_SANITIZED
constexpr uint64_t kStressMessages = 200'000;
constexpr int kRandomKills = 5;
#else
constexpr uint64_t kStressMessages = 10'000'000;
constexpr int kRandomKills = 25;
#endif
constexpr int kTimeoutMs = 10'000;
constexpr uint32_t kRingCapacity = 64;

std::string WorkerPath() { return CRUNCH_IPC_TEST_WORKER; }

// The daemon side: a segment, the arena allocator and one channel per slot.
class Transport {
 public:
  explicit Transport(uint32_t slots) {
    absl::StatusOr<Segment> s = Segment::Create({slots, kRingCapacity, 8 << 20});
    EXPECT_TRUE(s.ok()) << s.status();
    segment_.emplace(*std::move(s));
    arena_.emplace(segment_->layout().arena_bytes);
    for (uint32_t i = 0; i < slots; ++i) {
      absl::StatusOr<DaemonChannel> c = DaemonChannel::Create(&*segment_, i, &*arena_);
      EXPECT_TRUE(c.ok()) << c.status();
      channels_.push_back(*std::move(c));
    }
  }

  DaemonChannel& channel(uint32_t slot) { return channels_[slot]; }
  Segment& segment() { return *segment_; }
  ArenaAllocator& arena() { return *arena_; }

  ChildProcess Spawn(uint32_t slot, std::vector<std::string> args = {}) {
    SpawnOptions options;
    options.path = WorkerPath();
    options.args = std::move(args);
    absl::StatusOr<ChildProcess> child = SpawnWorker(channels_[slot], std::move(options));
    EXPECT_TRUE(child.ok()) << child.status();
    return *std::move(child);
  }

  // Waits for the worker's attach announcement (it rings the completion fd).
  bool WaitAttached(uint32_t slot) {
    DaemonChannel& c = channels_[slot];
    for (int waited = 0; !c.worker_attached() && waited < kTimeoutMs; waited += 10) {
      pollfd p{c.wakeup_fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
    }
    c.Woken();
    return c.worker_attached();
  }

 private:
  std::optional<Segment> segment_;
  std::optional<ArenaAllocator> arena_;
  std::vector<DaemonChannel> channels_;
};

// Submits self-checking echo payloads and checks what comes back.
class EchoTraffic {
 public:
  explicit EchoTraffic(uint64_t seed) : rng_(seed) {}

  // Fills the slot up to its capacity; returns false on a refused submit.
  bool Fill(DaemonChannel& c, uint64_t limit) {
    std::byte buffer[128];
    while (next_id_ < limit && c.in_flight() < c.capacity()) {
      std::span<std::byte> payload(buffer, kMinPayloadBytes + rng_() % (sizeof(buffer) - 15));
      FillPayload(next_id_, payload);
      SubmitResult r = c.Submit(next_id_, kEcho, payload, payload.size(), 0, /*ring=*/false);
      if (r != SubmitResult::kOk) return false;
      submitted_.push_back(next_id_++);
    }
    c.RingWorker();
    return true;
  }

  // Checks one completion: known task, good status, output is the transform.
  void Check(const Completion& c) {
    ASSERT_EQ(c.status, kStatusOk) << "task " << c.task_id;
    std::vector<std::byte> undone(c.output.size());
    EchoTransform(c.output, undone);
    std::optional<uint64_t> sequence = CheckPayload(undone);
    ASSERT_TRUE(sequence.has_value()) << "torn output for task " << c.task_id;
    ASSERT_EQ(*sequence, c.task_id);
    completed_.push_back(c.task_id);
  }

  uint64_t next_id() const { return next_id_; }
  std::vector<uint64_t>& submitted() { return submitted_; }
  std::vector<uint64_t>& completed() { return completed_; }

 private:
  std::mt19937_64 rng_;
  uint64_t next_id_ = 0;
  std::vector<uint64_t> submitted_;
  std::vector<uint64_t> completed_;
};

bool WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// Waits for completions the way the daemon's event loop does: spin, announce
// sleep, wait for the fd. A sleep that times out while a completion is already
// waiting is a lost wake-up; one with nothing waiting is a stuck worker.
::testing::AssertionResult AwaitCompletions(DaemonChannel& c, SpinPolicy spin = {}) {
  if (c.WaitForCompletions(spin, 0) == RingResult::kOk) return ::testing::AssertionSuccess();
  while (c.PrepareToSleep()) {
    const bool woke = WaitReadable(c.wakeup_fd(), kTimeoutMs);
    c.Woken();
    if (!woke) {
      if (c.WaitForCompletions({std::chrono::nanoseconds(0)}, 0) == RingResult::kOk) {
        return ::testing::AssertionFailure() << "lost wake-up: a completion waited unrung";
      }
      return ::testing::AssertionFailure() << "no completion within " << kTimeoutMs << " ms";
    }
  }
  return ::testing::AssertionSuccess();
}

void StopWorker(DaemonChannel& c, ChildProcess& child) {
  ASSERT_EQ(c.Submit(UINT64_MAX, kExit, {}, 0), SubmitResult::kOk);
  absl::StatusOr<int> status = child.Wait();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0) << DescribeWaitStatus(*status);
}

TEST(WorkerProcess, StressEveryMessageArrivesOnceInOrderChecksummed) {
  Transport t(1);
  ChildProcess worker =
      t.Spawn(0, {"--spin-ns=5000", "--pause-every=20000", "--max-pause-us=400", "--seed=11"});
  ASSERT_TRUE(t.WaitAttached(0));
  DaemonChannel& c = t.channel(0);
  EchoTraffic traffic(5);
  std::mt19937_64 rng(99);
  uint64_t expected = 0;
  const SpinPolicy spin{std::chrono::microseconds(5)};
  while (expected < kStressMessages) {
    ASSERT_TRUE(traffic.Fill(c, kStressMessages));
    if (rng() % 20000 == 0) ::usleep(rng() % 400);  // Lets the worker fall asleep.
    ASSERT_TRUE(AwaitCompletions(c, spin)) << "after task " << expected;
    absl::StatusOr<size_t> n = c.DrainCompletions([&](const Completion& done) {
      ASSERT_EQ(done.task_id, expected) << "out of order";
      traffic.Check(done);
      ++expected;
    });
    ASSERT_TRUE(n.ok()) << n.status();
  }
  EXPECT_EQ(traffic.completed().size(), kStressMessages);
  EXPECT_EQ(t.arena().bytes_in_use(), 0u);
  StopWorker(c, worker);
}

TEST(WorkerProcess, SleepOnlyPingPongLosesNoWakeUp) {
  Transport t(1);
  ChildProcess worker = t.Spawn(0, {"--spin-ns=0"});
  ASSERT_TRUE(t.WaitAttached(0));
  DaemonChannel& c = t.channel(0);
  const SpinPolicy no_spin{std::chrono::nanoseconds(0)};
  std::byte payload[64];
  for (uint64_t id = 0; id < 20'000; ++id) {
    FillPayload(id, payload);
    ASSERT_EQ(c.Submit(id, kEcho, payload, sizeof(payload)), SubmitResult::kOk);
    ASSERT_TRUE(AwaitCompletions(c, no_spin)) << "round " << id;
    size_t got = 0;
    ASSERT_TRUE(c.DrainCompletions([&](const Completion& done) {
                   EXPECT_EQ(done.task_id, id);
                   ++got;
                 }).ok());
    ASSERT_EQ(got, 1u);
  }
  StopWorker(c, worker);
}

TEST(WorkerProcess, KilledWhileWritingIsReclaimedAndReplaced) {
  Transport t(2);
  ChildProcess victim = t.Spawn(0);
  ChildProcess bystander = t.Spawn(1);
  ASSERT_TRUE(t.WaitAttached(0));
  ASSERT_TRUE(t.WaitAttached(1));
  DaemonChannel& a = t.channel(0);
  DaemonChannel& b = t.channel(1);

  // The victim starts a task that writes its 1 MiB output extent forever, with
  // two more tasks queued behind it.
  ASSERT_EQ(a.Submit(100, kWriteForever, {}, 1 << 20), SubmitResult::kOk);
  std::byte payload[32];
  FillPayload(101, payload);
  ASSERT_EQ(a.Submit(101, kEcho, payload, 32), SubmitResult::kOk);
  FillPayload(102, payload);
  ASSERT_EQ(a.Submit(102, kEcho, payload, 32), SubmitResult::kOk);
  // Once the worker took the request, it is writing.
  for (int i = 0; i < kTimeoutMs && t.segment().slot(0)->request.head.load() == 0; ++i) {
    ::usleep(1000);
  }
  ASSERT_EQ(t.segment().slot(0)->request.head.load(), 1u);
  ::usleep(20'000);
  ASSERT_TRUE(victim.Signal(SIGKILL).ok());

  // The daemon side learns of the death from the pidfd.
  ASSERT_TRUE(WaitReadable(victim.exit_fd(), kTimeoutMs));
  absl::StatusOr<int> status = victim.Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << DescribeWaitStatus(*status);

  // The other worker never noticed.
  EchoTraffic other(3);
  while (other.completed().size() < 1000) {
    ASSERT_TRUE(other.Fill(b, 1000));
    ASSERT_TRUE(AwaitCompletions(b));
    ASSERT_TRUE(b.DrainCompletions([&](const Completion& c) { other.Check(c); }).ok());
  }

  // Everything the victim held comes back, and its space with it.
  ASSERT_TRUE(a.DrainCompletions([](const Completion&) {}).ok());
  EXPECT_THAT(a.Reset(), ::testing::ElementsAre(100, 101, 102));
  EXPECT_EQ(t.arena().bytes_in_use(), 0u);

  // A replacement attaches to the same slot and works.
  ChildProcess replacement = t.Spawn(0);
  ASSERT_TRUE(t.WaitAttached(0));
  EchoTraffic again(4);
  while (again.completed().size() < 1000) {
    ASSERT_TRUE(again.Fill(a, 1000));
    ASSERT_TRUE(AwaitCompletions(a));
    ASSERT_TRUE(a.DrainCompletions([&](const Completion& c) { again.Check(c); }).ok());
  }
  StopWorker(a, replacement);
  StopWorker(b, bystander);
}

// SIGKILL at random moments under load: every submitted task ends exactly once
// (completed, or handed back by Reset), and the arena drains to zero each time.
TEST(WorkerProcess, RandomKillsLoseNothingAndLeakNothing) {
  Transport t(1);
  DaemonChannel& c = t.channel(0);
  std::mt19937_64 rng(2024);
  EchoTraffic traffic(8);
  std::vector<uint64_t> handed_back;
  for (int round = 0; round < kRandomKills; ++round) {
    ChildProcess worker = t.Spawn(0, {"--spin-ns=2000"});
    ASSERT_TRUE(t.WaitAttached(0));
    const size_t kill_after = traffic.completed().size() + rng() % 3000;
    const uint64_t limit = traffic.next_id() + 100'000;
    bool killed = false;
    while (!killed) {
      ASSERT_TRUE(traffic.Fill(c, limit));
      if (traffic.completed().size() >= kill_after) {
        ::usleep(rng() % 200);
        ASSERT_TRUE(worker.Signal(SIGKILL).ok());
        killed = true;
      }
      // After the kill, only collect whatever the worker published in time.
      if (!killed) {
        ASSERT_TRUE(AwaitCompletions(c));
      }
      ASSERT_TRUE(c.DrainCompletions([&](const Completion& done) { traffic.Check(done); }).ok());
    }
    ASSERT_TRUE(WaitReadable(worker.exit_fd(), kTimeoutMs));
    ASSERT_TRUE(worker.Wait().ok());
    ASSERT_TRUE(c.DrainCompletions([&](const Completion& done) { traffic.Check(done); }).ok());
    std::vector<uint64_t> held = c.Reset();
    handed_back.insert(handed_back.end(), held.begin(), held.end());
    ASSERT_EQ(t.arena().bytes_in_use(), 0u) << "round " << round;
  }
  std::multiset<uint64_t> ended(traffic.completed().begin(), traffic.completed().end());
  ended.insert(handed_back.begin(), handed_back.end());
  std::multiset<uint64_t> submitted(traffic.submitted().begin(), traffic.submitted().end());
  EXPECT_EQ(ended, submitted) << "a task was lost or ended twice";
}

TEST(WorkerProcess, WorkerRefusesSegmentFromAnotherBuild) {
  Transport t(1);
  t.segment().header_for_testing()->layout_version = kSegmentLayoutVersion + 1;
  int err[2];
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  SpawnOptions options;
  options.path = WorkerPath();
  options.fds = {{err[1], 2}};
  absl::StatusOr<ChildProcess> worker = SpawnWorker(t.channel(0), std::move(options));
  ASSERT_TRUE(worker.ok()) << worker.status();
  ::close(err[1]);
  absl::StatusOr<int> status = worker->Wait();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 78) << DescribeWaitStatus(*status);
  char text[512] = {};
  ASSERT_GT(::read(err[0], text, sizeof(text) - 1), 0);
  ::close(err[0]);
  EXPECT_THAT(text,
              HasSubstr(absl::StrCat("segment layout version ", kSegmentLayoutVersion + 1,
                                     ", this build understands version ", kSegmentLayoutVersion)));
  EXPECT_FALSE(t.channel(0).worker_attached());
}

// The daemon's event loop waits on the channels' wakeup fds; one thread serves
// many workers without parking a thread per worker.
TEST(WorkerProcess, OneAsioThreadServesSeveralWorkers) {
  constexpr uint32_t kWorkers = 3;
  constexpr uint64_t kPerWorker = 20'000;
  Transport t(kWorkers);
  std::vector<ChildProcess> workers;
  for (uint32_t i = 0; i < kWorkers; ++i) workers.push_back(t.Spawn(i, {"--spin-ns=0"}));
  for (uint32_t i = 0; i < kWorkers; ++i) ASSERT_TRUE(t.WaitAttached(i));

  boost::asio::io_context io;
  std::vector<boost::asio::posix::stream_descriptor> fds;
  std::vector<EchoTraffic> traffic;
  for (uint32_t i = 0; i < kWorkers; ++i) {
    fds.emplace_back(io, ::dup(t.channel(i).wakeup_fd()));
    traffic.emplace_back(i);
  }
  int done = 0;
  std::function<void(uint32_t)> arm = [&](uint32_t slot) {
    DaemonChannel& c = t.channel(slot);
    for (;;) {
      ASSERT_TRUE(c.DrainCompletions([&](const Completion& d) { traffic[slot].Check(d); }).ok());
      if (traffic[slot].completed().size() == kPerWorker) {
        ++done;
        return;
      }
      ASSERT_TRUE(traffic[slot].Fill(c, kPerWorker));
      if (c.PrepareToSleep()) break;
    }
    fds[slot].async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [&, slot](boost::system::error_code ec) {
                           ASSERT_FALSE(ec) << ec.message();
                           t.channel(slot).Woken();
                           arm(slot);
                         });
  };
  for (uint32_t i = 0; i < kWorkers; ++i) arm(i);
  boost::asio::steady_timer guard(io, std::chrono::milliseconds(60'000));
  guard.async_wait([&](boost::system::error_code ec) {
    if (!ec) io.stop();
  });
  while (done < static_cast<int>(kWorkers) && !io.stopped()) io.run_one();
  ASSERT_EQ(done, static_cast<int>(kWorkers)) << "timed out: a wake-up was lost";
  for (uint32_t i = 0; i < kWorkers; ++i) StopWorker(t.channel(i), workers[i]);
}

}  // namespace
}  // namespace crunch::ipc
