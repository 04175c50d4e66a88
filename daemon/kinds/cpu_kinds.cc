// The built-in CPU kinds, written against the plugin ABI (crunch/plugin.h)
// like any plugin's: a table of crunch_kind whose run functions take a
// crunch_task. KindsFromPlugin (plugin_kinds.h) turns the table into
// KindSpecs, so a worker runs a built-in kernel exactly as it runs a plugin's.
//
// A kernel here runs in a worker process and writes into an output extent of
// the shared arena whose size the daemon chose from the kind's declared output
// bound before the task started; a write past it fails. So every bound follows
// from the input size alone (the digest length, zstd's compressBound; zstd.decompress
// has none and gets max_output_bytes) and every kernel streams: zstd compresses and decompresses
// through a fixed chunk buffer and Appends chunk by chunk, so a decompression bomb costs one chunk
// of memory and ends with RESOURCE_EXHAUSTED at the output limit, and no kernel buffers a result
// that grows with its input.
//
// The scheduler kills a worker whose task runs past its deadline, so polling
// crunch_task_should_stop() only lets a kernel end early and cleanly. Kernels
// that can run long poll at a cost small next to their work: spin about once a
// millisecond, primes once per L1-sized segment, zstd and sha256 once per chunk,
// fib at each call high enough in the recursion tree that the plain recursion
// below it takes well under a millisecond.

#include "daemon/kinds/cpu_kinds.h"

#include <crunch/plugin.h>
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
#include <cstdlib>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "crunch/version.h"
#include "daemon/kinds/plugin_kinds.h"

