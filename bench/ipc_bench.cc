// ipc_bench: the worker transport against the kernel's own IPC, between two
// real processes (this one and an exec'd ipc_test_worker), 64-byte messages.
//
//   BM_RingRoundTrip/spin      ring round trip, both sides spinning
//   BM_RingRoundTrip/sleep     ring round trip, both sides sleeping at once
//   BM_PipeRoundTrip           baseline: a pipe each way, both sides blocking in read()
//   BM_SocketpairRoundTrip     baseline: one Unix stream socketpair
//   BM_RingRoundTripEventLoop  ring round trip, this side waiting as crunchd does
//   BM_PipeRoundTripEventLoop  baseline for it: a pipe each way, waited for the same way
//   BM_RingThroughput          one-way descriptors per second, published in batches
//   BM_CacheLinePingPong       the floor: two processes bouncing one shared cache line
//                              (no ring, no payload), i.e. what the two vCPUs can do
//
// What each side does per round trip when it sleeps (nobody spins):
//   ring/sleep      this side: Submit() (its Ring() is one FUTEX_WAKE), then
//                   WaitForCompletions() blocks in one FUTEX_WAIT; the worker:
//                   Receive() blocks in one FUTEX_WAIT, Complete() is one
//                   FUTEX_WAKE. Four system calls, like the pipe baseline's
//                   write(), read(), read(), write(): each side sleeps in a single
//                   blocking call, so this compares the transports, not the waits.
//   ring/event loop this side: Submit(), PrepareToSleep(), epoll_wait() on
//                   wakeup_fd() (registered once, edge-triggered, as Asio does),
//                   Woken() (one read()); the worker as above, but Complete()
//                   writes the eventfd. crunchd's own cost; compare it with
//   pipe/event loop this side: write(), epoll_wait() on the reply pipe, read();
//                   the child blocks in read() as in BM_PipeRoundTrip.
//
//   build/bin/ipc_bench --benchmark_format=json
//
// docs/benchmarks.md is written from this output by bench/ipc_report.py.

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "ipc/arena_allocator.h"
#include "ipc/child_process.h"
#include "ipc/daemon_channel.h"
#include "ipc/segment.h"
#include "ipc/spawn_worker.h"
#include "ipc/testing/test_protocol.h"

namespace crunch::ipc {
namespace {

constexpr size_t kMessageBytes = 64;
// "Spin" means spin for as long as a benchmark runs; "sleep" means never spin.
constexpr SpinPolicy kSpinForever{std::chrono::seconds(10)};
constexpr SpinPolicy kNoSpin{std::chrono::nanoseconds(0)};

[[noreturn]] void Die(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "ipc_bench: %s: %s\n", what, status.ToString().c_str());
  std::exit(1);
}

// A segment with one slot and a worker attached to it.
struct RingPair {
  RingPair(uint32_t ring_capacity, std::vector<std::string> worker_args) {
    absl::StatusOr<Segment> s = Segment::Create({1, ring_capacity, 1 << 20});
    if (!s.ok()) Die("segment", s.status());
    segment.emplace(*std::move(s));
    arena.emplace(segment->layout().arena_bytes);
    absl::StatusOr<DaemonChannel> c = DaemonChannel::Create(&*segment, 0, &*arena);
    if (!c.ok()) Die("channel", c.status());
    channel.emplace(*std::move(c));
    SpawnOptions options;
    options.path = CRUNCH_IPC_TEST_WORKER;
    options.args = std::move(worker_args);
    absl::StatusOr<ChildProcess> child = SpawnWorker(*channel, std::move(options));
    if (!child.ok()) Die("spawn", child.status());
    worker.emplace(*std::move(child));
    for (int i = 0; i < 1000 && !channel->worker_attached(); ++i) {
      pollfd p{channel->wakeup_fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
    }
    if (!channel->worker_attached()) Die("attach", absl::DeadlineExceededError("10 s"));
    channel->Woken();
  }
  ~RingPair() {
    if (!channel->worker_attached()) return;
    channel->Submit(UINT64_MAX, testing::kExit, {}, 0);
    (void)worker->Wait();
  }

  std::optional<Segment> segment;
  std::optional<ArenaAllocator> arena;
  std::optional<DaemonChannel> channel;  // Destroyed before the arena it uses.
  std::optional<ChildProcess> worker;
};

void BM_RingRoundTrip(benchmark::State& state, bool spin) {
  const SpinPolicy policy = spin ? kSpinForever : kNoSpin;
  RingPair pair(64, {spin ? "--spin-ns=10000000000" : "--spin-ns=0"});
  DaemonChannel& c = *pair.channel;
  std::byte message[kMessageBytes] = {};
  std::byte reply[kMessageBytes];
  uint64_t id = 0;
  for (auto _ : state) {
    c.Submit(id++, testing::kCopy, message, kMessageBytes);
    if (c.WaitForCompletions(policy, 10'000) != RingResult::kOk) {
      state.SkipWithError("no completion within 10 s");
      break;
    }
    (void)c.DrainCompletions(
        [&](const Completion& done) { std::memcpy(reply, done.output.data(), sizeof(reply)); });
    benchmark::DoNotOptimize(reply);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_RingRoundTrip, spin, true)->UseRealTime();
BENCHMARK_CAPTURE(BM_RingRoundTrip, sleep, false)->UseRealTime();

// Waits in epoll_wait() until `fd` is readable. The fd is registered once and
// edge-triggered, as Asio's reactor registers a descriptor.
class EpollWaiter {
 public:
  explicit EpollWaiter(int fd) : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    epoll_event e{};
    e.events = EPOLLIN | EPOLLET;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &e) != 0) std::abort();
  }
  ~EpollWaiter() { ::close(epoll_fd_); }
  bool Wait(int timeout_ms) {
    epoll_event e;
    for (;;) {
      int n = ::epoll_wait(epoll_fd_, &e, 1, timeout_ms);
      if (n >= 0) return n == 1;
      if (errno != EINTR) return false;
    }
  }

