#include "ipc/doorbell.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace crunch::ipc {

void Doorbell::Ring() noexcept {
  if (control_->consumer_sleeping.load(std::memory_order_seq_cst) == 0) return;
  if (control_->consumer_sleeping.exchange(0, std::memory_order_seq_cst) == 0) return;
  const uint64_t one = 1;
  // Cannot block or fail short of EBADF: the counter would need 2^64-2 rings.
  while (::write(fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void Doorbell::Cleared() noexcept {
  control_->consumer_sleeping.store(0, std::memory_order_relaxed);
  // Consume the count so the next poll blocks (EAGAIN: nothing to consume).
  uint64_t count;
  while (::read(fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

bool Doorbell::Sleep(int timeout_ms) noexcept {
  pollfd p{fd_, POLLIN, 0};
  for (;;) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace crunch::ipc
