// Kind: what a task runs, as the scheduler and the transports see it.
//
// A KindSpec names a kind, says which pool runs it and which parameters it
// takes. The scheduler validates every request against the spec before it is
// queued (ValidateParams), so a bad call never reaches a worker process or an
// I/O thread; the kernel then reads already-checked values from TaskParams.
//
// A kernel is a plain function: input bytes and parameters in, bytes out
// through an Output, an absl::Status whose code and message reach the caller
// unchanged. A kernel may be a closure over its settings (an I/O kind's data
// directory, say). The same signature serves both pools: CPU kernels run inside a
// worker process (Output writes straight into the shared-memory arena), I/O
// kernels on an I/O thread (Output appends to a heap buffer).
//
// Thread safety: KindSpec and TaskParams are immutable values once built.

#ifndef CRUNCH_DAEMON_KIND_H_
#define CRUNCH_DAEMON_KIND_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace crunch::daemon {

enum class Pool : uint8_t { kCpu, kIo };
const char* PoolName(Pool pool);

struct ParamSpec {
  enum class Type : uint8_t { kInt, kString };

  std::string name;
  Type type = Type::kInt;
  std::string description;
  bool required = false;
  std::string default_value;  // Used when the caller leaves it out (and !required).
  int64_t min = 0;            // kInt: the allowed range, inclusive.
  int64_t max = 0;
};

// Parameters after validation: every declared parameter is present (given or
// defaulted) and well-formed, and nothing undeclared is.
class TaskParams {
 public:
  TaskParams() = default;
  explicit TaskParams(std::map<std::string, std::string, std::less<>> values)
      : values_(std::move(values)) {}

  // REQUIRES: `name` is a declared kInt parameter of the kind.
  int64_t Int(std::string_view name) const;
  // REQUIRES: `name` is a declared parameter of the kind ("" if optional and absent).
  const std::string& String(std::string_view name) const;
  bool Has(std::string_view name) const { return values_.find(name) != values_.end(); }

  const std::map<std::string, std::string, std::less<>>& values() const { return values_; }

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

// Where a kernel writes its output. Append() fails with RESOURCE_EXHAUSTED
// once the output would pass its limit, naming the limit.
class Output {
 public:
  virtual ~Output() = default;
  virtual absl::Status Append(std::span<const std::byte> bytes) = 0;
  absl::Status Append(std::string_view text) {
    return Append(std::as_bytes(std::span<const char>(text.data(), text.size())));
  }
  // Bytes still allowed.
  virtual uint64_t remaining() const = 0;
};

// An Output into a fixed span (a CPU task's extent of the shared arena).
class SpanOutput final : public Output {
 public:
  explicit SpanOutput(std::span<std::byte> storage) : storage_(storage) {}
  absl::Status Append(std::span<const std::byte> bytes) override;
  uint64_t remaining() const override { return storage_.size() - size_; }
  uint64_t size() const { return size_; }

 private:
  std::span<std::byte> storage_;
  uint64_t size_ = 0;
};

// An Output into a string that may grow up to `limit` bytes (I/O tasks, tests).
class StringOutput final : public Output {
 public:
  explicit StringOutput(uint64_t limit) : limit_(limit) {}
  absl::Status Append(std::span<const std::byte> bytes) override;
  uint64_t remaining() const override { return limit_ - data_.size(); }
  const std::string& data() const { return data_; }
  std::string Take() { return std::move(data_); }

 private:
  uint64_t limit_;
  std::string data_;
};

// What a kernel may poll to stop early. The scheduler also enforces both from
// outside (a CPU worker past its deadline is killed), so polling is a courtesy
// that lets a kernel end cleanly, not a requirement.
struct TaskContext {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Cancellation, either way may be null: the I/O pool's per-task flag, or
  // (in a worker) the slot's cancel request, naming `task_id` when it is this
  // task that is to stop.
  const std::atomic<bool>* cancelled = nullptr;
  const std::atomic<uint64_t>* cancel_request = nullptr;
  uint64_t task_id = 0;

  bool Cancelled() const {
    return (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) ||
           (cancel_request != nullptr && task_id != 0 &&
            cancel_request->load(std::memory_order_relaxed) == task_id);
  }
  bool ShouldStop() const { return Cancelled() || std::chrono::steady_clock::now() >= deadline; }
};

// Settings a kernel may need, from the daemon's configuration.
struct KernelLimits {
  uint64_t max_output_bytes = 64ull << 20;
};

using KernelFn =
    std::function<absl::Status(std::span<const std::byte> input, const TaskParams& params,
                               const TaskContext& context, Output& output)>;

// How many output bytes a CPU task can write, at most, declared by its kind
// (crunch_output_bound in crunch/plugin.h): fixed_bytes + input_size *
// per_input_kib / 1024. The daemon lends that much of the arena before the task
// runs (the worker writes into a fixed extent) without running kind code.
struct OutputBound {
  bool bounded = false;  // false: up to limits.max_output_bytes.
  uint64_t fixed_bytes = 0;
  uint64_t per_input_kib = 0;
};

struct KindSpec {
  std::string name;
  Pool pool = Pool::kCpu;
  std::string description;
  std::vector<ParamSpec> params;
  KernelFn run = nullptr;
  OutputBound output_bound;  // CPU kinds only.
  // Where the kind comes from: "built-in", or "plugin NAME VERSION (PATH)".
  std::string source = "built-in";
};

// The output bytes to lend a task of `spec` with `input_size` bytes of input:
// its bound, never more than limits.max_output_bytes.
uint64_t OutputCapacity(const KindSpec& spec, uint64_t input_size, const KernelLimits& limits);

// Checks `given` against `spec.params`: unknown names, missing required ones,
// non-integers and out-of-range values are INVALID_ARGUMENT with a message that
// names the parameter and what is allowed ("param 'n' must be an integer in
// 0..45, got 'abc'"). Fills in defaults.
absl::StatusOr<TaskParams> ValidateParams(const KindSpec& spec,
                                          const std::map<std::string, std::string>& given);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KIND_H_
