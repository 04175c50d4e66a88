#include "ipc/spsc_ring.h"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "ipc/testing/test_ring_item.h"

namespace crunch::ipc {
namespace {

using Item = testing::TestRingItem;

struct Ring {
  explicit Ring(uint32_t capacity) : slots(capacity) {
    ResetRing(&control, slots.data(), capacity);
  }
  SpscProducer<Item> producer() { return {&control, slots.data(), capacity()}; }
  SpscConsumer<Item> consumer() { return {&control, slots.data(), capacity()}; }
  uint32_t capacity() const { return static_cast<uint32_t>(slots.size()); }

  RingControl control;
  std::vector<Item> slots;
};

TEST(SpscRing, StartsEmpty) {
  Ring ring(4);
  auto consumer = ring.consumer();
  Item item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
}

TEST(SpscRing, PopsInPushOrder) {
  Ring ring(4);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  ASSERT_EQ(producer.TryPush(10), RingResult::kOk);
  ASSERT_EQ(producer.TryPush(11), RingResult::kOk);
  Item item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item.value, 10u);
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item.value, 11u);
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
}

TEST(SpscRing, RejectsPushWhenFull) {
  Ring ring(4);
  auto producer = ring.producer();
  for (uint64_t i = 0; i < 4; ++i) ASSERT_EQ(producer.TryPush(i), RingResult::kOk);
  EXPECT_EQ(producer.TryPush(4), RingResult::kFull);
  auto consumer = ring.consumer();
  Item item;
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
      Item item;
      ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
      ASSERT_EQ(item.value, next_out++);
    }
  }
  // 125 cycles of 1+2+...+8 items: the indices passed the capacity ~560 times.
  EXPECT_EQ(ring.control.head.load(), 4500u);
}

TEST(SpscRing, StagedItemsAreInvisibleUntilPublished) {
  Ring ring(8);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  ASSERT_EQ(producer.Stage(1), RingResult::kOk);
  ASSERT_EQ(producer.Stage(2), RingResult::kOk);
  Item item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
  producer.Publish();
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item.value, 1u);
}

TEST(SpscRing, ConsumerRejectsASequenceFromTheFuture) {
  Ring ring(4);
  auto consumer = ring.consumer();
  ring.slots[0].sequence = 5;  // Item 4 cannot be in slot 0 before items 0..3 were read.
  Item item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kCorrupt);
}

TEST(SpscRing, ConsumerRejectsASequenceFromTheDistantPast) {
  Ring ring(4);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  Item item;
  for (uint64_t i = 0; i < 8; ++i) {  // Two laps: slot 0 held items 0 and 4.
    ASSERT_EQ(producer.TryPush(i), RingResult::kOk);
    ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  }
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty) << "slot 0 holds item 4, a lap ago";
  ring.slots[0].sequence = 1;  // Item 0: two laps ago, which no honest producer leaves.
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kCorrupt);
}

TEST(SpscRing, ResetClearsTheSlots) {
  // A new consumer on a reused ring must not take the last life's items for new ones.
  Ring ring(4);
  auto producer = ring.producer();
  ASSERT_EQ(producer.TryPush(1), RingResult::kOk);
  ResetRing(&ring.control, ring.slots.data(), ring.capacity());
  auto consumer = ring.consumer();
  Item item;
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
}

TEST(SpscRing, PushIgnoresTheItemsSequence) {
  Ring ring(4);
  auto producer = ring.producer();
  auto consumer = ring.consumer();
  Item forged(9);
  forged.sequence = 3;
  ASSERT_EQ(producer.TryPush(forged), RingResult::kOk);
  Item item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item.value, 9u);
  EXPECT_EQ(consumer.TryPop(&item), RingResult::kEmpty);
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
  Item item;
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  ring.control.head.store(0);
  ASSERT_EQ(consumer.TryPop(&item), RingResult::kOk);
  EXPECT_EQ(item.value, 8u);
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
    Item item;
    RingResult r = consumer.TryPop(&item);
    ASSERT_NE(r, RingResult::kCorrupt);
    if (r == RingResult::kEmpty) {
      std::this_thread::yield();
      continue;
    }
    ASSERT_EQ(item.value, expected);
    ++expected;
  }
  producer_thread.join();
}

}  // namespace
}  // namespace crunch::ipc
