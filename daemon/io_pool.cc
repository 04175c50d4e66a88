#include "daemon/io_pool.h"

#include <algorithm>

#include "boost/asio/post.hpp"

namespace crunch::daemon {

IoPool::IoPool(boost::asio::io_context& io, uint32_t threads, uint64_t max_output_bytes,
               DoneFn done)
    : io_(io), done_(std::move(done)), max_output_bytes_(max_output_bytes) {
  threads_.reserve(threads);
  for (uint32_t i = 0; i < threads; ++i) threads_.emplace_back([this] { ThreadMain(); });
}

IoPool::~IoPool() { Stop(); }

void IoPool::Dispatch(Job job) {
  ++busy_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void IoPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    for (auto& flag : running_) flag->store(true);
    for (Job& job : jobs_) job.cancelled->store(true);
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void IoPool::ThreadMain() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock,
               [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !jobs_.empty(); });
      if (jobs_.empty()) return;  // Stopping, nothing left.
      job = std::move(jobs_.front());
      jobs_.pop_front();
      running_.push_back(job.cancelled);
    }
    StringOutput output(max_output_bytes_.load());
    absl::Status status =
        job.spec->run(std::as_bytes(std::span<const char>(job.payload.data(), job.payload.size())),
                      job.params, job.context, output);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_.erase(std::find(running_.begin(), running_.end(), job.cancelled));
    }
    boost::asio::post(
        io_, [this, id = job.task_id, status = std::move(status), out = output.Take()]() mutable {
          --busy_;
          done_(id, std::move(status), std::move(out));
        });
  }
}

}  // namespace crunch::daemon