namespace crunch::daemon {
namespace {

using Bytes = std::span<const std::byte>;

// --- kernels as crunch_task functions ----------------------------------------
//
// Each kernel body reads its crunch_task and returns an absl::Status; Kernel<>
// turns that into the ABI's status code and message. A failed write returns
// its code with no message of its own, so the host's message (naming the
// limit) is the one the caller sees.

using KernelBody = absl::Status (*)(crunch_task* task);

template <KernelBody body>
int Kernel(crunch_task* task) {
  const absl::Status status = body(task);
  if (!status.message().empty()) {
    task->set_message(task, status.message().data(), status.message().size());
  }
  return static_cast<int>(status.code());
}

Bytes Input(const crunch_task* task) {
  return Bytes(reinterpret_cast<const std::byte*>(task->input), task->input_size);
}

absl::Status Append(crunch_task* task, Bytes bytes) {
  const int code = crunch_task_write(task, bytes.data(), bytes.size());
  return code == CRUNCH_OK ? absl::OkStatus()
                           : absl::Status(static_cast<absl::StatusCode>(code), "");
}

absl::Status Append(crunch_task* task, absl::string_view text) {
  return Append(task, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

// nullopt while the task may go on; else the status to end it with.
std::optional<absl::Status> Stopped(const crunch_task* task, absl::string_view kind) {
  switch (crunch_task_should_stop(task)) {
    case CRUNCH_OK:
      return std::nullopt;
    case CRUNCH_CANCELLED:
      return absl::CancelledError(absl::StrCat(kind, " was cancelled before it finished"));
    default:
      return absl::DeadlineExceededError(
          absl::StrCat(kind, " did not finish before the task's deadline"));
  }
}

// Room for any uint64_t in decimal.
constexpr uint64_t kDecimalCapacity = 32;

// --- noop -------------------------------------------------------------------

absl::Status RunNoop(crunch_task* task) { return Append(task, Input(task)); }

// --- spin -------------------------------------------------------------------

constexpr std::chrono::milliseconds kSpinPollInterval{1};

absl::Status RunSpin(crunch_task* task) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + std::chrono::milliseconds(task->params[0].int_value);
  Clock::time_point next_poll = start;
  uint64_t state = 0x9E3779B97F4A7C15u;
  while (true) {
    const Clock::time_point now = Clock::now();
    if (now >= next_poll) {
      if (std::optional<absl::Status> stop = Stopped(task, "spin")) return *stop;
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

// --- fib --------------------------------------------------------------------

// Deliberately the exponential textbook recursion: fib is a CPU benchmark.
uint64_t Fib(int64_t n) { return n < 2 ? static_cast<uint64_t>(n) : Fib(n - 1) + Fib(n - 2); }

// Fib(25) is about 250k calls, a fraction of a millisecond.
constexpr int64_t kFibPlainUpTo = 25;

// The same recursion, polling ShouldStop() at every call above kFibPlainUpTo
// (fib(n - 24) - 1 of them: 10945 for n = 45). nullopt if told to stop.
std::optional<uint64_t> FibUnlessStopped(int64_t n, const crunch_task* task) {
  if (n <= kFibPlainUpTo) return Fib(n);
  if (crunch_task_should_stop(task) != CRUNCH_OK) return std::nullopt;
  const std::optional<uint64_t> a = FibUnlessStopped(n - 1, task);
  if (!a.has_value()) return std::nullopt;
  const std::optional<uint64_t> b = FibUnlessStopped(n - 2, task);
  if (!b.has_value()) return std::nullopt;
  return *a + *b;
}

absl::Status RunFib(crunch_task* task) {
  const std::optional<uint64_t> value = FibUnlessStopped(task->params[0].int_value, task);
  if (!value.has_value()) return Stopped(task, "fib").value_or(absl::OkStatus());
  return Append(task, absl::StrCat(*value));
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

absl::Status RunSha256(crunch_task* task) {
  const Bytes input = Input(task);
  std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr) return OpenSslError("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return OpenSslError("EVP_DigestInit_ex");
  }
  for (size_t offset = 0; offset < input.size(); offset += kHashChunkBytes) {
    if (std::optional<absl::Status> stop = Stopped(task, "sha256")) return *stop;
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
  return Append(task, absl::BytesToHexString(
                          absl::string_view(reinterpret_cast<const char*>(digest), digest_size)));
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

absl::Status RunZstdCompress(crunch_task* task) {
  constexpr absl::string_view kKind = "zstd.compress";
  const Bytes input = Input(task);
  std::unique_ptr<ZSTD_CCtx, ZstdCCtxFree> cctx(ZSTD_createCCtx());
  if (cctx == nullptr) {
    return absl::ResourceExhaustedError("zstd.compress: out of memory for a compression context");
  }
  // The pledged size puts the content size in the frame header (as
  // ZSTD_compress does) and lets zstd size its window to the input. The
  // checksum (as the zstd CLI writes by default) lets zstd.decompress reject
  // corrupted data instead of returning wrong bytes.
  const int level = static_cast<int>(task->params[0].int_value);
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
    if (std::optional<absl::Status> stop = Stopped(task, kKind)) return *stop;
    in.size = std::min(input.size(), in.pos + kZstdInputSliceBytes);
    const ZSTD_EndDirective mode = in.size == input.size() ? ZSTD_e_end : ZSTD_e_continue;
    ZSTD_outBuffer out{chunk.data(), chunk.size(), 0};
    const size_t left = ZSTD_compressStream2(cctx.get(), &out, &in, mode);
    if (ZSTD_isError(left)) return ZstdFailure(kKind, "ZSTD_compressStream2", left);
    if (out.pos > 0) {
      if (absl::Status s = Append(task, Bytes(chunk.data(), out.pos)); !s.ok()) return s;
    }
    if (mode == ZSTD_e_end && left == 0) return absl::OkStatus();
  }
}

// ZSTD_compressBound(n) is n + n/256 + (128 KiB - n)/2048 for n < 128 KiB: at
// most n * 1028/1024 + 64. The frame header and checksum fit the rest of the
// fixed part.
constexpr crunch_output_bound kZstdCompressBound = {
    .bounded = 1, .fixed_bytes = 64 + 64, .per_input_kib = 1028};

absl::Status RunZstdDecompress(crunch_task* task) {
  constexpr absl::string_view kKind = "zstd.decompress";
  const Bytes input = Input(task);
  if (input.empty()) {
    return absl::InvalidArgumentError(
        "zstd.decompress: input is empty; expected one or more zstd frames");
  }
  std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree> dctx(ZSTD_createDCtx());
  if (dctx == nullptr) {
    return absl::ResourceExhaustedError(
        "zstd.decompress: out of memory for a decompression context");
  }
  const uint64_t limit = crunch_task_output_remaining(task);
  std::vector<std::byte> chunk(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  while (true) {
    if (std::optional<absl::Status> stop = Stopped(task, kKind)) return *stop;
    ZSTD_outBuffer out{chunk.data(), chunk.size(), 0};
    const size_t hint = ZSTD_decompressStream(dctx.get(), &out, &in);
    if (ZSTD_isError(hint)) {
      return absl::InvalidArgumentError(
          absl::StrCat("zstd.decompress: input is not valid zstd data: ", ZSTD_getErrorName(hint)));
    }
    if (out.pos > crunch_task_output_remaining(task)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("decompressed output exceeds max_output_bytes (", limit, " bytes)"));
    }
    if (out.pos > 0) {
      if (absl::Status s = Append(task, Bytes(chunk.data(), out.pos)); !s.ok()) return s;
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
std::optional<uint64_t> CountPrimesUnlessStopped(uint64_t n, const crunch_task* task) {
  if (n < 2) return 0;
  const uint64_t last = (n - 1) / 2;  // Index of the largest odd number <= n.
  const std::vector<uint32_t> base = OddPrimesUpTo(static_cast<uint32_t>(IntegerSqrt(n)));
  std::vector<uint64_t> next(base.size());
  for (size_t k = 0; k < base.size(); ++k) next[k] = (uint64_t{base[k]} * base[k] - 1) / 2;

  std::vector<uint8_t> segment(kSieveSegmentBytes);
  uint64_t count = 1;  // 2, the only even prime.
  size_t active = 0;   // base[0..active) have reached a segment; p*p grows with p.
  for (uint64_t low = 1; low <= last; low += kSieveSegmentBytes) {
    if (crunch_task_should_stop(task) != CRUNCH_OK) return std::nullopt;
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

absl::Status RunPrimes(crunch_task* task) {
  const std::optional<uint64_t> count =
      CountPrimesUnlessStopped(static_cast<uint64_t>(task->params[0].int_value), task);
  if (!count.has_value()) return Stopped(task, "primes").value_or(absl::OkStatus());
  return Append(task, absl::StrCat(*count));
}

// --- the table ---------------------------------------------------------------

constexpr crunch_param_spec kSpinParams[] = {{
    .name = "ms",
    .type = CRUNCH_PARAM_INT,
    .description = "how long to keep the CPU busy, in milliseconds",
    .required = 0,
    .default_value = "0",
    .min = 0,
    .max = 600'000,
}};

constexpr crunch_param_spec kFibParams[] = {{
    .name = "n",
    .type = CRUNCH_PARAM_INT,
    .description = "which Fibonacci number (fib(0) = 0, fib(1) = 1)",
    .required = 1,
    .default_value = nullptr,
    .min = 0,
    .max = 45,
}};

constexpr crunch_param_spec kZstdCompressParams[] = {{
    .name = "level",
    .type = CRUNCH_PARAM_INT,
    .description = "zstd compression level (higher: smaller and slower)",
    .required = 0,
    .default_value = "3",
    .min = 1,
    .max = 19,
}};

constexpr crunch_param_spec kPrimesParams[] = {{
    .name = "n",
    .type = CRUNCH_PARAM_INT,
    .description = "upper bound, inclusive",
    .required = 1,
    .default_value = nullptr,
    .min = 0,
    .max = 10'000'000'000,
}};

constexpr crunch_output_bound kSameSizeAsInput = {
    .bounded = 1, .fixed_bytes = 0, .per_input_kib = 1024};
constexpr crunch_output_bound kNoOutput = {.bounded = 1, .fixed_bytes = 0, .per_input_kib = 0};
constexpr crunch_output_bound kDecimal = {
    .bounded = 1, .fixed_bytes = kDecimalCapacity, .per_input_kib = 0};
constexpr crunch_output_bound kUnbounded = {.bounded = 0, .fixed_bytes = 0, .per_input_kib = 0};

constexpr crunch_kind kBuiltinKinds[] = {
    {
        .name = "noop",
        .description = "Returns the payload unchanged (measures dispatch overhead).",
        .params = nullptr,
        .param_count = 0,
        .run = Kernel<RunNoop>,
        .output = kSameSizeAsInput,
    },
    {
        .name = "spin",
        .description = "Keeps one CPU busy for `ms` milliseconds (a busy loop); returns nothing.",
        .params = kSpinParams,
        .param_count = 1,
        .run = Kernel<RunSpin>,
        .output = kNoOutput,
    },
    {
        .name = "fib",
        .description =
            "The n-th Fibonacci number by naive recursion (a CPU benchmark), in decimal.",
        .params = kFibParams,
        .param_count = 1,
        .run = Kernel<RunFib>,
        .output = kDecimal,
    },
    {
        .name = "sha256",
        .description = "The SHA-256 digest of the payload, as 64 lowercase hex digits.",
        .params = nullptr,
        .param_count = 0,
        .run = Kernel<RunSha256>,
        .output = {.bounded = 1, .fixed_bytes = kSha256HexBytes, .per_input_kib = 0},
    },
    {
        .name = "zstd.compress",
        .description =
            "Compresses the payload into one zstd frame (content size and checksum recorded).",
        .params = kZstdCompressParams,
        .param_count = 1,
        .run = Kernel<RunZstdCompress>,
        .output = kZstdCompressBound,
    },
    {
        .name = "zstd.decompress",
        .description = "Decompresses one or more zstd frames; fails past max_output_bytes.",
        .params = nullptr,
        .param_count = 0,
        .run = Kernel<RunZstdDecompress>,
        .output = kUnbounded,
    },
    {
        .name = "primes",
        .description = "Counts the primes <= n with a segmented sieve of Eratosthenes, in decimal.",
        .params = kPrimesParams,
        .param_count = 1,
        .run = Kernel<RunPrimes>,
        .output = kDecimal,
    },
};

constexpr crunch_plugin kBuiltinPlugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "built-in",
    .version = kVersion,
    .kinds = kBuiltinKinds,
    .kind_count = std::size(kBuiltinKinds),
};

}  // namespace

const crunch_plugin* BuiltinCpuPlugin() {
  // The one-time set-up OpenSSL would otherwise do on first use, and that
  // reads its configuration file: done here, like a plugin's init, so a worker
  // does it before its seccomp filter forbids opening files.
  OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG, nullptr);
  return &kBuiltinPlugin;
}

std::vector<KindSpec> CpuKinds() {
  absl::StatusOr<std::vector<KindSpec>> kinds = KindsFromPlugin(*BuiltinCpuPlugin(), "built-in");
  // The table is constant: tested by cpu_kinds_test, never wrong at run time.
  if (!kinds.ok()) std::abort();
  return *std::move(kinds);
}

}  // namespace crunch::daemon
