#include "daemon/task_codec.h"

#include <gtest/gtest.h>

namespace crunch::daemon {
namespace {

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

TEST(TaskCodec, RoundTripsParamsAndPayload) {
  TaskParams params({{"n", "30"}, {"url", "http://x/"}});
  std::string input = EncodeParamsHeader(params) + "payload";
  absl::StatusOr<DecodedTaskInput> d = DecodeTaskInput(Bytes(input));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->params.Int("n"), 30);
  EXPECT_EQ(d->params.String("url"), "http://x/");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(d->payload.data()), d->payload.size()),
            "payload");
}

TEST(TaskCodec, EmptyParamsAndPayload) {
  std::string input = EncodeParamsHeader(TaskParams());
  absl::StatusOr<DecodedTaskInput> d = DecodeTaskInput(Bytes(input));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->params.values().empty());
  EXPECT_TRUE(d->payload.empty());
}

TEST(TaskCodec, RejectsEveryTruncation) {
  std::string input = EncodeParamsHeader(
      TaskParams(std::map<std::string, std::string, std::less<>>{{"name", "value"}}));
  for (size_t n = 0; n < input.size(); ++n) {
    EXPECT_FALSE(DecodeTaskInput(Bytes(input.substr(0, n))).ok()) << "prefix of " << n;
  }
}

TEST(TaskCodec, RejectsALengthPastTheEnd) {
  std::string input =
      EncodeParamsHeader(TaskParams(std::map<std::string, std::string, std::less<>>{{"a", "b"}}));
  input[4] = '\xff';  // name length
  EXPECT_EQ(DecodeTaskInput(Bytes(input)).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace crunch::daemon
