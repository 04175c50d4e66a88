// RequestLimits: the [limits] on what one request may carry (payload size,
// parameter count and lengths), the errors a request over them gets, and
// their published copy that a transport reads on its own threads.
//
// A transport that measures a request before copying it (the gRPC front-end:
// rpc/internal/task_request_decoder.h) leaves out what is over a limit and
// says so in TaskRequest::left_out; Scheduler::Submit then refuses the task
// with the same error it gives a request it checks itself.
//
// Thread safety: PublishedRequestLimits is safe to read from any thread while
// one thread (the scheduler's, on a reload) stores; the rest are values.

#ifndef CRUNCH_DAEMON_REQUEST_LIMITS_H_
#define CRUNCH_DAEMON_REQUEST_LIMITS_H_

#include <atomic>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace crunch::daemon {

struct RequestLimits {
  uint64_t max_payload_bytes = UINT64_MAX;
  uint64_t max_params = UINT64_MAX;
  uint64_t max_param_bytes = UINT64_MAX;
};

// RESOURCE_EXHAUSTED: a payload of `bytes` over `limit` ([limits] max_payload_bytes).
absl::Status PayloadTooLargeError(uint64_t bytes, uint64_t limit);
// RESOURCE_EXHAUSTED: `count` params, over `limit` ([limits] max_params).
absl::Status TooManyParamsError(uint64_t count, uint64_t limit);
// RESOURCE_EXHAUSTED: a param whose name (`name_bytes` long) or value
// (`value_bytes`) is over `limit` ([limits] max_param_bytes); the name is
// checked first. `name_start` is the name or at least its first
// kShownNameBytes bytes: the message shows no more of it (the name may be the
// oversized thing itself), escaped.
absl::Status ParamTooLongError(std::string_view name_start, uint64_t name_bytes,
                               uint64_t value_bytes, uint64_t limit);
inline constexpr size_t kShownNameBytes = 32;

// The limits as they stand, for threads other than the scheduler's.
class PublishedRequestLimits {
 public:
  explicit PublishedRequestLimits(const RequestLimits& limits) { Store(limits); }

  // Each limit is read on its own: one read during a reload may see some old
  // and some new values, each of which was valid.
  RequestLimits Load() const {
    return RequestLimits{.max_payload_bytes = max_payload_bytes_.load(std::memory_order_relaxed),
                         .max_params = max_params_.load(std::memory_order_relaxed),
                         .max_param_bytes = max_param_bytes_.load(std::memory_order_relaxed)};
  }
  void Store(const RequestLimits& limits) {
    max_payload_bytes_.store(limits.max_payload_bytes, std::memory_order_relaxed);
    max_params_.store(limits.max_params, std::memory_order_relaxed);
    max_param_bytes_.store(limits.max_param_bytes, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> max_payload_bytes_;
  std::atomic<uint64_t> max_params_;
  std::atomic<uint64_t> max_param_bytes_;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_REQUEST_LIMITS_H_
