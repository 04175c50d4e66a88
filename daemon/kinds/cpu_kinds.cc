// The built-in CPU kinds.
//
// A kernel here runs in a worker process and writes into an output extent of
// the shared arena whose size its output_capacity function chose before the
// task started; SpanOutput::Append refuses to pass the end of it. So every
// capacity function computes its bound from the input and parameters alone
// (the digest length, a frame's declared content size, compressBound) and
// every kernel streams: zstd compresses and decompresses through a fixed chunk
// buffer and Appends chunk by chunk, so a decompression bomb costs one chunk of
// memory and ends with RESOURCE_EXHAUSTED at the output limit, and no kernel
// buffers a result that grows with its input.
//
// The scheduler kills a worker whose task runs past its deadline, so polling
// TaskContext::ShouldStop() only lets a kernel end early and cleanly. Kernels
// that can run long poll at a cost small next to their work: spin about once a
// millisecond, primes once per L1-sized segment, zstd and sha256 once per chunk,
// fib at each call high enough in the recursion tree that the plain recursion
// below it takes well under a millisecond.

#include "daemon/kinds/cpu_kinds.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace crunch::daemon {
namespace {

using Bytes = std::span<const std::byte>;

uint64_t CapToLimit(uint64_t bytes, const KernelLimits& limits) {
  return std::min(bytes, limits.max_output_bytes);
}

// Why a kernel that saw ShouldStop() stops. The flag wins over the deadline:
// once set it stays set, and the caller who set it asked for CANCELLED.
absl::Status StopStatus(absl::string_view kind, const TaskContext& context) {
  if (context.cancelled != nullptr && context.cancelled->load(std::memory_order_relaxed)) {
    return absl::CancelledError(absl::StrCat(kind, " was cancelled before it finished"));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(kind, " did not finish before the task's deadline"));
}

// Room for any uint64_t in decimal.
constexpr uint64_t kDecimalCapacity = 32;

uint64_t DecimalCapacity(Bytes, const TaskParams&, const KernelLimits& limits) {
  return CapToLimit(kDecimalCapacity, limits);
}

// --- noop -------------------------------------------------------------------

absl::Status RunNoop(Bytes input, const TaskParams&, const TaskContext&, Output& output) {
  return output.Append(input);
}

uint64_t NoopCapacity(Bytes input, const TaskParams&, const KernelLimits& limits) {
  return CapToLimit(input.size(), limits);
}

// --- spin -------------------------------------------------------------------

constexpr std::chrono::milliseconds kSpinPollInterval{1};

absl::Status RunSpin(Bytes, const TaskParams& params, const TaskContext& context, Output&) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + std::chrono::milliseconds(params.Int("ms"));
  Clock::time_point next_poll = start;
  uint64_t state = 0x9E3779B97F4A7C15u;
  while (true) {
    const Clock::time_point now = Clock::now();
    if (now >= next_poll) {
      if (context.ShouldStop()) return StopStatus("spin", context);
      next_poll = now + kSpinPollInterval;
    }
    if (now >= end) return absl::OkStatus();
    // A few microseconds of arithmetic between clock reads, so the time goes to
    // the CPU and not to clock_gettime. The empty asm keeps the compiler from
    // folding or dropping the loop.
    for (int i = 0; i < 1024; ++i) {
      state = state * 6364136223846793005u + 1442695040888963407u;
      __asm__ volatile("" : "+r"(state));
    }
  }
}

uint64_t SpinCapacity(Bytes, const TaskParams&, const KernelLimits&) { return 0; }

// --- fib --------------------------------------------------------------------

// Deliberately the exponential textbook recursion: fib is a CPU benchmark.
uint64_t Fib(int64_t n) { return n < 2 ? static_cast<uint64_t>(n) : Fib(n - 1) + Fib(n - 2); }

// Fib(25) is about 250k calls, a fraction of a millisecond.
constexpr int64_t kFibPlainUpTo = 25;

// The same recursion, polling ShouldStop() at every call above kFibPlainUpTo
// (fib(n - 24) - 1 of them: 10945 for n = 45). nullopt if told to stop.
std::optional<uint64_t> FibUnlessStopped(int64_t n, const TaskContext& context) {
  if (n <= kFibPlainUpTo) return Fib(n);
  if (context.ShouldStop()) return std::nullopt;
  const std::optional<uint64_t> a = FibUnlessStopped(n - 1, context);
  if (!a.has_value()) return std::nullopt;
  const std::optional<uint64_t> b = FibUnlessStopped(n - 2, context);
  if (!b.has_value()) return std::nullopt;
  return *a + *b;
}

