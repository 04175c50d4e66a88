#include "daemon/kinds/cpu_kinds.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <map>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {

using Clock = std::chrono::steady_clock;
using Params = std::map<std::string, std::string>;

const KindSpec& Kind(std::string_view name) {
  static const std::vector<KindSpec>* const kinds = new std::vector<KindSpec>(CpuKinds());
  for (const KindSpec& kind : *kinds) {
    if (kind.name == name) return kind;
  }
  ADD_FAILURE() << "no CPU kind named '" << name << "'";
  return kinds->front();
}

std::span<const std::byte> AsBytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// Validates `params`, runs the kind's kernel into a StringOutput of `limit`
// bytes and returns what it wrote.
absl::StatusOr<std::string> RunKind(std::string_view kind, std::string_view input,
                                    const Params& params = {}, const TaskContext& context = {},
                                    uint64_t limit = KernelLimits{}.max_output_bytes) {
  const KindSpec& spec = Kind(kind);
  absl::StatusOr<TaskParams> validated = ValidateParams(spec, params);
  if (!validated.ok()) return validated.status();
  StringOutput output(limit);
  if (absl::Status s = spec.run(AsBytes(input), *validated, context, output); !s.ok()) return s;
  return output.Take();
}

uint64_t Capacity(std::string_view kind, std::string_view input, const Params& params = {},
                  KernelLimits limits = {}) {
  const KindSpec& spec = Kind(kind);
  absl::StatusOr<TaskParams> validated = ValidateParams(spec, params);
  EXPECT_TRUE(validated.ok()) << validated.status();
  return OutputCapacity(spec, input.size(), limits);
}

std::string RandomBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string bytes(size, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  return bytes;
}

// Half random bytes, half a repeated phrase: exercises both literals and matches.
std::string MixedBytes(size_t size, uint64_t seed) {
  std::string bytes = RandomBytes(size / 2, seed);
  while (bytes.size() < size) bytes += "the quick brown fox jumps over the lazy dog. ";
  bytes.resize(size);
  return bytes;
}

std::string Compress(std::string_view data, int level = 3) {
  absl::StatusOr<std::string> frame =
      RunKind("zstd.compress", data, {{"level", absl::StrCat(level)}});
  EXPECT_TRUE(frame.ok()) << frame.status();
  return frame.value_or("");
}

TaskContext PastDeadline() {
  return TaskContext{.deadline = Clock::now() - std::chrono::seconds(1)};
}

// --- the list ---------------------------------------------------------------

TEST(CpuKinds, ListsEveryKindInOrderWithCompleteSpecs) {
  std::vector<std::string> names;
  for (const KindSpec& kind : CpuKinds()) {
    names.push_back(kind.name);
    EXPECT_EQ(kind.pool, Pool::kCpu) << kind.name;
    EXPECT_FALSE(kind.description.empty()) << kind.name;
    EXPECT_TRUE(kind.run != nullptr) << kind.name;
    EXPECT_EQ(kind.source, "built-in") << kind.name;
    for (const ParamSpec& param : kind.params) {
      EXPECT_FALSE(param.description.empty()) << kind.name << "." << param.name;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"noop", "spin", "fib", "sha256", "zstd.compress",
                                             "zstd.decompress", "primes"}));
}

TEST(CpuKinds, OutputCapacitiesMatchEachKind) {
  const std::string mib(1 << 20, 'x');
  EXPECT_EQ(Capacity("noop", "hello"), 5u);
  EXPECT_EQ(Capacity("noop", ""), 0u);
  EXPECT_EQ(Capacity("spin", "ignored", {{"ms", "10"}}), 0u);
  EXPECT_EQ(Capacity("fib", "", {{"n", "45"}}), 32u);
  EXPECT_EQ(Capacity("sha256", mib), 64u);
  EXPECT_EQ(Capacity("primes", "", {{"n", "10000000000"}}), 32u);
  EXPECT_GT(Capacity("zstd.compress", mib), mib.size());  // compressBound.
  EXPECT_GT(Capacity("zstd.compress", ""), 0u);
}

