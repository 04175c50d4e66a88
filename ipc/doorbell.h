// Doorbell: spin-then-sleep wake-ups for one ring.
//
// Protocol (Dekker-style, all seq_cst):
//   producer: publish (the slot's sequence); if (how = consumer_sleeping.exchange(0)) != 0:
//             wake as `how` says
//   consumer: consumer_sleeping = how; re-check the next slot; if still empty: sleep that way
// Whatever the interleaving, either the producer sees the flag and wakes the
// consumer, or the consumer's re-check sees the new item, so a wake-up is never
// lost. A stale wake (an eventfd count, or a futex wake that arrives after the
// consumer gave up waiting) causes at most one spurious wake, after which the
// consumer re-checks and sleeps again.
//
// The flag says how the consumer sleeps, so the producer needs no other state:
//   kSleepsOnFd     an event loop waits for fd() (an eventfd) to become readable:
//                   PrepareToSleep(), wait, Woken(). The daemon does this in Asio.
//   kSleepsOnFutex  a thread blocks in FUTEX_WAIT on the flag word itself: Wait(),
//                   which a worker uses to receive requests. The producer's
//                   exchange clears the word, so a wait that starts late returns
//                   at once, and FUTEX_WAKE ends one that started in time.
// The futex is cheaper than the eventfd on this project's 2-vCPU VM: a blocking
// ping-pong between two processes pinned to different CPUs took ~15 us per
// round trip with futexes, ~19 us with eventfds or pipes (a minimal C++
// ping-pong, same run). The futex is a process-shared one (FUTEX_WAIT,
// not _PRIVATE, and not std::atomic::wait, which libstdc++ keeps private):
// the word lives in the segment, mapped by two processes.
//
// Spinning first matters: on a 2-core VM a sleep/wake round trip through the
// kernel costs 15-25 us while two spinning processes hand a cache line over in
// 0.1-0.5 us. The spin budget is a policy, not a constant: zero for "always
// sleep", longer when a peer is known to answer fast. Time is checked every
// kSpinsPerClockRead iterations to keep the clock off the hot path.
//
// Each eventfd has exactly one reader. Sleep() on a blocking fd waits and
// consumes the count in one read(); on a non-blocking fd (the daemon's
// completion eventfd) it polls, then reads.
//
// Thread safety: the producer calls Ring(); the consumer calls the rest. The fd
// is borrowed; its owner keeps it open for the Doorbell's lifetime.

#ifndef CRUNCH_IPC_DOORBELL_H_
#define CRUNCH_IPC_DOORBELL_H_

#include <chrono>
#include <cstdint>

#include "ipc/spsc_ring.h"

namespace crunch::ipc {

struct SpinPolicy {
  std::chrono::nanoseconds spin{std::chrono::microseconds(50)};
};

class Doorbell {
 public:
  // Values of RingControl::consumer_sleeping.
  static constexpr uint32_t kAwake = 0;
  static constexpr uint32_t kSleepsOnFd = 1;
  static constexpr uint32_t kSleepsOnFutex = 2;

  Doorbell() = default;
  // Reads the fd's O_NONBLOCK flag once.
  Doorbell(RingControl* control, int event_fd) noexcept;

  int fd() const noexcept { return fd_; }

  // Producer, after Publish(): wakes the consumer if it announced sleep.
  void Ring() noexcept;

  // Consumer: announces sleep on fd(), then re-checks. Returns false (and
  // withdraws the announcement) if `consumer` already has items or is corrupt;
  // true means it is safe to block until fd() is readable.
  template <typename T>
  bool PrepareToSleep(SpscConsumer<T>& consumer) noexcept {
    return Announce(consumer, kSleepsOnFd);
  }

  // Consumer, after PrepareToSleep() and fd() became readable: withdraws the
  // announcement and consumes the count. REQUIRES: fd() is readable (so the
  // read cannot block), or the fd is non-blocking.
  void Woken() noexcept;

  // Consumer, after PrepareToSleep(): blocks until fd() is rung (consuming the
  // count) or until `timeout_ms` passes (-1 = forever). Returns false on timeout.
  bool Sleep(int timeout_ms) noexcept;

  // Consumer: withdraws the announcement (after Sleep(), or instead of it).
  void ClearAnnouncement() noexcept {
    control_->consumer_sleeping.store(kAwake, std::memory_order_relaxed);
  }

  // Consumer: spins up to `policy.spin`, then sleeps on the futex, until
  // `consumer` has an item (kOk), looks corrupt (kCorrupt), or `timeout_ms`
  // passes (kEmpty). fd() is not used.
  template <typename T>
  RingResult Wait(SpscConsumer<T>& consumer, SpinPolicy policy, int timeout_ms = -1) noexcept {
    RingResult r = Spin(consumer, policy);
    while (r == RingResult::kEmpty) {
      if (Announce(consumer, kSleepsOnFutex)) {
        bool rung = SleepOnFutex(timeout_ms);
        ClearAnnouncement();
        if (!rung) return consumer.Refresh();
      }
      r = consumer.Refresh();
    }
    return r;
  }

 private:
  template <typename T>
  bool Announce(SpscConsumer<T>& consumer, uint32_t how) noexcept {
    control_->consumer_sleeping.store(how, std::memory_order_seq_cst);
    if (consumer.Refresh() != RingResult::kEmpty) {
      ClearAnnouncement();
      return false;
    }
    return true;
  }

  // After Announce(.., kSleepsOnFutex): returns false on timeout, true when
  // rung or woken spuriously (the caller re-checks the ring either way).
  bool SleepOnFutex(int timeout_ms) noexcept;

  static constexpr int kSpinsPerClockRead = 64;
  static void CpuRelax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  template <typename T>
  static RingResult Spin(SpscConsumer<T>& consumer, SpinPolicy policy) noexcept {
    RingResult r = consumer.Refresh();
    if (r != RingResult::kEmpty || policy.spin.count() <= 0) return r;
    const auto until = std::chrono::steady_clock::now() + policy.spin;
    for (;;) {
      for (int i = 0; i < kSpinsPerClockRead; ++i) {
        CpuRelax();
        r = consumer.Refresh();
        if (r != RingResult::kEmpty) return r;
      }
      if (std::chrono::steady_clock::now() >= until) return RingResult::kEmpty;
    }
  }

  RingControl* control_ = nullptr;
  int fd_ = -1;
  bool fd_blocks_ = false;
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_DOORBELL_H_
