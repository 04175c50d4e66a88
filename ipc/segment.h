// Segment: the shared memory between the daemon and its worker processes.
//
// One memfd, created by the daemon and inherited by each worker across
// fork+exec, so there is no name in /dev/shm that a crash could leave behind:
// the memory goes away with the last process that maps it. The size is sealed
// (F_SEAL_SHRINK | F_SEAL_GROW), so no worker can truncate it under the daemon
// and turn its reads into SIGBUS.
//
// Layout (offsets from the start; everything after the header is computed by
// ComputeSegmentLayout() from the three options, and re-checked on attach):
//
//   SegmentHeader                      magic, layout version, sizes
//   SlotControl    x worker_slots      ring indices + wake flags per worker
//   Descriptor     x worker_slots x 2 x ring_capacity   request, completion rings
//   arena          arena_bytes         payload bytes, page aligned
//
// Rules (see also CONVENTIONS.md): nothing in the segment is a pointer, has a
// destructor or is a lock. The daemon writes the header once, before any
// worker exists, and afterwards trusts only its own copy of the layout.
//
// Errors from Attach(), all absl::StatusCode::kFailedPrecondition:
//   "not a crunchd segment: ..."             size or magic is wrong
//   "segment layout version V, this build understands version W: ..."
//                                            daemon and worker are from different builds
//   "segment header is inconsistent: ..."    a size or offset does not match the layout
//
// Thread safety: a Segment is an immutable mapping; the memory it maps is
// shared under the rules of the types stored in it.

#ifndef CRUNCH_IPC_SEGMENT_H_
#define CRUNCH_IPC_SEGMENT_H_

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "ipc/descriptor.h"
#include "ipc/spsc_ring.h"
#include "ipc/unique_fd.h"

namespace crunch::ipc {

inline constexpr uint64_t kSegmentMagic = 0x4753'4843'4E55'5243;  // "CRUNCHSG" in memory order
// 2: consumer_sleeping says how the consumer sleeps (eventfd or futex).
// 3: items are published by a sequence in their slot; RingControl has no tail.
// 4: SlotControl::cancel_request.
inline constexpr uint32_t kSegmentLayoutVersion = 4;

inline constexpr uint32_t kMaxWorkerSlots = 1024;
inline constexpr uint32_t kMinRingCapacity = 2;
inline constexpr uint32_t kMaxRingCapacity = 1u << 16;
inline constexpr uint64_t kMinArenaBytes = 64 * 1024;
inline constexpr uint64_t kMaxArenaBytes = uint64_t{64} << 30;

struct SegmentOptions {
  uint32_t worker_slots = 1;                  // 1..kMaxWorkerSlots
  uint32_t ring_capacity = 256;               // power of two in kMinRingCapacity..kMaxRingCapacity
  uint64_t arena_bytes = uint64_t{64} << 20;  // kMinArenaBytes..kMaxArenaBytes
};

// Where everything is. Computed, never read from the segment by the daemon.
struct SegmentLayout {
  uint32_t worker_slots = 0;
  uint32_t ring_capacity = 0;
  uint64_t slots_offset = 0;
  uint64_t descriptors_offset = 0;
  uint64_t arena_offset = 0;
  uint64_t arena_bytes = 0;
  uint64_t total_bytes = 0;

  bool operator==(const SegmentLayout&) const = default;
};

// Validates `options` (the error names the option and its allowed range).
absl::StatusOr<SegmentLayout> ComputeSegmentLayout(const SegmentOptions& options);

struct SegmentHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_bytes;      // sizeof(SegmentHeader)
  uint32_t descriptor_bytes;  // sizeof(Descriptor)
  uint32_t slot_bytes;        // sizeof(SlotControl)
  uint32_t worker_slots;
  uint32_t ring_capacity;
  uint64_t slots_offset;
  uint64_t descriptors_offset;
  uint64_t arena_offset;
  uint64_t arena_bytes;
  uint64_t total_bytes;
};
static_assert(std::is_standard_layout_v<SegmentHeader> &&
              std::is_trivially_copyable_v<SegmentHeader>);
static_assert(offsetof(SegmentHeader, magic) == 0 && offsetof(SegmentHeader, layout_version) == 8,
              "magic and version stay where every build can read them");

// Per-worker control block.
struct SlotControl {
  RingControl request;     // Daemon produces, worker consumes.
  RingControl completion;  // Worker produces, daemon consumes.
  // The attached worker's pid, written by the worker after it validated the
  // segment; 0 when the slot is free. Informational: the daemon knows its
  // children's pids and never trusts this value for anything but "attached".
  alignas(kFalseSharingRange) std::atomic<uint32_t> worker_pid;
  // The id of a task the daemon asks the worker to stop, 0 for none. The
  // daemon writes it; the worker reads it before starting a task (and skips
  // that task) and while running one (its kernel polls it). One word per slot:
  // a second request replaces the first, which then just runs on.
  std::atomic<uint64_t> cancel_request;
};
static_assert(std::is_standard_layout_v<SlotControl>);

class Segment {
 public:
  // Creates a sealed memfd of the right size and writes the header. The memfd
  // is close-on-exec; a spawner hands it to a worker explicitly.
  static absl::StatusOr<Segment> Create(const SegmentOptions& options);

  // Maps the segment behind `fd` (borrowed: the mapping outlives a close) and
  // checks its header. Errors: see the table at the top of this file.
  static absl::StatusOr<Segment> Attach(int fd);

  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  // The memfd, for handing to workers; -1 in an attached Segment.
  int fd() const noexcept { return fd_.get(); }
  const SegmentLayout& layout() const noexcept { return layout_; }

  // REQUIRES: slot < layout().worker_slots.
  SlotControl* slot(uint32_t slot) const noexcept;
  Descriptor* request_slots(uint32_t slot) const noexcept;
  Descriptor* completion_slots(uint32_t slot) const noexcept;

  // True if `extent` lies inside the arena (overflow-safe).
  bool Contains(Extent extent) const noexcept {
    return extent.offset <= layout_.arena_bytes &&
           extent.length <= layout_.arena_bytes - extent.offset;
  }
  // REQUIRES: Contains(extent).
  std::span<std::byte> Bytes(Extent extent) const noexcept {
    return {base_ + layout_.arena_offset + extent.offset, extent.length};
  }

  // The raw header, for tests that need to forge a bad one.
  SegmentHeader* header_for_testing() const noexcept {
    return reinterpret_cast<SegmentHeader*>(base_);
  }

 private:
  Segment(UniqueFd fd, std::byte* base, const SegmentLayout& layout) noexcept
      : fd_(std::move(fd)), base_(base), layout_(layout) {}
  void Unmap() noexcept;

  UniqueFd fd_;
  std::byte* base_ = nullptr;
  SegmentLayout layout_;
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_SEGMENT_H_
