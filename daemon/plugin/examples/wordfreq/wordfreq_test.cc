#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "daemon/plugin/testing/plugin_host.h"

namespace crunch::testing {
namespace {

class WordfreqTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    const crunch_plugin* plugin = LoadPlugin(CRUNCH_WORDFREQ_PLUGIN, error);
    ASSERT_NE(plugin, nullptr) << error;
    kind_ = FindKind(*plugin, "text.wordfreq");
    ASSERT_NE(kind_, nullptr);
  }

  TaskResult Run(std::string_view input, std::map<std::string, std::string> params = {}) {
    return RunTask(*kind_, input, {.params = std::move(params)});
  }

  const crunch_kind* kind_ = nullptr;
};

TEST(Wordfreq, DeclaresItsKindAndParams) {
  std::string error;
  const crunch_plugin* plugin = LoadPlugin(CRUNCH_WORDFREQ_PLUGIN, error);
  ASSERT_NE(plugin, nullptr) << error;
  EXPECT_EQ(plugin->abi_version, CRUNCH_PLUGIN_ABI_VERSION);
  EXPECT_STREQ(plugin->name, "wordfreq");
  ASSERT_EQ(plugin->kind_count, 1u);
  const crunch_kind& kind = plugin->kinds[0];
  EXPECT_STREQ(kind.name, "text.wordfreq");
  const crunch_param_spec* top = FindParam(kind, "top");
  ASSERT_NE(top, nullptr);
  EXPECT_EQ(top->type, CRUNCH_PARAM_INT);
  EXPECT_STREQ(top->default_value, "10");
  EXPECT_EQ(top->min, 1);
  EXPECT_EQ(top->max, 10000);
  const crunch_param_spec* min_length = FindParam(kind, "min_length");
  ASSERT_NE(min_length, nullptr);
  EXPECT_STREQ(min_length->default_value, "1");
  EXPECT_EQ(min_length->min, 1);
  EXPECT_EQ(min_length->max, 100);
}

TEST_F(WordfreqTest, CountsCaseInsensitivelyMostFrequentFirst) {
  const TaskResult r = Run("b a B, c b! a", {{"top", "2"}});
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, "3\tb\n2\ta\n");
}

TEST_F(WordfreqTest, DefaultTopIsTen) {
  std::string input;
  for (int i = 0; i < 12; ++i) absl::StrAppend(&input, "w", i, " ");
  const TaskResult r = Run(input);
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  // All are equally frequent: the first ten in byte order.
  EXPECT_EQ(r.output, "1\tw0\n1\tw1\n1\tw10\n1\tw11\n1\tw2\n1\tw3\n1\tw4\n1\tw5\n1\tw6\n1\tw7\n");
}

TEST_F(WordfreqTest, BreaksTiesInWordOrder) {
  const TaskResult r = Run("pear Apple fig apple PEAR fig ab a ab a");
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, "2\ta\n2\tab\n2\tapple\n2\tfig\n2\tpear\n");
}

TEST_F(WordfreqTest, SkipsWordsShorterThanMinLength) {
  const TaskResult r = Run("a bb ccc bb ccc ccc dd-a", {{"min_length", "2"}});
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, "3\tccc\n2\tbb\n1\tdd\n");
}

TEST_F(WordfreqTest, WordsAreLettersDigitsAndApostrophes) {
  const TaskResult r = Run("Don't DON'T don't 42 x42 caf\xc3\xa9 caf");
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, "3\tdon't\n2\tcaf\n1\t42\n1\tx42\n");
}

TEST_F(WordfreqTest, EmptyInputHasNoWords) {
  const TaskResult r = Run("");
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, "");
}

TEST_F(WordfreqTest, BinaryInputIsJustSeparators) {
  std::string input;
  for (int round = 0; round < 1000; ++round) {
    for (int c = 0; c < 256; ++c) input.push_back(static_cast<char>(c));
  }
  const TaskResult r = Run(input);
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  // Per round: "'", "0123456789", "A..Z" and "a..z" (the same word in lower case).
  EXPECT_EQ(r.output, "2000\tabcdefghijklmnopqrstuvwxyz\n1000\t'\n1000\t0123456789\n");
}

TEST_F(WordfreqTest, CountsALargeInput) {
  // 24 MiB of 40,000 distinct words in mixed case, each repeated a different number of times.
  constexpr size_t kInputBytes = size_t{24} << 20;
  constexpr uint64_t kWords = 40000;
  std::vector<uint64_t> counts(kWords);
  std::string input;
  input.reserve(kInputBytes + 64);
  for (uint64_t i = 0; input.size() < kInputBytes; ++i) {
    const uint64_t id = (i * 7919) % kWords;
    const std::string word = absl::StrCat(id % 2 ? "wX" : "wx", id);
    for (uint64_t copy = 0; copy <= id % 97 && input.size() < kInputBytes; ++copy) {
      absl::StrAppend(&input, word, copy % 3 ? " " : ",\n");
      ++counts[id];
    }
  }
  std::vector<std::pair<uint64_t, std::string>> sorted;
  for (uint64_t id = 0; id < kWords; ++id) {
    if (counts[id] > 0) sorted.emplace_back(counts[id], absl::StrCat("wx", id));
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::string want;
  for (size_t i = 0; i < 50; ++i) {
    absl::StrAppend(&want, sorted[i].first, "\t", sorted[i].second, "\n");
  }

  const TaskResult r = Run(input, {{"top", "50"}});
  ASSERT_EQ(r.code, CRUNCH_OK) << r.message;
  EXPECT_EQ(r.output, want);
}

TEST_F(WordfreqTest, FailsWhenTheOutputDoesNotFit) {
  const TaskResult r = RunTask(*kind_, "alpha beta gamma", {.params = {}, .max_output_bytes = 10});
  EXPECT_EQ(r.code, CRUNCH_RESOURCE_EXHAUSTED);
  EXPECT_NE(r.message.find("max_output_bytes"), std::string::npos) << r.message;
}

TEST_F(WordfreqTest, StopsWhenCancelledOrPastItsDeadline) {
  std::string words;
  for (int i = 0; i < 100000; ++i) absl::StrAppend(&words, "word", i, " ");

  TaskResult r = RunTask(*kind_, words, {.should_stop = CRUNCH_CANCELLED});
  EXPECT_EQ(r.code, CRUNCH_CANCELLED);
  EXPECT_NE(r.message.find("cancelled"), std::string::npos) << r.message;
  r = RunTask(*kind_, words, {.should_stop = CRUNCH_DEADLINE_EXCEEDED});
  EXPECT_EQ(r.code, CRUNCH_DEADLINE_EXCEEDED);
  EXPECT_NE(r.message.find("deadline"), std::string::npos) << r.message;
}

}  // namespace
}  // namespace crunch::testing
