// Fuzz target: each CPU kind's kernel and OutputCapacity (daemon/kinds/cpu_kinds.h),
// called the way crunch_worker and the scheduler call them.
//
// Feeds: a 12-byte header, then the task's input bytes:
//   [0]      which CPU kind (modulo the number of kinds)
//   [1]      bit 0: give the kind's parameter (else its default is used);
//            bit 1: lend OutputCapacity() minus (byte >> 2) bytes instead
//            (no 1 KiB floor), so results meet the end of a short extent
//   [2..9]   the parameter's value, little-endian, folded into the kind's range
//            and into a budget that keeps every run short (spin <= 1 ms,
//            fib n <= 27, primes n <= 300000)
//   [10..11] limits.max_output_bytes in KiB minus one (1 KiB..64 MiB; the
//            lent output is at most 256 KiB here, see kMaxLent)
// Without bit 1 the output buffer is what the scheduler would lend: the
// larger of 1 KiB and OutputCapacity(). It is on the heap, so ASan sees a
// write past it, and a kernel given too little must say RESOURCE_EXHAUSTED.
//
// A crash means a task's payload can crash its worker process (zstd.decompress
// on garbage is the interesting case), which the daemon survives but the
// caller's task does not. A failed check means a kernel returned a wrong result
// or an unexpected status, or a capacity function lent more than the limit
// allows.

#include <zstd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "daemon/kind.h"
#include "daemon/kinds/cpu_kinds.h"
#include "tests/fuzz/fuzz_check.h"

