#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/plugin/testing/plugin_host.h"

namespace crunch::testing {
namespace {

using std::string_literals::operator""s;

// A binary PGM whose pixel (x, y) is pixel(x, y).
std::string Pgm(int width, int height, const std::function<int(int, int)>& pixel,
                int maxval = 255) {
  std::string pgm = absl::StrCat("P5\n", width, " ", height, "\n", maxval, "\n");
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) pgm.push_back(static_cast<char>(pixel(x, y)));
  }
  return pgm;
}

std::string Constant(int width, int height, int value) {
  return Pgm(width, height, [value](int, int) { return value; });
}

class ImagekitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    const crunch_plugin* plugin = LoadPlugin(CRUNCH_IMAGEKIT_PLUGIN, error);
    ASSERT_NE(plugin, nullptr) << error;
    EXPECT_EQ(plugin->abi_version, CRUNCH_PLUGIN_ABI_VERSION);
    EXPECT_STREQ(plugin->name, "imagekit");
    blur_ = FindKind(*plugin, "image.blur");
    resize_ = FindKind(*plugin, "image.resize");
    ASSERT_NE(blur_, nullptr);
    ASSERT_NE(resize_, nullptr);
  }

  TaskResult Blur(std::string_view input, std::map<std::string, std::string> params = {}) {
    return RunTask(*blur_, input, {.params = std::move(params)});
  }
  TaskResult Resize(std::string_view input, int width, int height) {
    return RunTask(*resize_, input,
                   {.params = {{"width", absl::StrCat(width)}, {"height", absl::StrCat(height)}}});
  }

  const crunch_kind* blur_ = nullptr;
  const crunch_kind* resize_ = nullptr;
};

TEST_F(ImagekitTest, DeclaresItsParams) {
  const crunch_param_spec* sigma = FindParam(*blur_, "sigma_tenths");
  ASSERT_NE(sigma, nullptr);
  EXPECT_STREQ(sigma->default_value, "10");
  EXPECT_EQ(sigma->min, 1);
  EXPECT_EQ(sigma->max, 200);
  for (const char* name : {"width", "height"}) {
    const crunch_param_spec* side = FindParam(*resize_, name);
    ASSERT_NE(side, nullptr) << name;
    EXPECT_TRUE(side->required) << name;
    EXPECT_EQ(side->min, 1) << name;
    EXPECT_EQ(side->max, 16384) << name;
  }
}

TEST_F(ImagekitTest, BlurKeepsDimensionsAndSpreadsAPoint) {
  const std::string input = Pgm(15, 9, [](int x, int y) { return x == 7 && y == 4 ? 255 : 0; });
  const TaskResult r = Blur(input, {{"sigma_tenths", "15"}});
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  ASSERT_EQ(r.output.size(), input.size());
  EXPECT_EQ(r.output.substr(0, 12), "P5\n15 9\n255\n");
  const auto pixel = [&r](int x, int y) { return static_cast<uint8_t>(r.output[12 + y * 15 + x]); };
  EXPECT_LT(pixel(7, 4), 255);
  EXPECT_GT(pixel(7, 4), pixel(8, 4));
  EXPECT_GT(pixel(8, 4), pixel(10, 4));
  EXPECT_EQ(pixel(6, 4), pixel(8, 4));  // Symmetric.
  EXPECT_EQ(pixel(7, 3), pixel(7, 5));
  EXPECT_EQ(pixel(0, 0), 0);
}

TEST_F(ImagekitTest, BlurLeavesAFlatImageFlat) {
  const std::string input = Constant(40, 30, 77);
  const TaskResult r = Blur(input, {{"sigma_tenths", "200"}});
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, input);
}

TEST_F(ImagekitTest, BlurKeepsMaxvalAndReadsComments) {
  const std::string input = "P5\n# made by hand\n3 # width\n2\n15\n\x0f\x0f\x0f\x0f\x0f\x0f";
  const TaskResult r = Blur(input);
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, Pgm(
                          3, 2, [](int, int) { return 15; }, /*maxval=*/15));
}

