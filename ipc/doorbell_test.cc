#include "ipc/doorbell.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ipc/testing/test_ring_item.h"
#include "ipc/unique_fd.h"

namespace crunch::ipc {
namespace {

struct BelledRing {
  BelledRing() : slots(16), fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    ResetRing(&control, slots.data(), 16);
  }
  SpscProducer<testing::TestRingItem> producer() { return {&control, slots.data(), 16}; }
  SpscConsumer<testing::TestRingItem> consumer() { return {&control, slots.data(), 16}; }
  Doorbell bell() { return {&control, fd.get()}; }
  bool EventPending() {
    uint64_t count;
    return ::read(fd.get(), &count, sizeof(count)) == sizeof(count);
  }

  RingControl control;
  std::vector<testing::TestRingItem> slots;
  UniqueFd fd;
};

// Sleeps until `consumer` has an item. A sleep that times out while an item is
// already waiting is a lost wake-up, told apart from a slow producer.
::testing::AssertionResult SleepUntilItem(Doorbell& bell,
                                          SpscConsumer<testing::TestRingItem>& consumer) {
  while (bell.PrepareToSleep(consumer)) {
    const bool rung = bell.Sleep(10'000);
    bell.ClearAnnouncement();
    if (!rung) {
      if (consumer.Refresh() == RingResult::kOk) {
        return ::testing::AssertionFailure() << "lost wake-up: an item waited 10 s unrung";
      }
      return ::testing::AssertionFailure() << "nothing arrived in 10 s";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(Doorbell, RingIsSilentWhileConsumerIsAwake) {
  BelledRing ring;
  auto producer = ring.producer();
  ASSERT_EQ(producer.TryPush(1), RingResult::kOk);
  ring.bell().Ring();
  EXPECT_FALSE(ring.EventPending()) << "no syscall needed when nobody sleeps";
}

TEST(Doorbell, RingWakesAnnouncedSleeper) {
  BelledRing ring;
  auto consumer = ring.consumer();
  Doorbell bell = ring.bell();
  ASSERT_TRUE(bell.PrepareToSleep(consumer));
  auto producer = ring.producer();
  ASSERT_EQ(producer.TryPush(1), RingResult::kOk);
  bell.Ring();
  EXPECT_TRUE(bell.Sleep(0)) << "the eventfd must be readable";
  bell.ClearAnnouncement();
  EXPECT_EQ(ring.control.consumer_sleeping.load(), 0u);
}

TEST(Doorbell, SleepOnABlockingFdConsumesTheRing) {
  BelledRing ring;
  ring.fd.Reset(::eventfd(0, EFD_CLOEXEC));  // Blocking, as a worker's request fd is.
  auto consumer = ring.consumer();
  Doorbell bell = ring.bell();
  ASSERT_TRUE(bell.PrepareToSleep(consumer));
  bell.Ring();
  EXPECT_TRUE(bell.Sleep(-1));
  bell.ClearAnnouncement();
  ASSERT_TRUE(bell.PrepareToSleep(consumer));
  EXPECT_FALSE(bell.Sleep(0)) << "the count must have been consumed by the first sleep";
}

TEST(Doorbell, PrepareToSleepRefusesWhenItemsWait) {
  BelledRing ring;
  auto producer = ring.producer();
  ASSERT_EQ(producer.TryPush(1), RingResult::kOk);
  auto consumer = ring.consumer();
  EXPECT_FALSE(ring.bell().PrepareToSleep(consumer));
  EXPECT_EQ(ring.control.consumer_sleeping.load(), 0u);
}

TEST(Doorbell, WaitTimesOutOnAnEmptyRing) {
  BelledRing ring;
  auto consumer = ring.consumer();
  EXPECT_EQ(ring.bell().Wait(consumer, SpinPolicy{std::chrono::nanoseconds(0)}, 10),
            RingResult::kEmpty);
}

// Ping-pong between two threads that always sleep: a single lost wake-up
// fails the test.
TEST(Doorbell, NoLostWakeUpsWhenBothSidesSleep) {
#ifdef CRUNCH_SANITIZED
  constexpr uint64_t kRounds = 20'000;
#else
  constexpr uint64_t kRounds = 200'000;
#endif
  BelledRing ping, pong;
  std::atomic<bool> echo_failed{false};
  std::thread echo([&] {
    auto in = ping.consumer();
    auto out = pong.producer();
    Doorbell in_bell = ping.bell(), out_bell = pong.bell();
    for (uint64_t i = 0; i < kRounds; ++i) {
      if (!SleepUntilItem(in_bell, in)) {
        echo_failed = true;
        return;
      }
      testing::TestRingItem item;
      if (in.TryPop(&item) != RingResult::kOk) return;
      out.TryPush(item.value + 1);
      out_bell.Ring();
    }
  });
  auto out = ping.producer();
  auto in = pong.consumer();
  Doorbell out_bell = ping.bell(), in_bell = pong.bell();
  for (uint64_t i = 0; i < kRounds; ++i) {
    ASSERT_EQ(out.TryPush(i), RingResult::kOk);
    out_bell.Ring();
    ASSERT_TRUE(SleepUntilItem(in_bell, in)) << "round " << i;
    testing::TestRingItem item;
    ASSERT_EQ(in.TryPop(&item), RingResult::kOk);
    ASSERT_EQ(item.value, i + 1);
  }
  echo.join();
  EXPECT_FALSE(echo_failed) << "the echo thread lost a wake-up";
}

// The same with Wait(), which sleeps on the futex: a single lost wake-up
// times a Wait() out while an item is waiting.
TEST(Doorbell, NoLostWakeUpsWhenBothSidesSleepOnTheFutex) {
#ifdef CRUNCH_SANITIZED
  constexpr uint64_t kRounds = 20'000;
#else
  constexpr uint64_t kRounds = 200'000;
#endif
  constexpr SpinPolicy kNoSpin{std::chrono::nanoseconds(0)};
  BelledRing ping, pong;
  std::atomic<uint64_t> echo_failed_at{UINT64_MAX};
  std::thread echo([&] {
    auto in = ping.consumer();
    auto out = pong.producer();
    Doorbell in_bell = ping.bell(), out_bell = pong.bell();
    for (uint64_t i = 0; i < kRounds; ++i) {
      testing::TestRingItem item;
      if (in_bell.Wait(in, kNoSpin, 10'000) != RingResult::kOk ||
          in.TryPop(&item) != RingResult::kOk) {
        echo_failed_at = i;
        return;
      }
      out.TryPush(item.value + 1);
      out_bell.Ring();
    }
  });
  auto out = ping.producer();
  auto in = pong.consumer();
  Doorbell out_bell = ping.bell(), in_bell = pong.bell();
  for (uint64_t i = 0; i < kRounds; ++i) {
    ASSERT_EQ(out.TryPush(i), RingResult::kOk);
    out_bell.Ring();
    ASSERT_EQ(in_bell.Wait(in, kNoSpin, 10'000), RingResult::kOk) << "round " << i;
    testing::TestRingItem item;
    ASSERT_EQ(in.TryPop(&item), RingResult::kOk);
    ASSERT_EQ(item.value, i + 1);
  }
  echo.join();
  EXPECT_EQ(echo_failed_at, UINT64_MAX) << "the echo thread lost a wake-up";
  EXPECT_FALSE(ping.EventPending() || pong.EventPending()) << "futex sleepers need no eventfd";
}

TEST(Doorbell, RingWakesAFutexSleeperAndClearsTheFlag) {
  BelledRing ring;
  auto consumer = ring.consumer();
  std::thread sleeper([&] {
    EXPECT_EQ(ring.bell().Wait(consumer, SpinPolicy{std::chrono::nanoseconds(0)}, 10'000),
              RingResult::kOk);
  });
  while (ring.control.consumer_sleeping.load() != Doorbell::kSleepsOnFutex)
    std::this_thread::yield();
  auto producer = ring.producer();
  ASSERT_EQ(producer.TryPush(1), RingResult::kOk);
  ring.bell().Ring();
  sleeper.join();
  EXPECT_EQ(ring.control.consumer_sleeping.load(), Doorbell::kAwake);
}

}  // namespace
}  // namespace crunch::ipc