absl::Status RunFib(Bytes, const TaskParams& params, const TaskContext& context, Output& output) {
  const std::optional<uint64_t> value = FibUnlessStopped(params.Int("n"), context);
  if (!value.has_value()) return StopStatus("fib", context);
  return output.Append(absl::StrCat(*value));
}

// --- sha256 -----------------------------------------------------------------

constexpr size_t kHashChunkBytes = 1 << 20;
constexpr uint64_t kSha256HexBytes = 64;

absl::Status OpenSslError(absl::string_view call) {
  char reason[256] = "no OpenSSL error queued";
  if (const unsigned long code = ERR_get_error(); code != 0) {
    ERR_error_string_n(code, reason, sizeof(reason));
  }
  ERR_clear_error();
  return absl::InternalError(absl::StrCat("sha256: OpenSSL ", call, " failed: ", reason));
}

struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

absl::Status RunSha256(Bytes input, const TaskParams&, const TaskContext& context, Output& output) {
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return OpenSslError("EVP_DigestInit_ex");
  }
  for (size_t offset = 0; offset < input.size(); offset += kHashChunkBytes) {
    if (context.ShouldStop()) return StopStatus("sha256", context);
    const size_t length = std::min(kHashChunkBytes, input.size() - offset);
    if (EVP_DigestUpdate(ctx.get(), input.data() + offset, length) != 1) {
      return OpenSslError("EVP_DigestUpdate");
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &digest_size) != 1) {
    return OpenSslError("EVP_DigestFinal_ex");
  }
  // BytesToHexString writes lowercase digits.
  return output.Append(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), digest_size)));
}

uint64_t Sha256Capacity(Bytes, const TaskParams&, const KernelLimits& limits) {
  return CapToLimit(kSha256HexBytes, limits);
}

// --- zstd.compress / zstd.decompress -----------------------------------------

// Input handed to the compressor per call, so ShouldStop() is polled at least
// this often even when the output chunk takes long to fill.
constexpr size_t kZstdInputSliceBytes = 1 << 20;

struct ZstdCCtxFree {
  void operator()(ZSTD_CCtx* cctx) const { ZSTD_freeCCtx(cctx); }
};
struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* dctx) const { ZSTD_freeDCtx(dctx); }
};

// A failure of zstd itself (not of the input): out of memory or a bad setting.
absl::Status ZstdFailure(absl::string_view kind, absl::string_view call, size_t result) {
  const std::string message =
      absl::StrCat(kind, ": ", call, " failed: ", ZSTD_getErrorName(result));
  if (ZSTD_getErrorCode(result) == ZSTD_error_memory_allocation) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

absl::Status RunZstdCompress(Bytes input, const TaskParams& params, const TaskContext& context,
                             Output& output) {
  constexpr absl::string_view kKind = "zstd.compress";
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxFree> cctx(ZSTD_createCCtx());
  if (cctx == nullptr) {
    return absl::ResourceExhaustedError("zstd.compress: out of memory for a compression context");
  }
  // The pledged size puts the content size in the frame header (as
  // ZSTD_compress does) and lets zstd size its window to the input. The
  // checksum (as the zstd CLI writes by default) lets zstd.decompress reject
  // corrupted data instead of returning wrong bytes.
  const int level = static_cast<int>(params.Int("level"));
  if (const size_t r = ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
      ZSTD_isError(r)) {
    return ZstdFailure(kKind, "setting the compression level", r);
  }
  if (const size_t r = ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
      ZSTD_isError(r)) {
    return ZstdFailure(kKind, "enabling the frame checksum", r);
  }
  if (const size_t r = ZSTD_CCtx_setPledgedSrcSize(cctx.get(), input.size()); ZSTD_isError(r)) {
    return ZstdFailure(kKind, "ZSTD_CCtx_setPledgedSrcSize", r);
  }

  std::vector<std::byte> chunk(ZSTD_CStreamOutSize());
  ZSTD_inBuffer in{input.data(), 0, 0};
  while (true) {
    if (context.ShouldStop()) return StopStatus(kKind, context);
    in.size = std::min(input.size(), in.pos + kZstdInputSliceBytes);
    const ZSTD_EndDirective mode = in.size == input.size() ? ZSTD_e_end : ZSTD_e_continue;
    ZSTD_outBuffer out{chunk.data(), chunk.size(), 0};
    const size_t left = ZSTD_compressStream2(cctx.get(), &out, &in, mode);
    if (ZSTD_isError(left)) return ZstdFailure(kKind, "ZSTD_compressStream2", left);
    if (out.pos > 0) {
      if (absl::Status s = output.Append(Bytes(chunk.data(), out.pos)); !s.ok()) return s;
    }
    if (mode == ZSTD_e_end && left == 0) return absl::OkStatus();
  }
}

uint64_t ZstdCompressCapacity(Bytes input, const TaskParams&, const KernelLimits& limits) {
  return CapToLimit(ZSTD_compressBound(input.size()), limits);
}

absl::Status RunZstdDecompress(Bytes input, const TaskParams&, const TaskContext& context,
                               Output& output) {
  constexpr absl::string_view kKind = "zstd.decompress";
  if (input.empty()) {
    return absl::InvalidArgumentError(
        "zstd.decompress: input is empty; expected one or more zstd frames");
  }
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree> dctx(ZSTD_createDCtx());
  if (dctx == nullptr) {
    return absl::ResourceExhaustedError(
        "zstd.decompress: out of memory for a decompression context");
  }
  const uint64_t limit = output.remaining();
  std::vector<std::byte> chunk(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  while (true) {
    if (context.ShouldStop()) return StopStatus(kKind, context);
    ZSTD_outBuffer out{chunk.data(), chunk.size(), 0};
    const size_t hint = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(hint)) {
      return absl::InvalidArgumentError(
          absl::StrCat("zstd.decompress: input is not valid zstd data: ", ZSTD_getErrorName(hint)));
    }
    if (out.pos > output.remaining()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("decompressed output exceeds max_output_bytes (", limit, " bytes)"));
    }
    if (out.pos > 0) {
      if (absl::Status s = output.Append(Bytes(chunk.data(), out.pos)); !s.ok()) return s;
    }
    // 0: a frame ended and is fully flushed; more input may hold further frames.
    if (hint == 0 && in.pos == in.size) return absl::OkStatus();
    // Output room left over means the decoder flushed all it could; it wants input.
    if (in.pos == in.size && out.pos < out.size) {
      return absl::InvalidArgumentError(
          "zstd.decompress: input is not valid zstd data: the last frame is truncated");
    }
  }
}