TEST_F(ImagekitTest, ResizeMakesTheRequestedDimensions) {
  const TaskResult r = Resize(Constant(4, 4, 200), 8, 2);
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, Constant(8, 2, 200));
}

TEST_F(ImagekitTest, ResizeInterpolatesBilinearly) {
  const TaskResult r = Resize(Pgm(2, 1, [](int x, int) { return x * 255; }), 4, 1);
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  // Pixel centres 0..3 map to -0.25 (clamped to 0), 0.25, 0.75 and 1.25 (clamped to 1).
  EXPECT_EQ(r.output, "P5\n4 1\n255\n\x00\x40\xbf\xff"s);
}

TEST_F(ImagekitTest, ResizeToTheSameSizeIsTheIdentity) {
  const std::string input = Pgm(17, 5, [](int x, int y) { return (x * 31 + y * 17) % 256; });
  const TaskResult r = Resize(input, 17, 5);
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, input);
}

TEST_F(ImagekitTest, RejectsWhatIsNotABinaryPgm) {
  const std::string bad[] = {
      "",
      "hello",
      "P6\n1 1\n255\n\x01\x02\x03",       // A colour image.
      "P2\n1 1\n255\n7\n",                // Plain (ASCII) PGM.
      "P5\n2 2\n255\n\x01\x02\x03",       // Pixels missing.
      "P5\n2 2\n255\n\x01\x02\x03\x04!",  // Bytes after them.
      "P5\n2 2\n65535\n\x01\x02\x03\x04\x05\x06\x07\x08",
      "P5\n0 2\n255\n",
      "P5\n2\n255\n\x01\x02",
      "P5\n99999999999 99999999999\n255\n\x01",
      "P5\n100000 100000\n255\n\x01",
      "P5\n2 1\n255",
  };
  for (const std::string& input : bad) {
    TaskResult r = Blur(input);
    EXPECT_EQ(r.code, CRUNCH_INVALID_ARGUMENT) << "input: " << input;
    EXPECT_NE(r.message.find("P5"), std::string::npos) << r.message;
    EXPECT_EQ(r.output, "");
    r = Resize(input, 4, 4);
    EXPECT_EQ(r.code, CRUNCH_INVALID_ARGUMENT) << "input: " << input;
    EXPECT_NE(r.message.find("P5"), std::string::npos) << r.message;
  }
}

TEST_F(ImagekitTest, FailsWhenTheOutputDoesNotFit) {
  TaskResult r = Resize(Constant(4, 4, 1), 16384, 16384);  // 256 MiB, over the 64 MiB allowed.
  EXPECT_EQ(r.code, CRUNCH_RESOURCE_EXHAUSTED);
  EXPECT_NE(r.message.find("16384x16384"), std::string::npos) << r.message;
  EXPECT_EQ(r.output, "");

  r = RunTask(*blur_, Constant(100, 100, 1), {.max_output_bytes = 5000});
  EXPECT_EQ(r.code, CRUNCH_RESOURCE_EXHAUSTED);
  EXPECT_NE(r.message.find("100x100"), std::string::npos) << r.message;
}

TEST_F(ImagekitTest, StopsWhenCancelledOrPastItsDeadline) {
  const std::string input = Constant(64, 64, 9);
  TaskResult r = RunTask(*blur_, input, {.should_stop = CRUNCH_CANCELLED});
  EXPECT_EQ(r.code, CRUNCH_CANCELLED);
  EXPECT_NE(r.message.find("cancelled"), std::string::npos) << r.message;
  r = RunTask(
      *resize_, input,
      {.params = {{"width", "32"}, {"height", "32"}}, .should_stop = CRUNCH_DEADLINE_EXCEEDED});
  EXPECT_EQ(r.code, CRUNCH_DEADLINE_EXCEEDED);
  EXPECT_NE(r.message.find("deadline"), std::string::npos) << r.message;
}

}  // namespace
}  // namespace crunch::testing
