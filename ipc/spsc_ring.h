// SpscRing: a lock-free single-producer single-consumer ring in shared memory.
//
// The shared part (RingControl plus a slot array) lives in the segment and holds
// no pointers; each side keeps a process-local view (SpscProducer/SpscConsumer)
// with its own copy of its index, so a peer that scribbles over the shared
// state can make the ring look corrupt but can never make this side index
// outside its slot array.
//
// Publication is per slot: every item carries a `sequence` word that the ring
// owns, and the producer publishes item i by storing sequence(i) = i + 1 (mod
// 2^32) into its slot after the item's other bytes. The consumer polls the slot
// it reads next, not a shared tail index, so handing an item over moves one
// cache line (the slot, which is one line for a Descriptor) instead of two (a
// tail, then the slot). On the 2-vCPU VMs this project runs on, a line moves
// between the vCPUs in 100-250 ns, and the round trip is made of such moves.
//
// Indices are 64-bit and only grow; the slot is index & (capacity - 1). A slot
// that does not hold item i holds item i - capacity (or 0 after ResetRing on
// the first lap); any other sequence means the producer wrote garbage, and the
// consumer reports kCorrupt. The head (consumer's position, read by the
// producer only when the ring looks full) and the wake flag sit on their own
// 128-byte lines (the adjacent-line prefetcher pairs 64-byte lines on x86).
//
// Wake-ups: `consumer_sleeping` is the consumer's "I am about to block" flag,
// used by Doorbell. The producer's last sequence store of a Publish() is
// seq_cst and so is its load of the flag; the consumer stores the flag seq_cst
// and re-checks the slot with a seq_cst load: at least one side sees the other
// (no lost wake-up).
//
// Thread safety: one producer and one consumer, in the same or different
// processes. Each view object belongs to one thread.

#ifndef CRUNCH_IPC_SPSC_RING_H_
#define CRUNCH_IPC_SPSC_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace crunch::ipc {

inline constexpr std::size_t kFalseSharingRange = 128;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "ring indices must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "wake flags must be lock-free");
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free, "slot sequences must be lock-free");

// What a ring can carry: plain data whose last member is `uint32_t sequence`,
// which belongs to the ring (its value in a pushed item is ignored; in a popped
// item it is the ring's).
// (A function, not a concept: clang-format 14 takes a header with a concept
// for Objective-C and refuses to format it.)
template <typename T>
constexpr bool IsRingItem() {
  if constexpr (!std::is_trivially_copyable_v<T> || !std::is_standard_layout_v<T>) {
    return false;
  } else {
    return std::is_same_v<decltype(T::sequence), uint32_t> &&
           offsetof(T, sequence) + sizeof(uint32_t) == sizeof(T) && alignof(T) >= alignof(uint32_t);
  }
}

// The shared state of one ring besides its slots. Lives in the segment.
struct RingControl {
  alignas(kFalseSharingRange) std::atomic<uint64_t> head;  // Next slot to read. Consumer writes.
  alignas(kFalseSharingRange) std::atomic<uint32_t> consumer_sleeping;  // See Doorbell.
};
static_assert(std::is_standard_layout_v<RingControl>);
static_assert(sizeof(RingControl) == 2 * kFalseSharingRange);

enum class RingResult : uint8_t {
  kOk,
  kEmpty,    // Consumer: nothing to read.
  kFull,     // Producer: no free slot.
  kCorrupt,  // The peer's shared state is impossible (a head or a sequence).
};