// The sum of the frames' declared content sizes, when every frame declares one
// and the sum fits the limit; the limit otherwise (including for input that is
// not zstd, which the kernel then rejects before writing anything).
uint64_t ZstdDecompressCapacity(Bytes input, const TaskParams&, const KernelLimits& limits) {
  uint64_t total = 0;
  Bytes rest = input;
  while (!rest.empty()) {
    const unsigned long long content = ZSTD_getFrameContentSize(rest.data(), rest.size());
    if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR) {
      return limits.max_output_bytes;
    }
    const size_t frame_bytes = ZSTD_findFrameCompressedSize(rest.data(), rest.size());
    if (ZSTD_isError(frame_bytes) || content > limits.max_output_bytes - total) {
      return limits.max_output_bytes;
    }
    total += content;
    rest = rest.subspan(frame_bytes);
  }
  return total;
}

// --- primes -----------------------------------------------------------------

// One byte per odd number: 32 KiB covers 64 Ki odd numbers and fits L1.
constexpr uint64_t kSieveSegmentBytes = 32 * 1024;

uint64_t IntegerSqrt(uint64_t n) {
  auto root = static_cast<uint64_t>(std::sqrt(static_cast<double>(n)));
  while (root * root > n) --root;
  while ((root + 1) * (root + 1) <= n) ++root;
  return root;
}

// The odd primes <= limit, by a plain sieve over odd numbers (index i is 2i+1).
std::vector<uint32_t> OddPrimesUpTo(uint32_t limit) {
  std::vector<uint32_t> primes;
  if (limit < 3) return primes;
  const uint32_t last = (limit - 1) / 2;
  std::vector<uint8_t> composite(last + 1, 0);
  for (uint32_t i = 1; i <= last; ++i) {
    if (composite[i] != 0) continue;
    const uint32_t p = 2 * i + 1;
    primes.push_back(p);
    for (uint64_t j = (uint64_t{p} * p - 1) / 2; j <= last; j += p) composite[j] = 1;
  }
  return primes;
}

