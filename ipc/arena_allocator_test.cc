#include "ipc/arena_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace crunch::ipc {
namespace {

constexpr uint64_t kBlock = ArenaAllocator::kBlockBytes;

TEST(ArenaAllocator, ZeroBytesTakesNoSpace) {
  ArenaAllocator arena(64 * kBlock);
  std::optional<Extent> e = arena.Allocate(0);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->length, 0u);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
  arena.Free(*e);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
}

TEST(ArenaAllocator, ReturnsExactLengthAlignedOffset) {
  ArenaAllocator arena(64 * kBlock);
  std::optional<Extent> e = arena.Allocate(1000);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->length, 1000u);
  EXPECT_EQ(e->offset % kBlock, 0u);
  EXPECT_EQ(arena.bytes_in_use(), 4 * kBlock);  // 1000 bytes round up to 4 blocks.
}

TEST(ArenaAllocator, FailsWhenFullAndRecoversAfterFree) {
  ArenaAllocator arena(8 * kBlock);
  std::vector<Extent> held;
  for (int i = 0; i < 8; ++i) {
    std::optional<Extent> e = arena.Allocate(kBlock);
    ASSERT_TRUE(e.has_value()) << i;
    held.push_back(*e);
  }
  EXPECT_FALSE(arena.Allocate(1).has_value());
  arena.Free(held.back());
  EXPECT_TRUE(arena.Allocate(1).has_value());
}

TEST(ArenaAllocator, RejectsMoreThanCapacity) {
  ArenaAllocator arena(8 * kBlock);
  EXPECT_FALSE(arena.Allocate(8 * kBlock + 1).has_value());
  EXPECT_TRUE(arena.Allocate(8 * kBlock).has_value());
}

TEST(ArenaAllocator, CoalescesBackToOneBlock) {
  ArenaAllocator arena(16 * kBlock);
  std::vector<Extent> held;
  for (int i = 0; i < 16; ++i) held.push_back(*arena.Allocate(kBlock));
  std::shuffle(held.begin(), held.end(), std::mt19937(7));
  for (Extent e : held) arena.Free(e);
  // Only a fully coalesced arena can satisfy a whole-arena request.
  std::optional<Extent> all = arena.Allocate(16 * kBlock);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->offset, 0u);
}

// Freed small blocks wait in a cache; a request only a coalesced arena can
// satisfy must flush it instead of failing.
TEST(ArenaAllocator, CachedBlocksDoNotMakeALargeRequestFail) {
  ArenaAllocator arena(64 * kBlock);
  std::vector<Extent> held;
  for (int i = 0; i < 64; ++i) held.push_back(*arena.Allocate(i % 2 == 0 ? 1 : kBlock));
  for (Extent e : held) arena.Free(e);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
  std::optional<Extent> all = arena.Allocate(64 * kBlock);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->offset, 0u);
}

TEST(ArenaAllocator, ReusesARecentlyFreedBlockOfTheSameSize) {
  ArenaAllocator arena(1 << 20);
  Extent a = *arena.Allocate(100);
  Extent b = *arena.Allocate(100);
  arena.Free(a);
  EXPECT_EQ(arena.Allocate(200)->offset, a.offset) << "both sizes take one block";
  EXPECT_EQ(arena.bytes_in_use(), 2 * kBlock);
  arena.Free(b);
}

TEST(ArenaAllocator, UsesAllOfANonPowerOfTwoArena) {
  ArenaAllocator arena(13 * kBlock);  // 8 + 4 + 1 blocks.
  EXPECT_EQ(arena.capacity_bytes(), 13 * kBlock);
  std::vector<Extent> held;
  while (std::optional<Extent> e = arena.Allocate(kBlock)) held.push_back(*e);
  EXPECT_EQ(held.size(), 13u);
  for (Extent e : held) EXPECT_LT(e.offset, 13 * kBlock);
}

TEST(ArenaAllocator, RandomWorkloadNeverOverlapsAndReturnsEverything) {
  ArenaAllocator arena(1 << 20);
  std::mt19937_64 rng(42);
  std::map<uint64_t, Extent> live;  // By offset.
  for (int step = 0; step < 200'000; ++step) {
    if (live.empty() || rng() % 2 == 0) {
      const uint64_t bytes = 1 + rng() % (rng() % 8 == 0 ? 64 * 1024 : 2048);
      std::optional<Extent> e = arena.Allocate(bytes);
      if (!e) continue;
      ASSERT_LE(e->offset + e->length, arena.capacity_bytes());
      auto next = live.lower_bound(e->offset);
      if (next != live.end()) {
        ASSERT_LE(e->offset + e->length, next->first);
      }
      if (next != live.begin()) {
        const Extent& prev = std::prev(next)->second;
        ASSERT_LE(prev.offset + prev.length, e->offset);
      }
      live[e->offset] = *e;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      arena.Free(it->second);
      live.erase(it);
    }
  }
  for (auto& [offset, e] : live) arena.Free(e);
  EXPECT_EQ(arena.bytes_in_use(), 0u);
  EXPECT_TRUE(arena.Allocate(arena.capacity_bytes()).has_value());
}

}  // namespace
}  // namespace crunch::ipc
