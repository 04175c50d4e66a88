// LatencyWindow: percentiles over the most recent samples (a fixed ring, so
// memory is constant and old load does not hide current behaviour).
//
// Thread safety: not thread-safe; owned by the scheduler's thread.

#ifndef CRUNCH_DAEMON_LATENCY_WINDOW_H_
#define CRUNCH_DAEMON_LATENCY_WINDOW_H_

#include <algorithm>
#include <cstdint>
#include <vector>

namespace crunch::daemon {

struct LatencySummary {
  uint64_t p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0, samples = 0;
};

class LatencyWindow {
 public:
  explicit LatencyWindow(size_t capacity = 4096) : samples_(capacity) {}

  void Add(uint64_t micros) {
    samples_[next_ % samples_.size()] = micros;
    ++next_;
  }

  // Nearest-rank percentiles over the window.
  LatencySummary Summary() const {
    LatencySummary s;
    const size_t n = std::min<uint64_t>(next_, samples_.size());
    if (n == 0) return s;
    std::vector<uint64_t> sorted(samples_.begin(), samples_.begin() + n);
    std::sort(sorted.begin(), sorted.end());
    auto rank = [&](double q) {
      return sorted[std::min<size_t>(n - 1, static_cast<size_t>(q * n))];
    };
    s.p50_us = rank(0.50);
    s.p90_us = rank(0.90);
    s.p99_us = rank(0.99);
    s.max_us = sorted.back();
    s.samples = n;
    return s;
  }

 private:
  std::vector<uint64_t> samples_;
  uint64_t next_ = 0;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_LATENCY_WINDOW_H_
