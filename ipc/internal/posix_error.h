// The one place where errno becomes a typed error.

#ifndef CRUNCH_IPC_INTERNAL_POSIX_ERROR_H_
#define CRUNCH_IPC_INTERNAL_POSIX_ERROR_H_

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace crunch::ipc::internal {

// "what: strerror(errno)" with the absl code that matches errno.
inline absl::Status ErrnoError(absl::string_view what, int error_number = errno) {
  return absl::ErrnoToStatus(error_number, what);
}

// Retries a system call interrupted by a signal.
template <typename Call>
auto RetryOnEintr(Call call) {
  for (;;) {
    auto result = call();
    if (result != -1 || errno != EINTR) return result;
  }
}

}  // namespace crunch::ipc::internal

#endif  // CRUNCH_IPC_INTERNAL_POSIX_ERROR_H_
