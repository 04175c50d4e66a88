// CallTimeoutMs: the time a caller has left, as the 32-bit
// TaskRequest::call_timeout_ms the scheduler caps a task's timeout with.
//
// Thread safety: a pure function.

#ifndef CRUNCH_RPC_INTERNAL_CALL_TIMEOUT_H_
#define CRUNCH_RPC_INTERNAL_CALL_TIMEOUT_H_

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>

namespace crunch::rpc {

// At least 1 (0 would mean "no deadline"; a call already past its deadline
// still gets its task ended at once) and at most UINT32_MAX (about 49.7 days):
// clamped, never wrapped, so a far deadline cannot become a short timeout.
inline uint32_t CallTimeoutMs(std::chrono::milliseconds left) {
  return static_cast<uint32_t>(
      std::clamp<int64_t>(left.count(), 1, std::numeric_limits<uint32_t>::max()));
}

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_INTERNAL_CALL_TIMEOUT_H_
