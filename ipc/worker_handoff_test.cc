#include "ipc/worker_handoff.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace crunch::ipc {
namespace {

using ::testing::HasSubstr;

TEST(WorkerHandoff, EncodeThenParseRoundTrips) {
  WorkerHandoff h{3, 4, 5, 17, 1234};
  absl::StatusOr<WorkerHandoff> parsed = WorkerHandoff::Parse(h.Encode());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, h);
}

TEST(WorkerHandoff, RejectsMissingVersionTag) {
  EXPECT_THAT(WorkerHandoff::Parse("segment=3").status().message(), HasSubstr("no version tag"));
}

TEST(WorkerHandoff, RejectsMissingField) {
  EXPECT_THAT(WorkerHandoff::Parse("v1 segment=3 request=4 completion=5 slot=0").status().message(),
              HasSubstr("lacks field \"parent\""));
}

TEST(WorkerHandoff, RejectsUnknownField) {
  EXPECT_THAT(WorkerHandoff::Parse("v1 segment=3 colour=4").status().message(),
              HasSubstr("unknown field \"colour\""));
}

TEST(WorkerHandoff, RejectsNonNumericValue) {
  EXPECT_THAT(WorkerHandoff::Parse("v1 segment=x").status().message(),
              HasSubstr("\"segment=x\" needs a non-negative integer"));
}

}  // namespace
}  // namespace crunch::ipc
