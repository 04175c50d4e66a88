// FUZZ_CHECK: the fuzz targets' assertion. A property that fails prints what
// was expected and what happened, then aborts, which libFuzzer reports as a
// crash and saves the input that caused it. Unlike assert(), it is never
// compiled out.

#ifndef CRUNCH_TESTS_FUZZ_FUZZ_CHECK_H_
#define CRUNCH_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"

namespace crunch::fuzz {

[[noreturn]] inline void CheckFailed(const char* condition, const char* file, int line,
                                     const std::string& detail) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", file, line, condition, detail.c_str());
  std::abort();
}

}  // namespace crunch::fuzz

// FUZZ_CHECK(condition, parts...): the parts (anything absl::StrCat takes) are
// evaluated only when the condition is false.
#define FUZZ_CHECK(condition, ...)                                                              \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      ::crunch::fuzz::CheckFailed(#condition, __FILE__, __LINE__, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                           \
  } while (false)

#endif  // CRUNCH_TESTS_FUZZ_FUZZ_CHECK_H_
