// DaemonChannel against an in-process WorkerChannel (the same code a worker
// process runs), for protocol checks that need a worker to misbehave on cue.
// worker_process_test.cc covers real worker processes.

#include "ipc/daemon_channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "ipc/worker_channel.h"

namespace crunch::ipc {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr SpinPolicy kNoSpin{std::chrono::nanoseconds(0)};

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

class DaemonChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Segment> s = Segment::Create({1, 4, 64 * 1024});
    ASSERT_TRUE(s.ok()) << s.status();
    segment_.emplace(*std::move(s));
    arena_.emplace(segment_->layout().arena_bytes);
    absl::StatusOr<DaemonChannel> c = DaemonChannel::Create(&*segment_, 0, &*arena_);
    ASSERT_TRUE(c.ok()) << c.status();
    channel_.emplace(*std::move(c));
    absl::StatusOr<WorkerChannel> w = WorkerChannel::Attach(channel_->Handoff());
    ASSERT_TRUE(w.ok()) << w.status();
    worker_.emplace(*std::move(w));
  }

  Descriptor Receive() {
    Descriptor d;
    EXPECT_EQ(worker_->Receive(&d, kNoSpin, 1000), RingResult::kOk);
    return d;
  }

  std::optional<Segment> segment_;
  std::optional<ArenaAllocator> arena_;
  std::optional<DaemonChannel> channel_;
  std::optional<WorkerChannel> worker_;
};

TEST_F(DaemonChannelTest, AttachAnnouncesTheWorker) {
  EXPECT_TRUE(channel_->worker_attached());
  EXPECT_EQ(channel_->WaitForCompletions(kNoSpin, 0), RingResult::kEmpty);
}

TEST_F(DaemonChannelTest, RoundTripCarriesInputOutputAndStatus) {
  ASSERT_EQ(channel_->Submit(41, 7, Bytes("hello"), 16), SubmitResult::kOk);
  Descriptor d = Receive();
  EXPECT_EQ(d.task_id, 41u);
  EXPECT_EQ(d.kind, 7u);
  std::span<const std::byte> in = worker_->Input(d);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(in.data()), in.size()), "hello");
  std::memcpy(worker_->Output(d).data(), "world!", 6);
  ASSERT_EQ(worker_->Complete(d, 3, 6), RingResult::kOk);

  std::vector<std::string> outputs;
  absl::StatusOr<size_t> n = channel_->DrainCompletions([&](const Completion& c) {
    EXPECT_EQ(c.task_id, 41u);
    EXPECT_EQ(c.kind, 7u);
    EXPECT_EQ(c.status, 3u);
    outputs.emplace_back(reinterpret_cast<const char*>(c.output.data()), c.output.size());
  });
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_THAT(outputs, ElementsAre("world!"));
  EXPECT_EQ(arena_->bytes_in_use(), 0u);
  EXPECT_EQ(channel_->in_flight(), 0u);
}

TEST_F(DaemonChannelTest, SubmitGatherJoinsThePartsInOrder) {
  // Named: spans over temporaries would dangle before SubmitGather() reads them.
  const std::string head = "head|", empty, body = "body";
  const std::span<const std::byte> parts[] = {Bytes(head), Bytes(empty), Bytes(body)};
  ASSERT_EQ(channel_->SubmitGather(5, 1, parts, 0), SubmitResult::kOk);
  Descriptor d = Receive();
  std::span<const std::byte> in = worker_->Input(d);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(in.data()), in.size()), "head|body");
}

TEST_F(DaemonChannelTest, RefusesMoreInFlightThanTheRingHolds) {
  for (uint64_t id = 0; id < 4; ++id) {
    ASSERT_EQ(channel_->Submit(id, 1, {}, 0), SubmitResult::kOk);
  }
  EXPECT_EQ(channel_->Submit(4, 1, {}, 0), SubmitResult::kSlotBusy);
}

TEST_F(DaemonChannelTest, RefusesWhenTheArenaIsFull) {
  EXPECT_EQ(channel_->Submit(1, 1, {}, 1 << 20), SubmitResult::kArenaFull);
  EXPECT_EQ(arena_->bytes_in_use(), 0u) << "a refused submit must not leak its input space";
}