TEST(CpuKinds, OutputCapacitiesNeverExceedTheLimit) {
  const KernelLimits limits{.max_output_bytes = 16};
  const std::string mib(1 << 20, 'x');
  EXPECT_EQ(Capacity("noop", mib, {}, limits), 16u);
  EXPECT_EQ(Capacity("fib", "", {{"n", "1"}}, limits), 16u);
  EXPECT_EQ(Capacity("sha256", "", {}, limits), 16u);
  EXPECT_EQ(Capacity("primes", "", {{"n", "1"}}, limits), 16u);
  EXPECT_EQ(Capacity("zstd.compress", mib, {}, limits), 16u);
  EXPECT_EQ(Capacity("zstd.decompress", Compress(mib), {}, limits), 16u);
  EXPECT_EQ(Capacity("zstd.decompress", "not zstd", {}, limits), 16u);
}

// --- noop -------------------------------------------------------------------

TEST(CpuKinds, NoopReturnsThePayload) {
  const std::string payload("payload\0bytes", 13);
  EXPECT_EQ(RunKind("noop", payload).value_or("?"), payload);
  EXPECT_EQ(RunKind("noop", "").value_or("?"), "");
}

TEST(CpuKinds, NoopFailsWhenThePayloadDoesNotFit) {
  absl::StatusOr<std::string> out = RunKind("noop", "0123456789", {}, {}, /*limit=*/4);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

// --- spin -------------------------------------------------------------------

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

TEST(CpuKinds, SpinBurnsCpuForTheRequestedTime) {
  const Clock::time_point start = Clock::now();
  const double cpu_start = ThreadCpuSeconds();
  absl::StatusOr<std::string> out = RunKind("spin", "", {{"ms", "60"}});
  const double cpu_seconds = ThreadCpuSeconds() - cpu_start;
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "");
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(60));
  // A sleep uses next to no CPU (well under 0.1 ms). The bound is far below
  // 60 ms because a loaded CI machine may give this thread a small share.
  EXPECT_GE(cpu_seconds, 0.001);
}

TEST(CpuKinds, SpinDefaultsToZeroMilliseconds) { EXPECT_EQ(RunKind("spin", "").value_or("?"), ""); }

TEST(CpuKinds, SpinPastItsDeadlineReturnsDeadlineExceededQuickly) {
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::string> out = RunKind("spin", "", {{"ms", "600000"}}, PastDeadline());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded) << out.status();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
}

TEST(CpuKinds, SpinWithTheCancelledFlagSetReturnsCancelled) {
  const std::atomic<bool> cancelled{true};
  // Both reasons to stop hold; the explicit cancellation is what the caller asked for.
  TaskContext context = PastDeadline();
  context.cancelled = &cancelled;
  absl::StatusOr<std::string> out = RunKind("spin", "", {{"ms", "600000"}}, context);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
}

