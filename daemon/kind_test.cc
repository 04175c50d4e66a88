#include "daemon/kind.h"

#include <gtest/gtest.h>

namespace crunch::daemon {
namespace {

KindSpec FibLike() {
  KindSpec spec;
  spec.name = "fib";
  spec.params = {ParamSpec{.name = "n",
                           .type = ParamSpec::Type::kInt,
                           .description = "index",
                           .required = true,
                           .min = 0,
                           .max = 45},
                 ParamSpec{.name = "label", .type = ParamSpec::Type::kString, .description = "tag"},
                 ParamSpec{.name = "level",
                           .type = ParamSpec::Type::kInt,
                           .description = "lvl",
                           .default_value = "3",
                           .min = 1,
                           .max = 19}};
  return spec;
}

TEST(ValidateParams, FillsDefaultsAndKeepsGivenValues) {
  absl::StatusOr<TaskParams> p = ValidateParams(FibLike(), {{"n", "30"}});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->Int("n"), 30);
  EXPECT_EQ(p->Int("level"), 3);
  EXPECT_EQ(p->String("label"), "");
}

TEST(ValidateParams, RejectsNonIntegerNamingTheRange) {
  absl::StatusOr<TaskParams> p = ValidateParams(FibLike(), {{"n", "abc"}});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(), "param 'n' must be an integer in 0..45, got 'abc'");
}

TEST(ValidateParams, RejectsOutOfRange) {
  EXPECT_EQ(ValidateParams(FibLike(), {{"n", "46"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateParams(FibLike(), {{"n", "-1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ValidateParams, RejectsUnknownNamingWhatIsAllowed) {
  absl::StatusOr<TaskParams> p = ValidateParams(FibLike(), {{"n", "1"}, {"m", "2"}});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message(), "unknown param 'm'; kind 'fib' takes: n, label, level");
}

TEST(ValidateParams, RejectsMissingRequired) {
  absl::StatusOr<TaskParams> p = ValidateParams(FibLike(), {});
  ASSERT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("'n' is required"), std::string::npos);
}

}  // namespace
}  // namespace crunch::daemon
