#include "ipc/doorbell.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace crunch::ipc {

namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "the futex word is the atomic's object representation");

// The flag word in the segment, as the kernel sees it.
uint32_t* FutexWord(std::atomic<uint32_t>* flag) noexcept {
  return reinterpret_cast<uint32_t*>(flag);
}

}  // namespace

Doorbell::Doorbell(RingControl* control, int event_fd) noexcept
    : control_(control),
      fd_(event_fd),
      fd_blocks_((::fcntl(event_fd, F_GETFL) & O_NONBLOCK) == 0) {}

void Doorbell::Ring() noexcept {
  if (control_->consumer_sleeping.load(std::memory_order_seq_cst) == kAwake) return;
  switch (control_->consumer_sleeping.exchange(kAwake, std::memory_order_seq_cst)) {
    case kSleepsOnFd: {
      const uint64_t one = 1;
      // Cannot block or fail short of EBADF: the counter would need 2^64-2 rings.
      while (::write(fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
      }
      break;
    }
    case kSleepsOnFutex:
      // Cannot fail for a mapped, aligned word; waking nobody is fine.
      ::syscall(SYS_futex, FutexWord(&control_->consumer_sleeping), FUTEX_WAKE, 1, nullptr, nullptr,
                0);
      break;
    default:  // kAwake: the consumer withdrew first. Anything else is a peer's garbage.
      break;
  }
}

bool Doorbell::SleepOnFutex(int timeout_ms) noexcept {
  timespec timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1'000'000L};
  // Sleeps only while the word still says so: Ring() clears it before waking.
  if (::syscall(SYS_futex, FutexWord(&control_->consumer_sleeping), FUTEX_WAIT, kSleepsOnFutex,
                timeout_ms < 0 ? nullptr : &timeout, nullptr, 0) == 0) {
    return true;
  }
  return errno != ETIMEDOUT;  // EAGAIN: already rung; EINTR: spurious.
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