TEST(CpuKinds, SpinNoticesCancellationWhileRunning) {
  std::atomic<bool> cancelled{false};
  const TaskContext context{.cancelled = &cancelled};
  absl::Status status;
  const Clock::time_point start = Clock::now();
  std::thread spinner([&] { status = RunKind("spin", "", {{"ms", "600000"}}, context).status(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  cancelled.store(true);
  spinner.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled) << status;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

// --- fib --------------------------------------------------------------------

TEST(CpuKinds, FibMatchesKnownValues) {
  const std::map<std::string, std::string> known = {
      {"0", "0"}, {"1", "1"}, {"2", "1"}, {"10", "55"}, {"30", "832040"}};
  for (const auto& [n, value] : known) {
    EXPECT_EQ(RunKind("fib", "", {{"n", n}}).value_or("?"), value) << "fib(" << n << ")";
  }
}

TEST(CpuKinds, FibRejectsAnIndexOutsideZeroToFortyFive) {
  absl::StatusOr<TaskParams> params = ValidateParams(Kind("fib"), {{"n", "46"}});
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(params.status().message(), "param 'n' must be an integer in 0..45, got '46'");
  EXPECT_EQ(ValidateParams(Kind("fib"), {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuKinds, FibStopsWhenCancelled) {
  const std::atomic<bool> cancelled{true};
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::string> out = RunKind("fib", "", {{"n", "45"}}, {.cancelled = &cancelled});
  EXPECT_EQ(out.status().code(), absl::StatusCode::kCancelled) << out.status();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
}

// --- sha256 -----------------------------------------------------------------

TEST(CpuKinds, Sha256MatchesKnownDigests) {
  EXPECT_EQ(RunKind("sha256", "").value_or("?"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(RunKind("sha256", "abc").value_or("?"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Spans several of the kernel's 1 MiB update chunks (digest from Python's hashlib).
  EXPECT_EQ(RunKind("sha256", std::string(3'000'000, 'a')).value_or("?"),
            "2a152c894398719c0570f83fac34ac03a0f6e8e474b995c2403aa5434f7b9dd4");
}

TEST(CpuKinds, Sha256FailsWhenTheDigestDoesNotFit) {
  EXPECT_EQ(RunKind("sha256", "abc", {}, {}, /*limit=*/63).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// --- zstd -------------------------------------------------------------------

TEST(CpuKinds, ZstdRoundTripsSeveralSizes) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{128 << 10}, size_t{1 << 20}}) {
    const std::string data = MixedBytes(size, size);
    const std::string frame = Compress(data);
    EXPECT_LE(frame.size(), Capacity("zstd.compress", data)) << size;
    // Decompression declares no bound: the daemon lends the whole limit.
    EXPECT_EQ(Capacity("zstd.decompress", frame), KernelLimits{}.max_output_bytes);
    absl::StatusOr<std::string> back = RunKind("zstd.decompress", frame, {}, {}, /*limit=*/size);
    ASSERT_TRUE(back.ok()) << "size " << size << ": " << back.status();
    EXPECT_TRUE(*back == data) << "size " << size;
  }
}

TEST(CpuKinds, ZstdRoundTripsAtTheFastestAndSmallestLevels) {
  const std::string data = MixedBytes(200'000, 7);
  const std::string fast = Compress(data, 1);
  const std::string small = Compress(data, 19);
  EXPECT_LT(small.size(), data.size());
  EXPECT_EQ(RunKind("zstd.decompress", fast).value_or("?"), data);
  EXPECT_EQ(RunKind("zstd.decompress", small).value_or("?"), data);
  EXPECT_EQ(ValidateParams(Kind("zstd.compress"), {{"level", "0"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateParams(Kind("zstd.compress"), {{"level", "20"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CpuKinds, ZstdCompressedIncompressibleDataFitsItsCapacity) {
  for (size_t size :
       {size_t{0}, size_t{1}, size_t{100}, size_t{128 << 10}, size_t{(1 << 20) + 1}}) {
    const std::string data = RandomBytes(size, size + 1);
    absl::StatusOr<std::string> frame =
        RunKind("zstd.compress", data, {{"level", "19"}}, {}, Capacity("zstd.compress", data));
    EXPECT_TRUE(frame.ok()) << "size " << size << ": " << frame.status();
  }
}

TEST(CpuKinds, ZstdCompressFailsWhenTheFrameDoesNotFit) {
  absl::StatusOr<std::string> frame =
      RunKind("zstd.compress", RandomBytes(64 << 10, 1), {}, {}, /*limit=*/1000);
  EXPECT_EQ(frame.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(frame.status().message().find("max_output_bytes"), std::string::npos) << frame.status();
}

TEST(CpuKinds, ZstdDecompressStopsABombAtTheOutputLimit) {
  const std::string bomb = Compress(std::string(64 << 20, '\0'));
  ASSERT_LT(bomb.size(), 64u << 10);
  EXPECT_EQ(Capacity("zstd.decompress", bomb, {}, {.max_output_bytes = 1 << 20}), 1u << 20);

  const KindSpec& spec = Kind("zstd.decompress");
  StringOutput output(1 << 20);
  const absl::Status status = spec.run(AsBytes(bomb), TaskParams(), TaskContext(), output);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "decompressed output exceeds max_output_bytes (1048576 bytes)");
  EXPECT_LE(output.data().size(), 1u << 20);
}

TEST(CpuKinds, ZstdDecompressesConcatenatedFrames) {
  const std::string a = MixedBytes(5000, 1);
  const std::string b = MixedBytes(70'000, 2);
  const std::string frames = Compress(a) + Compress(b);
  EXPECT_EQ(RunKind("zstd.decompress", frames).value_or("?"), a + b);
}

TEST(CpuKinds, ZstdDecompressesAFrameWithoutContentSize) {
  // `printf 'hello, zstd\n' | zstd -c`: streamed, so no content size, with a checksum.
  const unsigned char kFrame[] = {0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x61, 0x00, 0x00,
                                  0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x7a, 0x73,
                                  0x74, 0x64, 0x0a, 0x84, 0x58, 0x5c, 0xa0};
  const std::string frame(reinterpret_cast<const char*>(kFrame), sizeof(kFrame));
  EXPECT_EQ(Capacity("zstd.decompress", frame, {}, {.max_output_bytes = 4096}), 4096u);
  EXPECT_EQ(RunKind("zstd.decompress", frame).value_or("?"), "hello, zstd\n");
}

TEST(CpuKinds, ZstdDecompressRejectsInputThatIsNotZstd) {
  absl::StatusOr<std::string> out = RunKind("zstd.decompress", "definitely not a zstd frame");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("Unknown frame descriptor"), std::string::npos)
      << out.status();
  EXPECT_EQ(RunKind("zstd.decompress", "").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuKinds, ZstdDecompressRejectsCorruptFrames) {
  const std::string data = MixedBytes(300'000, 3);
  const std::string frame = Compress(data);

  const std::string truncated = frame.substr(0, frame.size() - 10);
  EXPECT_EQ(RunKind("zstd.decompress", truncated).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::string flipped = frame;
  flipped[flipped.size() / 2] ^= 0x5a;
  EXPECT_EQ(RunKind("zstd.decompress", flipped).status().code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(RunKind("zstd.decompress", frame + "trailing junk").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- primes -----------------------------------------------------------------

TEST(CpuKinds, PrimesMatchesKnownCounts) {
  // The last four were checked with sympy.primepi; 100000007 is the first prime after 10^8.
  const std::map<std::string, std::string> known = {{"0", "0"},
                                                    {"1", "0"},
                                                    {"2", "1"},
                                                    {"3", "2"},
                                                    {"10", "4"},
                                                    {"100", "25"},
                                                    {"1000000", "78498"},
                                                    {"100000000", "5761455"},
                                                    {"100000006", "5761455"},
                                                    {"100000007", "5761456"},
                                                    {"123456789", "7027260"}};
  for (const auto& [n, count] : known) {
    EXPECT_EQ(RunKind("primes", "", {{"n", n}}).value_or("?"), count) << "primes(" << n << ")";
  }
}

// A plain sieve to check the segmented one against, where it is most likely
// wrong: around segment edges (65536 odd numbers each) and the squares where
// base primes start crossing off.
TEST(CpuKinds, PrimesMatchesAPlainSieveAtSegmentEdgesAndSquares) {
  constexpr uint64_t kMax = 700'000;
  std::vector<bool> composite(kMax + 1, false);
  std::vector<uint64_t> pi(kMax + 1, 0);
  std::vector<uint64_t> small_primes;
  for (uint64_t i = 2; i <= kMax; ++i) {
    if (!composite[i]) {
      if (i * i <= kMax) small_primes.push_back(i);
      for (uint64_t j = i * i; j <= kMax; j += i) composite[j] = true;
    }
    pi[i] = pi[i - 1] + (composite[i] ? 0 : 1);
  }

  std::vector<uint64_t> checks;
  for (uint64_t n = 0; n <= 300; ++n) checks.push_back(n);
  for (uint64_t edge = 131072; edge + 4 <= kMax; edge += 131072) {
    for (uint64_t n = edge - 4; n <= edge + 4; ++n) checks.push_back(n);
  }
  for (uint64_t p : small_primes) {
    for (uint64_t n = p * p - 2; n <= p * p + 2 && n <= kMax; ++n) checks.push_back(n);
  }
  checks.push_back(kMax);

  for (uint64_t n : checks) {
    EXPECT_EQ(RunKind("primes", "", {{"n", absl::StrCat(n)}}).value_or("?"), absl::StrCat(pi[n]))
        << "primes(" << n << ")";
  }
}

TEST(CpuKinds, PrimesRejectsBoundsOutsideItsRange) {
  EXPECT_EQ(ValidateParams(Kind("primes"), {{"n", "10000000001"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateParams(Kind("primes"), {{"n", "-1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateParams(Kind("primes"), {{"n", "10000000000"}}).ok());
}

TEST(CpuKinds, PrimesPastItsDeadlineReturnsDeadlineExceededQuickly) {
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::string> out = RunKind("primes", "", {{"n", "10000000000"}}, PastDeadline());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDeadlineExceeded) << out.status();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));
}

}  // namespace
}  // namespace crunch::daemon