TEST_F(DaemonChannelTest, RejectsCompletionForUnknownTicket) {
  ASSERT_EQ(channel_->Submit(1, 1, {}, 0), SubmitResult::kOk);
  Descriptor d = Receive();
  d.ticket = 3;  // Never handed out.
  ASSERT_EQ(worker_->Complete(d, 0, 0), RingResult::kOk);
  absl::StatusOr<size_t> n = channel_->DrainCompletions([](const Completion&) {});
  EXPECT_EQ(n.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(n.status().message(), HasSubstr("ticket 3, which is not in flight"));
}

TEST_F(DaemonChannelTest, RejectsCompletionWithAnotherTasksId) {
  ASSERT_EQ(channel_->Submit(1, 1, {}, 0), SubmitResult::kOk);
  Descriptor d = Receive();
  d.task_id = 999;
  ASSERT_EQ(worker_->Complete(d, 0, 0), RingResult::kOk);
  absl::StatusOr<size_t> n = channel_->DrainCompletions([](const Completion&) {});
  EXPECT_THAT(n.status().message(), HasSubstr("which belongs to task 1"));
}

TEST_F(DaemonChannelTest, RejectsOutputOutsideTheLentExtent) {
  ASSERT_EQ(channel_->Submit(1, 1, {}, 64), SubmitResult::kOk);
  Descriptor d = Receive();
  d.output.offset += 256;  // Points at memory the daemon did not lend.
  ASSERT_EQ(worker_->Complete(d, 0, 8), RingResult::kOk);
  bool called = false;
  absl::StatusOr<size_t> n = channel_->DrainCompletions([&](const Completion&) { called = true; });
  EXPECT_THAT(n.status().message(), HasSubstr("outside the 64 bytes lent"));
  EXPECT_FALSE(called) << "the daemon must not read bytes it did not lend";
}

TEST_F(DaemonChannelTest, RejectsOverlongOutput) {
  ASSERT_EQ(channel_->Submit(1, 1, {}, 64), SubmitResult::kOk);
  Descriptor d = Receive();
  // Complete() clamps honest workers, so forge the descriptor in the ring itself.
  ASSERT_EQ(worker_->Complete(d, 0, 64), RingResult::kOk);
  segment_->completion_slots(0)[0].output.length = 1 << 30;
  absl::StatusOr<size_t> n = channel_->DrainCompletions([](const Completion&) {});
  EXPECT_THAT(n.status().message(), HasSubstr("outside the 64 bytes lent"));
}

TEST_F(DaemonChannelTest, DetectsACorruptCompletionRing) {
  segment_->completion_slots(0)[0].sequence = 1000;  // Item 999 in an empty ring.
  absl::StatusOr<size_t> n = channel_->DrainCompletions([](const Completion&) {});
  EXPECT_THAT(n.status().message(), HasSubstr("corrupted its completion ring"));
}

TEST_F(DaemonChannelTest, ResetReturnsHeldTasksInOrderAndFreesTheirSpace) {
  ASSERT_EQ(channel_->Submit(10, 1, Bytes("a"), 100), SubmitResult::kOk);
  ASSERT_EQ(channel_->Submit(11, 1, Bytes("b"), 100), SubmitResult::kOk);
  ASSERT_EQ(channel_->Submit(12, 1, Bytes("c"), 100), SubmitResult::kOk);
  Descriptor d = Receive();  // The worker finishes task 10, then "dies".
  ASSERT_EQ(worker_->Complete(d, 0, 0), RingResult::kOk);
  worker_.reset();

  absl::StatusOr<size_t> n = channel_->DrainCompletions([](const Completion&) {});
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1u);
  EXPECT_THAT(channel_->Reset(), ElementsAre(11, 12));
  EXPECT_EQ(arena_->bytes_in_use(), 0u);
  EXPECT_EQ(channel_->in_flight(), 0u);
  EXPECT_FALSE(channel_->worker_attached());

  // A replacement starts from clean rings.
  absl::StatusOr<WorkerChannel> w = WorkerChannel::Attach(channel_->Handoff());
  ASSERT_TRUE(w.ok());
  worker_.emplace(*std::move(w));
  ASSERT_EQ(channel_->Submit(13, 1, {}, 0), SubmitResult::kOk);
  EXPECT_EQ(Receive().task_id, 13u);
}

TEST(DaemonChannel, CreateRejectsASlotOutsideTheSegment) {
  absl::StatusOr<Segment> s = Segment::Create({2, 4, 64 * 1024});
  ASSERT_TRUE(s.ok());
  ArenaAllocator arena(s->layout().arena_bytes);
  absl::StatusOr<DaemonChannel> c = DaemonChannel::Create(&*s, 2, &arena);
  EXPECT_THAT(c.status().message(), HasSubstr("slot must be in 0..1, got 2"));
}

}  // namespace
}  // namespace crunch::ipc