// Counts the primes <= n. Index i of the sieve stands for the odd number 2i+1;
// each odd base prime p <= sqrt(n) crosses off p*p, p*p+2p, ... segment by
// segment, remembering where it stopped. Memory is O(sqrt n).
std::optional<uint64_t> CountPrimesUnlessStopped(uint64_t n, const TaskContext& context) {
  if (n < 2) return 0;
  const uint64_t last = (n - 1) / 2;  // Index of the largest odd number <= n.
  const std::vector<uint32_t> base = OddPrimesUpTo(static_cast<uint32_t>(IntegerSqrt(n)));
  std::vector<uint64_t> next(base.size());
  for (size_t k = 0; k < base.size(); ++k) next[k] = (uint64_t{base[k]} * base[k] - 1) / 2;

  std::vector<uint8_t> segment(kSieveSegmentBytes);
  uint64_t count = 1;  // 2, the only even prime.
  size_t active = 0;   // base[0..active) have reached a segment; p*p grows with p.
  for (uint64_t low = 1; low <= last; low += kSieveSegmentBytes) {
    if (context.ShouldStop()) return std::nullopt;
    const uint64_t high = std::min(last + 1, low + kSieveSegmentBytes);
    const size_t size = high - low;
    std::fill_n(segment.begin(), size, uint8_t{1});
    while (active < base.size() && next[active] < high) ++active;
    for (size_t k = 0; k < active; ++k) {
      const uint64_t p = base[k];
      uint64_t j = next[k] - low;
      for (; j < size; j += p) segment[j] = 0;
      next[k] = low + j;
    }
    uint64_t survivors = 0;
    for (size_t j = 0; j < size; ++j) survivors += segment[j];
    count += survivors;
  }
  return count;
}

absl::Status RunPrimes(Bytes, const TaskParams& params, const TaskContext& context,
                       Output& output) {
  const std::optional<uint64_t> count =
      CountPrimesUnlessStopped(static_cast<uint64_t>(params.Int("n")), context);
  if (!count.has_value()) return StopStatus("primes", context);
  return output.Append(absl::StrCat(*count));
}

}  // namespace

void PrepareCpuKinds() { OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr); }

std::vector<KindSpec> CpuKinds() {
  using Type = ParamSpec::Type;
  std::vector<KindSpec> kinds;
  kinds.push_back(KindSpec{
      .name = "noop",
      .pool = Pool::kCpu,
      .description = "Returns the payload unchanged (measures dispatch overhead).",
      .run = RunNoop,
      .output_capacity = NoopCapacity,
  });
  kinds.push_back(KindSpec{
      .name = "spin",
      .pool = Pool::kCpu,
      .description = "Keeps one CPU busy for `ms` milliseconds (a busy loop); returns nothing.",
      .params = {ParamSpec{.name = "ms",
                           .type = Type::kInt,
                           .description = "how long to keep the CPU busy, in milliseconds",
                           .default_value = "0",
                           .min = 0,
                           .max = 600'000}},
      .run = RunSpin,
      .output_capacity = SpinCapacity,
  });
  kinds.push_back(KindSpec{
      .name = "fib",
      .pool = Pool::kCpu,
      .description = "The n-th Fibonacci number by naive recursion (a CPU benchmark), in decimal.",
      .params = {ParamSpec{.name = "n",
                           .type = Type::kInt,
                           .description = "which Fibonacci number (fib(0) = 0, fib(1) = 1)",
                           .required = true,
                           .min = 0,
                           .max = 45}},
      .run = RunFib,
      .output_capacity = DecimalCapacity,
  });
  kinds.push_back(KindSpec{
      .name = "sha256",
      .pool = Pool::kCpu,
      .description = "The SHA-256 digest of the payload, as 64 lowercase hex digits.",
      .run = RunSha256,
      .output_capacity = Sha256Capacity,
  });
  kinds.push_back(KindSpec{
      .name = "zstd.compress",
      .pool = Pool::kCpu,
      .description =
          "Compresses the payload into one zstd frame (content size and checksum recorded).",
      .params = {ParamSpec{.name = "level",
                           .type = Type::kInt,
                           .description = "zstd compression level (higher: smaller and slower)",
                           .default_value = "3",
                           .min = 1,
                           .max = 19}},
      .run = RunZstdCompress,
      .output_capacity = ZstdCompressCapacity,
  });
  kinds.push_back(KindSpec{
      .name = "zstd.decompress",
      .pool = Pool::kCpu,
      .description = "Decompresses one or more zstd frames; fails past max_output_bytes.",
      .run = RunZstdDecompress,
      .output_capacity = ZstdDecompressCapacity,
  });
  kinds.push_back(KindSpec{
      .name = "primes",
      .pool = Pool::kCpu,
      .description = "Counts the primes <= n with a segmented sieve of Eratosthenes, in decimal.",
      .params = {ParamSpec{.name = "n",
                           .type = Type::kInt,
                           .description = "upper bound, inclusive",
                           .required = true,
                           .min = 0,
                           .max = 10'000'000'000}},
      .run = RunPrimes,
      .output_capacity = DecimalCapacity,
  });
  return kinds;
}

}  // namespace crunch::daemon
