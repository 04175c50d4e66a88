// Doorbell: spin-then-sleep wake-ups for one ring, on an eventfd.
//
// Protocol (Dekker-style, all seq_cst):
//   producer: publish tail; if consumer_sleeping.exchange(0) == 1: write(eventfd)
//   consumer: consumer_sleeping = 1; re-check tail; if still empty: block on eventfd
// Whatever the interleaving, either the producer sees the flag and rings, or the
// consumer's re-check sees the new tail, so a wake-up is never lost. A stale
// count left in the eventfd causes at most one spurious wake, after which the
// consumer re-checks and sleeps again.
//
// Spinning first matters: on a 2-core VM a sleep/wake round trip through the
// kernel costs ~80 us while two spinning processes hand a cache line over in
// ~0.3 us. The spin budget is a policy, not a constant: zero for "always sleep",
// longer when a peer is known to answer fast. Time is checked every
// kSpinsPerClockRead iterations to keep the clock off the hot path.
//
// Each eventfd has exactly one reader. A worker's request eventfd is blocking,
// so a sleeping worker waits and consumes the count in one read(). The daemon's
// completion eventfd is non-blocking: the daemon never blocks in Sleep() but
// calls PrepareToSleep(), waits for fd() to become readable in its Asio loop,
// then calls Woken().
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
  Doorbell() = default;
  // Reads the fd's O_NONBLOCK flag once.
  Doorbell(RingControl* control, int event_fd) noexcept;

  int fd() const noexcept { return fd_; }

  // Producer, after Publish(): wakes the consumer if it announced sleep.
  void Ring() noexcept;

  // Consumer: announces sleep, then re-checks. Returns false (and withdraws the
  // announcement) if `consumer` already has items or is corrupt; true means it
  // is safe to block until fd() is readable.
  template <typename T>
  bool PrepareToSleep(SpscConsumer<T>& consumer) noexcept {
    control_->consumer_sleeping.store(1, std::memory_order_seq_cst);
    if (consumer.Refresh() != RingResult::kEmpty) {
      control_->consumer_sleeping.store(0, std::memory_order_relaxed);
      return false;
    }
    return true;
  }

  // Consumer, after PrepareToSleep() and fd() became readable: withdraws the
  // announcement and consumes the count. REQUIRES: fd() is readable (so the
  // read cannot block), or the fd is non-blocking.
  void Woken() noexcept;

  // Consumer, after PrepareToSleep(): blocks until rung (consuming the count)
  // or until `timeout_ms` passes (-1 = forever). Returns false on timeout.
  bool Sleep(int timeout_ms) noexcept;

  // Consumer: withdraws the announcement (after Sleep(), or instead of it).
  void ClearAnnouncement() noexcept {
    control_->consumer_sleeping.store(0, std::memory_order_relaxed);
  }

  // Consumer: spins up to `policy.spin`, then sleeps, until `consumer` has an
  // item (kOk), looks corrupt (kCorrupt), or `timeout_ms` passes (kEmpty).
  template <typename T>
  RingResult Wait(SpscConsumer<T>& consumer, SpinPolicy policy, int timeout_ms = -1) noexcept {
    RingResult r = Spin(consumer, policy);
    while (r == RingResult::kEmpty) {
      if (PrepareToSleep(consumer)) {
        bool rung = Sleep(timeout_ms);
        ClearAnnouncement();
        if (!rung) return consumer.Refresh();
      }
      r = consumer.Refresh();
    }
    return r;
  }

 private:
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
