#include "ipc/segment.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace crunch::ipc {
namespace {

using ::testing::HasSubstr;

SegmentOptions SmallOptions() { return {2, 8, 64 * 1024}; }

TEST(Segment, CreateThenAttachSeesTheSameLayout) {
  absl::StatusOr<Segment> created = Segment::Create(SmallOptions());
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<Segment> attached = Segment::Attach(created->fd());
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_EQ(attached->layout(), created->layout());
  EXPECT_EQ(attached->fd(), -1);
}

TEST(Segment, BothMappingsShareMemory) {
  absl::StatusOr<Segment> created = Segment::Create(SmallOptions());
  ASSERT_TRUE(created.ok());
  absl::StatusOr<Segment> attached = Segment::Attach(created->fd());
  ASSERT_TRUE(attached.ok());
  created->Bytes({4096, 1})[0] = std::byte{42};
  EXPECT_EQ(attached->Bytes({4096, 1})[0], std::byte{42});
  created->slot(1)->worker_pid.store(77);
  EXPECT_EQ(attached->slot(1)->worker_pid.load(), 77u);
}

TEST(Segment, LayoutKeepsRegionsApartAndAligned) {
  absl::StatusOr<SegmentLayout> layout = ComputeSegmentLayout({3, 16, 100'000});
  ASSERT_TRUE(layout.ok());
  EXPECT_GE(layout->slots_offset, sizeof(SegmentHeader));
  EXPECT_GE(layout->descriptors_offset, layout->slots_offset + 3 * sizeof(SlotControl));
  EXPECT_GE(layout->arena_offset, layout->descriptors_offset + 3 * 2 * 16 * sizeof(Descriptor));
  EXPECT_EQ(layout->arena_offset % 4096, 0u);
  EXPECT_EQ(layout->slots_offset % kFalseSharingRange, 0u);
  EXPECT_EQ(layout->total_bytes, layout->arena_offset + layout->arena_bytes);
  EXPECT_GE(layout->arena_bytes, 100'000u);
}

TEST(Segment, RejectsBadOptionsNamingTheRange) {
  EXPECT_THAT(ComputeSegmentLayout({0, 8, 1 << 20}).status().message(),
              HasSubstr("worker_slots must be in 1..1024, got 0"));
  EXPECT_THAT(ComputeSegmentLayout({1, 12, 1 << 20}).status().message(),
              HasSubstr("ring_capacity must be a power of two in 2..65536, got 12"));
  EXPECT_THAT(ComputeSegmentLayout({1, 8, 10}).status().message(),
              HasSubstr("arena_bytes must be in 65536.."));
}

TEST(Segment, ContainsRejectsOutOfRangeAndOverflowingExtents) {
  absl::StatusOr<Segment> s = Segment::Create(SmallOptions());
  ASSERT_TRUE(s.ok());
  const uint64_t size = s->layout().arena_bytes;
  EXPECT_TRUE(s->Contains({0, size}));
  EXPECT_TRUE(s->Contains({size, 0}));
  EXPECT_FALSE(s->Contains({0, size + 1}));
  EXPECT_FALSE(s->Contains({size + 1, 0}));
  EXPECT_FALSE(s->Contains({8, UINT64_MAX - 4}));  // offset + length wraps.
}

TEST(Segment, SizeIsSealed) {
  absl::StatusOr<Segment> s = Segment::Create(SmallOptions());
  ASSERT_TRUE(s.ok());
  EXPECT_NE(::ftruncate(s->fd(), 4096), 0) << "a worker could shrink the segment under the daemon";
  EXPECT_EQ(errno, EPERM);
}

TEST(Segment, AttachRejectsWrongLayoutVersionWithDocumentedError) {
  absl::StatusOr<Segment> s = Segment::Create(SmallOptions());
  ASSERT_TRUE(s.ok());
  s->header_for_testing()->layout_version = kSegmentLayoutVersion + 1;
  absl::StatusOr<Segment> attached = Segment::Attach(s->fd());
  EXPECT_EQ(attached.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(attached.status().message(),
              HasSubstr(absl::StrCat("segment layout version ", kSegmentLayoutVersion + 1,
                                     ", this build understands version ", kSegmentLayoutVersion)));
  EXPECT_THAT(attached.status().message(), HasSubstr("different builds"));
}

TEST(Segment, AttachRejectsWrongMagic) {
  absl::StatusOr<Segment> s = Segment::Create(SmallOptions());
  ASSERT_TRUE(s.ok());
  s->header_for_testing()->magic = 0x1234;
  absl::StatusOr<Segment> attached = Segment::Attach(s->fd());
  EXPECT_EQ(attached.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(attached.status().message(), HasSubstr("not a crunchd segment"));
  EXPECT_THAT(attached.status().message(), HasSubstr("magic 0x0000000000001234"));
}

TEST(Segment, AttachRejectsInconsistentHeader) {
  absl::StatusOr<Segment> s = Segment::Create(SmallOptions());
  ASSERT_TRUE(s.ok());
  s->header_for_testing()->arena_offset += 4096;
  absl::StatusOr<Segment> attached = Segment::Attach(s->fd());
  EXPECT_EQ(attached.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(attached.status().message(),
              HasSubstr("segment header is inconsistent: arena_offset"));
}

TEST(Segment, AttachRejectsAFileTooSmallForAHeader) {
  int fd = ::memfd_create("not-a-segment", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 16), 0);
  absl::StatusOr<Segment> attached = Segment::Attach(fd);
  EXPECT_THAT(attached.status().message(), HasSubstr("not a crunchd segment"));
  ::close(fd);
}

TEST(Segment, AttachRejectsABadFd) {
  absl::StatusOr<Segment> attached = Segment::Attach(987);
  EXPECT_FALSE(attached.ok());
  EXPECT_THAT(attached.status().message(), HasSubstr("fstat(segment fd 987)"));
}

}  // namespace
}  // namespace crunch::ipc
