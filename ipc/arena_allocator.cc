#include "ipc/arena_allocator.h"

#include <algorithm>
#include <bit>
#include <cassert>

namespace crunch::ipc {

ArenaAllocator::ArenaAllocator(uint64_t arena_bytes)
    : block_count_(static_cast<uint32_t>(std::min<uint64_t>(arena_bytes / kBlockBytes, kNone - 1))),
      max_order_(block_count_ == 0 ? 0 : std::bit_width(block_count_) - 1),
      free_head_(max_order_ + 1, kNone),
      free_order_(block_count_, kNotFree),
      next_(block_count_, kNone),
      prev_(block_count_, kNone) {
  // Binary decomposition: each block starts at a multiple of its own size.
  uint32_t start = 0;
  for (int order = max_order_; order >= 0; --order) {
    const uint32_t size = 1u << order;
    if (block_count_ - start >= size) {
      PushFree(start, order);
      start += size;
    }
  }
}

int ArenaAllocator::OrderFor(uint64_t bytes) noexcept {
  const uint64_t blocks = (bytes + kBlockBytes - 1) / kBlockBytes;
  return blocks <= 1 ? 0 : std::bit_width(blocks - 1);
}

int ArenaAllocator::FindFreeOrder(int want) const noexcept {
  int order = want;
  while (order <= max_order_ && free_head_[order] == kNone) ++order;
  return order;
}

std::optional<Extent> ArenaAllocator::Allocate(uint64_t bytes) noexcept {
  if (bytes == 0) return Extent{0, 0};
  if (bytes > capacity_bytes()) return std::nullopt;
  const int want = OrderFor(bytes);
  if (want < kCachedOrders && cache_[want].count > 0) {
    OrderCache& cache = cache_[want];
    const uint32_t block = cache.blocks[--cache.count];
    free_order_[block] = kNotFree;
    bytes_in_use_ += kBlockBytes << want;
    return Extent{uint64_t{block} * kBlockBytes, bytes};
  }
  int order = FindFreeOrder(want);
  if (order > max_order_) {
    if (!FlushCache()) return std::nullopt;
    order = FindFreeOrder(want);
    if (order > max_order_) return std::nullopt;
  }

  const uint32_t block = free_head_[order];
  RemoveFree(block, order);
  while (order > want) {  // Split, keeping the lower half.
    --order;
    PushFree(block + (1u << order), order);
  }
  bytes_in_use_ += kBlockBytes << want;
  return Extent{uint64_t{block} * kBlockBytes, bytes};
}

void ArenaAllocator::Free(Extent extent) noexcept {
  if (extent.length == 0) return;
  const uint32_t block = static_cast<uint32_t>(extent.offset / kBlockBytes);
  const int order = OrderFor(extent.length);
  assert(extent.offset % kBlockBytes == 0 && block < block_count_);
  assert(free_order_[block] == kNotFree && "double free");
  bytes_in_use_ -= kBlockBytes << order;
  if (order < kCachedOrders && cache_[order].count < kCachedPerOrder) {
    OrderCache& cache = cache_[order];
    cache.blocks[cache.count++] = block;
    free_order_[block] = kCached;
    return;
  }
  FreeBlock(block, order);
}

void ArenaAllocator::FreeBlock(uint32_t block, int order) noexcept {
  while (order < max_order_) {
    const uint32_t buddy = block ^ (1u << order);
    if (buddy >= block_count_ || free_order_[buddy] != order) break;
    RemoveFree(buddy, order);
    block = std::min(block, buddy);
    ++order;
  }
  PushFree(block, order);
}

bool ArenaAllocator::FlushCache() noexcept {
  bool flushed = false;
  for (int order = 0; order < kCachedOrders; ++order) {
    OrderCache& cache = cache_[order];
    flushed |= cache.count > 0;
    while (cache.count > 0) {
      const uint32_t block = cache.blocks[--cache.count];
      free_order_[block] = kNotFree;
      FreeBlock(block, order);
    }
  }
  return flushed;
}

void ArenaAllocator::PushFree(uint32_t block, int order) noexcept {
  free_order_[block] = static_cast<int8_t>(order);
  prev_[block] = kNone;
  next_[block] = free_head_[order];
  if (next_[block] != kNone) prev_[next_[block]] = block;
  free_head_[order] = block;
}

void ArenaAllocator::RemoveFree(uint32_t block, int order) noexcept {
  free_order_[block] = kNotFree;
  if (prev_[block] != kNone) {
    next_[prev_[block]] = next_[block];
  } else {
    free_head_[order] = next_[block];
  }
  if (next_[block] != kNone) prev_[next_[block]] = prev_[block];
}

}  // namespace crunch::ipc
