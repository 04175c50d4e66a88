// SpscRing: a lock-free single-producer single-consumer ring in shared memory.
//
// The shared part (RingControl plus a slot array) lives in the segment and holds
// no pointers; each side keeps a process-local view (SpscProducer/SpscConsumer)
// with its own copy of its index, so a peer that scribbles over the shared
// indices can make the ring look corrupt but can never make this side index
// outside its slot array.
//
// Indices are 64-bit and only grow (no wrap-around in practice); the slot is
// index & (capacity - 1). head and tail sit on their own 128-byte lines (the
// adjacent-line prefetcher pairs 64-byte lines on x86).
//
// Wake-ups: `consumer_sleeping` is the consumer's "I am about to block" flag,
// used by Doorbell. The tail is published with a seq_cst store and the flag read
// with a seq_cst load: together with the consumer's seq_cst store of the flag
// and re-check of tail, at least one side sees the other (no lost wake-up).
//
// Thread safety: one producer and one consumer, in the same or different
// processes. Each view object belongs to one thread.

#ifndef CRUNCH_IPC_SPSC_RING_H_
#define CRUNCH_IPC_SPSC_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace crunch::ipc {

inline constexpr std::size_t kFalseSharingRange = 128;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "ring indices must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "wake flags must be lock-free");

// The shared indices of one ring. Lives in the segment; all-zero is "empty".
struct RingControl {
  alignas(kFalseSharingRange) std::atomic<uint64_t> head;  // Next slot to read. Consumer writes.
  alignas(kFalseSharingRange) std::atomic<uint64_t> tail;  // Next slot to write. Producer writes.
  alignas(kFalseSharingRange) std::atomic<uint32_t> consumer_sleeping;  // See Doorbell.
};
static_assert(std::is_standard_layout_v<RingControl>);
static_assert(sizeof(RingControl) == 3 * kFalseSharingRange);

enum class RingResult : uint8_t {
  kOk,
  kEmpty,    // Consumer: nothing to read.
  kFull,     // Producer: no free slot.
  kCorrupt,  // The peer's index is impossible (tail - head > capacity).
};

inline constexpr bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

// Clears a ring's shared state. REQUIRES: no process uses the ring.
inline void ResetRingControl(RingControl* control) noexcept {
  control->head.store(0, std::memory_order_relaxed);
  control->tail.store(0, std::memory_order_relaxed);
  control->consumer_sleeping.store(0, std::memory_order_relaxed);
}

template <typename T>
class SpscProducer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  SpscProducer() = default;
  // REQUIRES: capacity is a power of two; `slots` has `capacity` elements; the
  // ring was reset or this side resumes from `control->tail`.
  SpscProducer(RingControl* control, T* slots, uint32_t capacity) noexcept
      : control_(control),
        slots_(slots),
        mask_(capacity - 1),
        tail_(control->tail.load(std::memory_order_relaxed)),
        cached_head_(control->head.load(std::memory_order_acquire)) {}

  // Writes `item` and publishes it at once.
  RingResult TryPush(const T& item) noexcept {
    RingResult r = Stage(item);
    if (r == RingResult::kOk) Publish();
    return r;
  }

  // Writes `item` without publishing it; Publish() makes everything staged
  // visible to the consumer at once (one cache-line transfer for a batch).
  RingResult Stage(const T& item) noexcept {
    if (tail_ - cached_head_ > mask_) {
      cached_head_ = control_->head.load(std::memory_order_acquire);
      if (tail_ - cached_head_ > mask_ + 1) return RingResult::kCorrupt;
      if (tail_ - cached_head_ > mask_) return RingResult::kFull;
    }
    slots_[tail_ & mask_] = item;
    ++tail_;
    return RingResult::kOk;
  }

  // seq_cst, not release: the Doorbell protocol needs this store ordered
  // before the following load of consumer_sleeping.
  void Publish() noexcept { control_->tail.store(tail_, std::memory_order_seq_cst); }

  // True if the consumer announced it is going to sleep (see Doorbell).
  bool ConsumerMaySleep() const noexcept {
    return control_->consumer_sleeping.load(std::memory_order_seq_cst) != 0;
  }
  RingControl* control() const noexcept { return control_; }

  uint32_t capacity() const noexcept { return mask_ + 1; }

 private:
  RingControl* control_ = nullptr;
  T* slots_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t tail_ = 0;         // Authoritative; shared tail is only a publication.
  uint64_t cached_head_ = 0;  // Last head seen; refreshed only when the ring looks full.
};

template <typename T>
class SpscConsumer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  SpscConsumer() = default;
  // REQUIRES: as for SpscProducer.
  SpscConsumer(RingControl* control, const T* slots, uint32_t capacity) noexcept
      : control_(control),
        slots_(slots),
        mask_(capacity - 1),
        head_(control->head.load(std::memory_order_relaxed)),
        cached_tail_(head_) {}

  // Copies the next item out (the peer may rewrite the slot at any time, so it
  // is never read in place) and frees its slot.
  RingResult TryPop(T* item) noexcept {
    if (head_ == cached_tail_) {
      RingResult r = Refresh();
      if (r != RingResult::kOk) return r;
    }
    *item = slots_[head_ & mask_];
    ++head_;
    control_->head.store(head_, std::memory_order_release);
    return RingResult::kOk;
  }

  // Reloads the producer's tail; kEmpty if still nothing to read.
  RingResult Refresh() noexcept {
    cached_tail_ = control_->tail.load(std::memory_order_seq_cst);
    if (cached_tail_ - head_ > mask_ + 1) {
      cached_tail_ = head_;
      return RingResult::kCorrupt;
    }
    return cached_tail_ == head_ ? RingResult::kEmpty : RingResult::kOk;
  }

  RingControl* control() const noexcept { return control_; }
  uint32_t capacity() const noexcept { return mask_ + 1; }

 private:
  RingControl* control_ = nullptr;
  const T* slots_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t head_ = 0;         // Authoritative.
  uint64_t cached_tail_ = 0;  // Last tail seen; refreshed only when the ring looks empty.
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_SPSC_RING_H_
