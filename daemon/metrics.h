// Metrics: what crunchd counts for Prometheus, and the text it serves.
//
// TaskMetrics is fed by the Scheduler as tasks end or are refused: counts by
// kind and status code, and per pool a histogram of the time tasks waited in
// the queue and of the time they ran. RenderMetrics() turns those, a
// SchedulerSnapshot (queues, workers) and this process's own figures from
// /proc into the Prometheus text exposition format (version 0.0.4).
//
// The names follow Prometheus' conventions: a crunchd_ prefix, base units
// (seconds, bytes), _total on counters, and the standard process_* metrics
// that client libraries export.
//
// Thread safety: not thread-safe; owned and read on the scheduler's thread.

#ifndef CRUNCH_DAEMON_METRICS_H_
#define CRUNCH_DAEMON_METRICS_H_

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "daemon/kind.h"

namespace crunch::daemon {

struct SchedulerSnapshot;

// A Prometheus histogram with fixed buckets from 25 us to 60 s.
class LatencyHistogram {
 public:
  // The upper bounds, in seconds; +Inf is implied.
  static constexpr std::array<double, 19> kBounds = {
      0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,     0.1,     0.25,   0.5,     1,      2.5,   5,      10,    60};

  void Observe(std::chrono::microseconds elapsed);

  // Non-cumulative count per bucket; the last one is +Inf.
  const std::array<uint64_t, kBounds.size() + 1>& buckets() const { return buckets_; }
  uint64_t count() const { return count_; }
  double sum_seconds() const { return static_cast<double>(sum_us_) / 1e6; }

 private:
  std::array<uint64_t, kBounds.size() + 1> buckets_{};
  uint64_t count_ = 0;
  uint64_t sum_us_ = 0;
};

class TaskMetrics {
 public:
  // A task of `kind` ended with `code`. `ran` is false for one that never
  // left its queue (cancelled, expired or drained there): it has a queue wait
  // only. `kind` must outlive this object (the scheduler's registry does).
  void OnEnded(const KindSpec& kind, absl::StatusCode code, std::chrono::microseconds queue_wait,
               bool ran, std::chrono::microseconds run);
  // A task was refused before it was accepted.
  void OnRejected(absl::StatusCode code) { ++rejected_[code]; }

 private:
  friend std::string RenderMetrics(const TaskMetrics&, const SchedulerSnapshot&);

  static constexpr int kPools = 2;  // Indexed by Pool.
  // By kind and code; the pool is the kind's. Keyed by the registry's specs,
  // so counting a task copies no name.
  absl::flat_hash_map<std::pair<const KindSpec*, absl::StatusCode>, uint64_t> ended_;
  std::map<absl::StatusCode, uint64_t> rejected_;
  std::array<LatencyHistogram, kPools> queue_wait_;
  std::array<LatencyHistogram, kPools> run_;
};

// The whole exposition: crunchd_* from `tasks` and `snapshot`, process_* from
// /proc/self.
std::string RenderMetrics(const TaskMetrics& tasks, const SchedulerSnapshot& snapshot);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_METRICS_H_
