// IoPool: threads for the blocking kinds (HTTP, files, DNS, sleep).
//
// The scheduler keeps the priority queue and hands a job to the pool only when
// a thread is idle (busy() < size()), so the hand-off queue inside never holds
// more than `threads` jobs and ordering stays the scheduler's. A thread runs
// the kernel, then posts the result back to the scheduler's io_context: no
// state is shared with the scheduler's thread except the job and its
// cancellation flag.
//
// A job that outlives its deadline is not killed (threads cannot be): the
// scheduler ends the task at its deadline, the kernel's own limits (curl
// timeouts, polled deadlines) end the work, and the late result is dropped.
//
// Thread safety: Dispatch(), busy() and Stop() on the scheduler's thread only.

#ifndef CRUNCH_DAEMON_IO_POOL_H_
#define CRUNCH_DAEMON_IO_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "boost/asio/io_context.hpp"
#include "daemon/kind.h"

namespace crunch::daemon {

class IoPool {
 public:
  struct Job {
    uint64_t task_id = 0;
    const KindSpec* spec = nullptr;
    TaskParams params;
    std::string payload;
    TaskContext context;
    std::shared_ptr<std::atomic<bool>> cancelled;  // Keeps context.cancelled alive.
  };
  // Runs on the io_context's thread.
  using DoneFn =
      absl::AnyInvocable<void(uint64_t task_id, absl::Status status, std::string output)>;

  IoPool(boost::asio::io_context& io, uint32_t threads, uint64_t max_output_bytes, DoneFn done);
  ~IoPool();

  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  // REQUIRES: busy() < size().
  void Dispatch(Job job);
  // Asks every running job to stop, then joins the threads.
  void Stop();

  uint32_t size() const { return static_cast<uint32_t>(threads_.size()); }
  uint32_t busy() const { return busy_; }
  void set_max_output_bytes(uint64_t n) { max_output_bytes_.store(n); }

 private:
  void ThreadMain();

  boost::asio::io_context& io_;
  DoneFn done_;
  std::atomic<uint64_t> max_output_bytes_;
  uint32_t busy_ = 0;  // Scheduler's thread only.
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<std::atomic<bool>>> running_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_IO_POOL_H_
