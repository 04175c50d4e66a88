#include "ipc/spsc_ring.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace crunch::ipc {
namespace {

struct Ring {
  explicit Ring(uint32_t capacity) : slots(capacity) { ResetRingControl(&control); }
  SpscProducer<uint64_t> producer() { return {&control, slots.data(), capacity()}; }
  SpscConsumer<uint64_t> consumer() { return {&control, slots.data(), capacity()}; }
  uint32_t capacity() const { return static_cast<uint32_t>(slots.size()); }

  RingControl control;
  std::vector<uint64_t> slots;
};

TEST(SpscRing, StartsEmpty) {
  Ring ring(4);
  auto consumer = ring.consumer();
  uint64_t item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
}

TEST(SpscRing, PopsInPushOrder) {
  Ring ring(4);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  ASSERT_EQ(producer.TryPush(10), RingResult::kOk);
  ASSERT_EQ(producer.TryPush(11), RingResult::kOk);
  uint64_t item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item, 10u);
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item, 11u);
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
}

TEST(SpscRing, RejectsPushWhenFull) {
  Ring ring(4);
  auto producer = ring.producer();
  for (uint64_t i = 0; i < 4; ++i) ASSERT_EQ(producer.TryPush(i), RingResult::kOk);
  EXPECT_EQ(producer.TryPush(4), RingResult::kFull);
  auto consumer = ring.consumer();
  uint64_t item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(producer.TryPush(4), RingResult::kOk);
}

TEST(SpscRing, WrapsAroundManyTimes) {
  Ring ring(8);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  uint64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 1000; ++round) {
    const int n = 1 + round % 8;  // Varying fill levels move the wrap point.
    for (int i = 0; i < n; ++i) ASSERT_EQ(producer.TryPush(next_in++), RingResult::kOk);
    for (int i = 0; i < n; ++i) {
      uint64_t item;
      ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
      ASSERT_EQ(item, next_out++);
    }
  }
  // 125 cycles of 1+2+...+8 items: the indices passed the capacity ~560 times.
  EXPECT_EQ(ring.control.head.load(), 4500u);
  EXPECT_EQ(ring.control.tail.load(), 4500u);
}

TEST(SpscRing, StagedItemsAreInvisibleUntilPublished) {
  Ring ring(8);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  ASSERT_EQ(producer.Stage(1), RingResult::kOk);
  ASSERT_EQ(producer.Stage(2), RingResult::kOk);
  uint64_t item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
  producer.Publish();
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item, 1u);
}

TEST(SpscRing, ConsumerRejectsTailBeyondCapacity) {
  Ring ring(4);
  auto consumer = ring.consumer();
  ring.control.tail.store(5);  // A producer cannot have 5 items in a 4-slot ring.
  uint64_t item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kCorrupt);
}

TEST(SpscRing, ConsumerRejectsTailBehindHead) {
  Ring ring(4);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  ASSERT_EQ(producer.TryPush(1), RingResult::kOk);
  uint64_t item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  ring.control.tail.store(0);  // Moved backwards.
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kCorrupt);
}

TEST(SpscRing, ProducerRejectsHeadAheadOfTail) {
  Ring ring(4);
  auto producer = ring.producer();
  for (uint64_t i = 0; i < 4; ++i) ASSERT_EQ(producer.TryPush(i), RingResult::kOk);
  ring.control.head.store(100);  // The consumer claims to have read items never written.
  EXPECT_EQ(producer.TryPush(4), RingResult::kCorrupt);
}

TEST(SpscRing, ConsumerIgnoresForgedHead) {
  // Its own index is authoritative: a peer rewriting head cannot make it
  // re-read or skip items.
  Ring ring(4);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  ASSERT_EQ(producer.TryPush(7), RingResult::kOk);
  ASSERT_EQ(producer.TryPush(8), RingResult::kOk);
  uint64_t item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  ring.control.head.store(0);
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item, 8u);
}

TEST(SpscRing, TwoThreadsTransferEveryItemInOrder) {
#ifdef CRUNCH_SANITIZED
  constexpr uint64_t kItems = 200'000;
#else
  constexpr uint64_t kItems = 5'000'000;
#endif
  Ring ring(64);
  std::thread producer_thread([&] {
    auto producer = ring.producer();
    for (uint64_t i = 0; i < kItems;) {
      if (producer.Stage(i) == RingResult::kOk) {
        ++i;
        if (i % 16 == 0) producer.Publish();
      } else {
        producer.Publish();
        std::this_thread::yield();
      }
    }
    producer.Publish();
  });
  auto consumer = ring.consumer();
  uint64_t expected = 0;
  while (expected < kItems) {
    uint64_t item;
    RingResult r = consumer.TryPop(&item);
    ASSERT_NE(r, RingResult::kCorrupt);
    if (r == RingResult::kEmpty) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_EQ(item, expected);
    ++expected;
  }
  producer_thread.join();
}

}  // namespace
}  // namespace crunch::ipc