 private:
  int epoll_fd_;
};

void BM_RingRoundTripEventLoop(benchmark::State& state) {
  RingPair pair(64, {"--spin-ns=0"});
  DaemonChannel& c = *pair.channel;
  EpollWaiter waiter(c.wakeup_fd());
  std::byte message[kMessageBytes] = {};
  std::byte reply[kMessageBytes];
  uint64_t id = 0;
  for (auto _ : state) {
    c.Submit(id++, testing::kCopy, message, kMessageBytes);
    while (c.PrepareToSleep()) {
      const bool woke = waiter.Wait(10'000);
      c.Woken();
      if (!woke) {
        state.SkipWithError("no completion within 10 s");
        return;
      }
    }
    (void)c.DrainCompletions(
        [&](const Completion& done) { std::memcpy(reply, done.output.data(), sizeof(reply)); });
    benchmark::DoNotOptimize(reply);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RingRoundTripEventLoop)->UseRealTime();

// Round trips over fds: write 64 bytes, read 64 back; with `waiter`, wait
// for readability before each read.
void FdRoundTrips(benchmark::State& state, int out_fd, int in_fd, EpollWaiter* waiter = nullptr) {
  char message[kMessageBytes] = {};
  for (auto _ : state) {
    if (::write(out_fd, message, sizeof(message)) != sizeof(message)) {
      state.SkipWithError("write failed");
      break;
    }
    if (waiter != nullptr && !waiter->Wait(10'000)) {
      state.SkipWithError("no reply within 10 s");
      break;
    }
    size_t got = 0;
    while (got < sizeof(message)) {
      ssize_t n = ::read(in_fd, message + got, sizeof(message) - got);
      if (n <= 0) {
        state.SkipWithError("read failed");
        return;
      }
      got += n;
    }
    benchmark::DoNotOptimize(message);
  }
  state.SetItemsProcessed(state.iterations());
}

ChildProcess SpawnFdEcho(const char* mode, std::vector<std::pair<int, int>> fds) {
  SpawnOptions options;
  options.path = CRUNCH_IPC_TEST_WORKER;
  options.args = {std::string("--mode=") + mode};
  options.fds = std::move(fds);
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(options);
  if (!child.ok()) Die("spawn", child.status());
  return *std::move(child);
}

void BM_PipeRoundTrip(benchmark::State& state) {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) std::abort();
  ChildProcess child = SpawnFdEcho("pipe", {{to_child[0], 3}, {from_child[1], 4}});
  ::close(to_child[0]);
  ::close(from_child[1]);
  FdRoundTrips(state, to_child[1], from_child[0]);
  ::close(to_child[1]);  // EOF: the child exits.
  ::close(from_child[0]);
  (void)child.Wait();
}
BENCHMARK(BM_PipeRoundTrip)->UseRealTime();

void BM_PipeRoundTripEventLoop(benchmark::State& state) {
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) std::abort();
  ChildProcess child = SpawnFdEcho("pipe", {{to_child[0], 3}, {from_child[1], 4}});
  ::close(to_child[0]);
  ::close(from_child[1]);
  {
    EpollWaiter waiter(from_child[0]);
    FdRoundTrips(state, to_child[1], from_child[0], &waiter);
  }
  ::close(to_child[1]);  // EOF: the child exits.
  ::close(from_child[0]);
  (void)child.Wait();
}
BENCHMARK(BM_PipeRoundTripEventLoop)->UseRealTime();

void BM_SocketpairRoundTrip(benchmark::State& state) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) std::abort();
  ChildProcess child = SpawnFdEcho("socket", {{sv[1], 3}});
  ::close(sv[1]);
  FdRoundTrips(state, sv[0], sv[0]);
  ::close(sv[0]);
  (void)child.Wait();
}
BENCHMARK(BM_SocketpairRoundTrip)->UseRealTime();