inline constexpr bool IsPowerOfTwo(uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

namespace internal {

// The sequence that marks item `index` as published.
inline constexpr uint32_t SequenceOf(uint64_t index) noexcept {
  return static_cast<uint32_t>(index) + 1;
}

template <typename T>
std::atomic_ref<uint32_t> SequenceRef(T& slot) noexcept {
  static_assert(IsRingItem<T>(), "see IsRingItem");
  return std::atomic_ref<uint32_t>(slot.sequence);
}

}  // namespace internal

// Empties a ring: clears its control block and every slot's sequence.
// REQUIRES: no process uses the ring; `slots` has `capacity` elements.
template <typename T>
void ResetRing(RingControl* control, T* slots, uint32_t capacity) noexcept {
  control->head.store(0, std::memory_order_relaxed);
  control->consumer_sleeping.store(0, std::memory_order_relaxed);
  for (uint32_t i = 0; i < capacity; ++i) {
    internal::SequenceRef(slots[i]).store(0, std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_release);
}

template <typename T>
class SpscProducer {
  static_assert(IsRingItem<T>(), "a ring item is plain data ending in `uint32_t sequence`");

 public:
  SpscProducer() = default;
  // REQUIRES: capacity is a power of two below 2^32; `slots` has `capacity`
  // elements; the ring was emptied by ResetRing() and nothing was pushed since.
  SpscProducer(RingControl* control, T* slots, uint32_t capacity) noexcept
      : control_(control), slots_(slots), mask_(capacity - 1) {}

  // Writes `item` and publishes it at once.
  RingResult TryPush(const T& item) noexcept {
    RingResult r = Stage(item);
    if (r == RingResult::kOk) Publish();
    return r;
  }

  // Writes `item` without publishing it; Publish() makes everything staged
  // visible to the consumer, in order.
  RingResult Stage(const T& item) noexcept {
    if (tail_ - cached_head_ > mask_) {
      cached_head_ = control_->head.load(std::memory_order_acquire);
      if (tail_ - cached_head_ > mask_ + 1) return RingResult::kCorrupt;
      if (tail_ - cached_head_ > mask_) return RingResult::kFull;
    }
    // Every byte but the sequence; the consumer may be polling that one.
    std::memcpy(static_cast<void*>(&slots_[tail_ & mask_]), &item, offsetof(T, sequence));
    ++tail_;
    return RingResult::kOk;
  }

  // Release for all but the last item; the last store is seq_cst because the
  // Doorbell protocol needs it ordered before the following load of
  // consumer_sleeping.
  void Publish() noexcept {
    if (published_ == tail_) return;
    for (; published_ + 1 < tail_; ++published_) {
      internal::SequenceRef(slots_[published_ & mask_])
          .store(internal::SequenceOf(published_), std::memory_order_release);
    }
    internal::SequenceRef(slots_[published_ & mask_])
        .store(internal::SequenceOf(published_), std::memory_order_seq_cst);
    ++published_;
  }

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
  uint64_t tail_ = 0;         // Next index to stage.
  uint64_t published_ = 0;    // Next index to publish; published_ <= tail_.
  uint64_t cached_head_ = 0;  // Last head seen; refreshed only when the ring looks full.
};

template <typename T>
class SpscConsumer {
  static_assert(IsRingItem<T>(), "a ring item is plain data ending in `uint32_t sequence`");

 public:
  SpscConsumer() = default;
  // REQUIRES: as for SpscProducer.
  SpscConsumer(RingControl* control, T* slots, uint32_t capacity) noexcept
      : control_(control), slots_(slots), mask_(capacity - 1) {}

  // Copies the next item out (the peer may rewrite the slot at any time, so it
  // is never read in place) and frees its slot.
  RingResult TryPop(T* item) noexcept {
    RingResult r = Refresh();
    if (r != RingResult::kOk) return r;
    std::memcpy(static_cast<void*>(item), &slots_[head_ & mask_], sizeof(T));
    ++head_;
    control_->head.store(head_, std::memory_order_release);
    return RingResult::kOk;
  }

  // Whether the next item is there: kOk, kEmpty, or kCorrupt if its slot
  // holds a sequence no honest producer writes.
  RingResult Refresh() noexcept {
    const uint32_t seen =
        internal::SequenceRef(slots_[head_ & mask_]).load(std::memory_order_seq_cst);
    if (seen == internal::SequenceOf(head_)) return RingResult::kOk;
    const uint32_t previous_lap = head_ > mask_ ? internal::SequenceOf(head_ - mask_ - 1) : 0;
    return seen == previous_lap ? RingResult::kEmpty : RingResult::kCorrupt;
  }

  RingControl* control() const noexcept { return control_; }
  uint32_t capacity() const noexcept { return mask_ + 1; }

 private:
  RingControl* control_ = nullptr;
  T* slots_ = nullptr;
  uint64_t mask_ = 0;
  uint64_t head_ = 0;  // Authoritative.
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_SPSC_RING_H_
