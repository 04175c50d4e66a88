#include "ipc/doorbell.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace crunch::ipc {

Doorbell::Doorbell(RingControl* control, int event_fd) noexcept
    : control_(control), fd_(event_fd), fd_blocks_((::fcntl(event_fd, F_GETFL) & O_NONBLOCK) == 0) {}

void Doorbell::Ring() noexcept {
  if (control_->consumer_sleeping.load(std::memory_order_seq_cst) == 0) return;
  if (control_->consumer_sleeping.exchange(0, std::memory_order_seq_cst) == 0) return;
  const uint64_t one = 1;
  // Cannot block or fail short of EBADF: the counter would need 2^64-2 rings.
  while (::write(fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

void Doorbell::Woken() noexcept {
  ClearAnnouncement();
  uint64_t count;
  while (::read(fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

bool Doorbell::Sleep(int timeout_ms) noexcept {
  uint64_t count;
  if (timeout_ms < 0 && fd_blocks_) {  // Wait and consume in one system call.
    for (;;) {
      if (::read(fd_, &count, sizeof(count)) == sizeof(count)) return true;
      if (errno != EINTR) return false;
    }
  }
  pollfd p{fd_, POLLIN, 0};
  for (;;) {
    int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) break;
    if (n == 0 || errno != EINTR) return false;
  }
  // Readable and this is the only reader: the read cannot block.
  while (::read(fd_, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
  return true;
}

}  // namespace crunch::ipc