// One-way: this process publishes descriptors in batches straight into the
// request ring; the worker (--mode=sink) consumes them, checking that task ids
// count up. Measured until the worker has taken the last one.
void BM_RingThroughput(benchmark::State& state) {
  constexpr uint32_t kCapacity = 1024;
  const int batch = static_cast<int>(state.range(0));
  RingPair pair(kCapacity, {"--mode=sink", "--spin-ns=10000000000"});
  SlotControl* slot = pair.segment->slot(0);
  SpscProducer<Descriptor> producer(&slot->request, pair.segment->request_slots(0), kCapacity);
  Doorbell bell(&slot->request, pair.channel->Handoff().request_event_fd);
  Descriptor d{};
  uint64_t next = 0;
  for (auto _ : state) {
    for (int i = 0; i < batch;) {
      d.task_id = next;
      if (producer.Stage(d) == RingResult::kOk) {
        ++next;
        ++i;
      } else {
        producer.Publish();
        bell.Ring();
      }
    }
    producer.Publish();
    bell.Ring();
  }
  while (slot->request.head.load(std::memory_order_acquire) != next) {
  }
  state.SetItemsProcessed(static_cast<int64_t>(next));
  // The sink never completes; an exit request ends it.
  d.kind = testing::kExit;
  while (producer.TryPush(d) != RingResult::kOk) {
  }
  bell.Ring();
  (void)pair.worker->Wait();
}
BENCHMARK(BM_RingThroughput)->Arg(64)->UseRealTime();

// The hardware floor for any shared-memory round trip on this machine: the
// parent writes an odd number into one shared cache line, the forked child
// answers with the next even one. Everything a ring round trip adds (the
// descriptor slot, indices, payload lines, bookkeeping) is on top of this.
void BM_CacheLinePingPong(benchmark::State& state) {
  void* mem = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  static_assert(std::atomic<uint64_t>::is_always_lock_free);
  auto* word = new (mem) std::atomic<uint64_t>(0);
  constexpr uint64_t kStop = UINT64_MAX;
  const pid_t child = ::fork();
  if (child == 0) {
    uint64_t seen = 0;
    for (;;) {
      const uint64_t v = word->load(std::memory_order_acquire);
      if (v == kStop) ::_exit(0);
      if (v != seen && (v & 1) == 1) {
        seen = v + 1;
        word->store(seen, std::memory_order_release);
      }
    }
  }
  uint64_t next = 1;
  for (auto _ : state) {
    word->store(next, std::memory_order_release);
    while (word->load(std::memory_order_acquire) != next + 1) {
    }
    next += 2;
  }
  word->store(kStop, std::memory_order_release);
  ::waitpid(child, nullptr, 0);
  ::munmap(mem, 4096);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CacheLinePingPong)->UseRealTime();

}  // namespace
}  // namespace crunch::ipc

BENCHMARK_MAIN();
