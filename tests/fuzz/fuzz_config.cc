// Fuzz target: config loading (daemon/config.h).
//
// Feeds: arbitrary bytes as the text of crunchd.toml to ParseConfig; when that
// succeeds, DescribeConfig's output back to ParseConfig, before and after
// Finalize.
//
// A crash means a config file (or `crunchd --check-config` on one) can bring
// crunchd down. A failed check means either a rejected file got a code other
// than INVALID_ARGUMENT, or DescribeConfig prints settings that do not read
// back as the same settings: the `--check-config --verbose` output, pasted into
// crunchd.toml, would change the configuration.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "daemon/config.h"
#include "tests/fuzz/fuzz_check.h"

namespace crunch::daemon {
namespace {

// ParseConfig(DescribeConfig(config)) must give `config` back, and describing
// that again must give the same text.
void CheckRoundTrip(const Config& config, const char* stage) {
  const std::string described = DescribeConfig(config);
  absl::StatusOr<Config> again = ParseConfig(described, "described.toml");
  FUZZ_CHECK(again.ok(), "DescribeConfig's output ", stage,
             " does not parse: ", again.status().ToString(), "\n--- output:\n", described);
  FUZZ_CHECK(*again == config, "DescribeConfig's output ", stage,
             " parses to a different Config:\n--- output:\n", described, "--- parsed again:\n",
             DescribeConfig(*again));
  FUZZ_CHECK(DescribeConfig(*again) == described, "DescribeConfig is not stable ", stage);
}

void FuzzOne(std::string_view text) {
  absl::StatusOr<Config> parsed = ParseConfig(text, "fuzz.toml");
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument,
               "a bad file must be INVALID_ARGUMENT, got ", parsed.status().ToString());
    FUZZ_CHECK(!parsed.status().message().empty(), "an error without a message");
    return;
  }
  CheckRoundTrip(*parsed, "before Finalize");
  Config config = *parsed;
  if (!Finalize(&config, ConfigOverrides{}).ok()) return;  // Arena too small for the limits.
  CheckRoundTrip(config, "after Finalize");
  FUZZ_CHECK(config.cpu.workers >= 1 && config.cpu.workers <= 1024, "Finalize left cpu.workers at ",
             config.cpu.workers);
  FUZZ_CHECK(!config.io.data_dir.empty() && config.io.data_dir.front() == '/',
             "Finalize left io.data_dir at '", config.io.data_dir, "'");
}

}  // namespace
}  // namespace crunch::daemon

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crunch::daemon::FuzzOne(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
