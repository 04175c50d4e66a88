// ArenaAllocator: hands out byte ranges of the segment's payload arena.
//
// Ownership rule for the arena: only the daemon allocates and frees, and the
// allocator's bookkeeping lives in the daemon's private heap, never in the
// segment. A worker only reads the input and writes the output extents it was
// lent for a task. So no process ever waits on a lock another could die holding,
// a worker cannot corrupt the free lists, and a dead worker's space comes back
// with a plain Free() of the extents the daemon recorded for its tasks.
//
// A binary buddy allocator over 256-byte blocks: O(log n) allocate and free,
// coalescing, no allocation after construction. An arena that is not a power of
// two is covered by its binary decomposition (blocks of decreasing size).
//
// Thread safety: not thread-safe; owned by the daemon's dispatch strand.

#ifndef CRUNCH_IPC_ARENA_ALLOCATOR_H_
#define CRUNCH_IPC_ARENA_ALLOCATOR_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "ipc/descriptor.h"

namespace crunch::ipc {

class ArenaAllocator {
 public:
  static constexpr uint64_t kBlockBytes = 256;

  // Manages [0, arena_bytes); the tail smaller than one block is unused.
  explicit ArenaAllocator(uint64_t arena_bytes);

  ArenaAllocator(const ArenaAllocator&) = delete;
  ArenaAllocator& operator=(const ArenaAllocator&) = delete;

  // Returns an extent of exactly `bytes` (offset aligned to kBlockBytes), or
  // nullopt if no free block is large enough. Zero bytes is {0, 0}, which
  // occupies nothing.
  std::optional<Extent> Allocate(uint64_t bytes) noexcept;

  // REQUIRES: `extent` came from Allocate() and was not freed since.
  void Free(Extent extent) noexcept;

  // Bytes held by live allocations, counted in whole blocks.
  uint64_t bytes_in_use() const noexcept { return bytes_in_use_; }
  // Bytes the allocator can hand out in total.
  uint64_t capacity_bytes() const noexcept { return uint64_t{block_count_} * kBlockBytes; }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr int8_t kNotFree = -1;

  static int OrderFor(uint64_t bytes) noexcept;
  void PushFree(uint32_t block, int order) noexcept;
  void RemoveFree(uint32_t block, int order) noexcept;

  uint32_t block_count_;
  int max_order_;
  uint64_t bytes_in_use_ = 0;
  std::vector<uint32_t> free_head_;  // Per order: first free block, or kNone.
  std::vector<int8_t> free_order_;   // Per block: order of the free block starting here.
  std::vector<uint32_t> next_;       // Free-list links, per block.
  std::vector<uint32_t> prev_;
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_ARENA_ALLOCATOR_H_