namespace crunch::daemon {
namespace {

constexpr size_t kHeaderBytes = 12;
constexpr uint64_t kMinLent = 1024;       // The scheduler's kMinOutputCapacity.
constexpr uint64_t kMaxLent = 256 << 10;  // Keeps each run's buffer small.
constexpr int64_t kPrimesBudget = 300'000;

const std::vector<KindSpec>& Kinds() {
  static const std::vector<KindSpec>* const kinds = new std::vector<KindSpec>(CpuKinds());
  return *kinds;
}

// The largest value the fuzzer may pick for a parameter, so no run takes long.
int64_t Budget(const KindSpec& kind, const ParamSpec& param) {
  if (kind.name == "spin") return 1;
  if (kind.name == "fib") return 27;
  if (kind.name == "primes") return kPrimesBudget;
  return param.max;
}

uint64_t ReadLe(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

absl::string_view Text(std::span<const std::byte> bytes) {
  return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

uint64_t FibReference(int64_t n) {
  uint64_t a = 0, b = 1;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t next = a + b;
    a = b;
    b = next;
  }
  return a;
}

// pi(n) for n <= kPrimesBudget, from a plain sieve run once.
uint64_t PrimesReference(int64_t n) {
  static const std::vector<uint32_t>* const pi = [] {
    std::vector<bool> composite(kPrimesBudget + 1);
    auto* counts = new std::vector<uint32_t>(kPrimesBudget + 1);
    uint32_t count = 0;
    for (int64_t i = 2; i <= kPrimesBudget; ++i) {
      if (!composite[i]) {
        ++count;
        for (int64_t j = i * i; j <= kPrimesBudget; j += i) composite[j] = true;
      }
      (*counts)[i] = count;
    }
    return counts;
  }();
  return (*pi)[n];
}

void CheckResult(const KindSpec& kind, const TaskParams& params, std::span<const std::byte> input,
                 uint64_t lent, const absl::Status& status, absl::string_view output) {
  const absl::StatusCode code = status.code();
  const std::string what =
      absl::StrCat(kind.name, " on ", input.size(), " bytes, ", lent, " lent: ", status.ToString());
  if (kind.name == "noop") {
    FUZZ_CHECK(status.ok() == (input.size() <= lent), what);
    if (status.ok()) FUZZ_CHECK(output == Text(input), what, ": output differs from input");
  } else if (kind.name == "spin") {
    FUZZ_CHECK(status.ok() && output.empty(), what);
  } else if (kind.name == "fib" || kind.name == "primes") {
    const int64_t n = params.Int("n");
    const std::string expected =
        absl::StrCat(kind.name == "fib" ? FibReference(n) : PrimesReference(n));
    FUZZ_CHECK(status.ok() == (expected.size() <= lent), what);
    FUZZ_CHECK(status.ok() || code == absl::StatusCode::kResourceExhausted, what);
    if (status.ok()) FUZZ_CHECK(output == expected, what, ": ", kind.name, "(", n, ") = ", output);
  } else if (kind.name == "sha256") {
    FUZZ_CHECK(status.ok() == (lent >= 64), what);
    FUZZ_CHECK(status.ok() || code == absl::StatusCode::kResourceExhausted, what);
    if (!status.ok()) return;
    FUZZ_CHECK(output.size() == 64, what);
    for (char c : output) {
      FUZZ_CHECK(absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'), what, ": not hex: ", output);
    }
  } else if (kind.name == "zstd.compress") {
    FUZZ_CHECK(status.ok() || code == absl::StatusCode::kResourceExhausted, what);
    FUZZ_CHECK(status.ok() || lent < ZSTD_compressBound(input.size()), what,
               ": failed although compressBound fits");
    if (!status.ok()) return;
    std::vector<char> back(input.size() + 1);
    const size_t n = ZSTD_decompress(back.data(), back.size(), output.data(), output.size());
    FUZZ_CHECK(!ZSTD_isError(n) && absl::string_view(back.data(), n) == Text(input), what,
               ": the frame does not decompress to the input");
  } else if (kind.name == "zstd.decompress") {
    FUZZ_CHECK(status.ok() || code == absl::StatusCode::kInvalidArgument ||
                   code == absl::StatusCode::kResourceExhausted,
               what);
    if (!status.ok()) return;
    // zstd's one-shot decoder must agree on every input the kernel accepts.
    std::vector<char> reference(output.size() + 1);
    const size_t n =
        ZSTD_decompress(reference.data(), reference.size(), input.data(), input.size());
    FUZZ_CHECK(!ZSTD_isError(n) && absl::string_view(reference.data(), n) == output, what,
               ": ZSTD_decompress says ",
               ZSTD_isError(n) ? ZSTD_getErrorName(n) : absl::StrCat(n, " bytes"));
  } else {
    FUZZ_CHECK(false, "kind ", kind.name, " has no checks here; add them");
  }
}

void FuzzOne(const uint8_t* data, size_t size) {
  if (size < kHeaderBytes) return;
  const KindSpec& kind = Kinds()[data[0] % Kinds().size()];
  std::map<std::string, std::string> given;
  if ((data[1] & 1) != 0 && !kind.params.empty()) {
    const ParamSpec& p = kind.params.front();
    const uint64_t span = static_cast<uint64_t>(Budget(kind, p) - p.min) + 1;
    given[p.name] = absl::StrCat(p.min + static_cast<int64_t>(ReadLe(data + 2, 8) % span));
  }
  absl::StatusOr<TaskParams> params = ValidateParams(kind, given);
  if (!params.ok()) return;  // A required parameter left out: fuzz_params covers this.
  for (const ParamSpec& p : kind.params) {  // Defaults must be within the budget too.
    FUZZ_CHECK(params->Int(p.name) <= Budget(kind, p), kind.name, " default too large");
  }

  const KernelLimits limits{.max_output_bytes = (ReadLe(data + 10, 2) + 1) * 1024};
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data) + kHeaderBytes,
                                         size - kHeaderBytes);
  const uint64_t capacity = OutputCapacity(kind, input.size(), limits);
  FUZZ_CHECK(capacity <= limits.max_output_bytes, kind.name, " wants to lend ", capacity,
             " bytes, over the limit of ", limits.max_output_bytes);
  const uint64_t lent =
      std::min(kMaxLent, (data[1] & 2) != 0 ? capacity - std::min<uint64_t>(capacity, data[1] >> 2)
                                            : std::max(kMinLent, capacity));

  // Not zeroed (a kernel must not read what it did not write), and on the heap
  // so that ASan sees a write past the end.
  const std::unique_ptr<std::byte[]> buffer(new std::byte[lent]);
  SpanOutput output(std::span<std::byte>(buffer.get(), lent));
  TaskContext context;
  context.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  const absl::Status status = kind.run(input, *params, context, output);
  FUZZ_CHECK(output.size() <= lent, kind.name, " wrote ", output.size(), " of ", lent, " bytes");
  CheckResult(kind, *params, input, lent, status,
              Text(std::span<const std::byte>(buffer.get(), output.size())));
}

}  // namespace
}  // namespace crunch::daemon

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crunch::daemon::FuzzOne(data, size);
  return 0;
}
