#include "rpc/internal/call_timeout.h"

#include <gtest/gtest.h>

namespace crunch::rpc {
namespace {

using std::chrono::milliseconds;

TEST(CallTimeoutMs, KeepsWhatFits) {
  EXPECT_EQ(CallTimeoutMs(milliseconds(1)), 1u);
  EXPECT_EQ(CallTimeoutMs(milliseconds(60'000)), 60'000u);
  EXPECT_EQ(CallTimeoutMs(milliseconds(UINT32_MAX)), UINT32_MAX);
}

TEST(CallTimeoutMs, AnExpiredDeadlineIsOneMillisecondNotNone) {
  EXPECT_EQ(CallTimeoutMs(milliseconds(0)), 1u);
  EXPECT_EQ(CallTimeoutMs(milliseconds(-5000)), 1u);
}

TEST(CallTimeoutMs, AFarDeadlineIsClampedNotWrapped) {
  // 2^32 + 100 ms used to become 100 ms.
  EXPECT_EQ(CallTimeoutMs(milliseconds((int64_t{1} << 32) + 100)), UINT32_MAX);
  EXPECT_EQ(CallTimeoutMs(std::chrono::hours(24 * 365 * 100)), UINT32_MAX);
}

}  // namespace
}  // namespace crunch::rpc
