// Scheduler: the heart of crunchd. Accepts tasks, queues them per pool,
// dispatches them to the CPU worker processes or the I/O threads, enforces
// deadlines and cancellation, and reports every accepted task's end exactly
// once.
//
// Design
//   * One thread. Everything here runs on the io_context's thread; transports
//     hand requests over with boost::asio::post and get results in callbacks on
//     the same thread. No locks, no shared flags.
//   * Admission is immediate: an unknown kind, a bad parameter, a payload over
//     the limit, a full queue or a draining daemon is refused before the task
//     exists (the caller gets the error at once, nothing is queued).
//   * Two bounded queues (cpu, io), each ordered by priority then arrival. A
//     dispatch round ("pump") runs after anything that may free capacity and is
//     coalesced: many arrivals in one loop turn are dispatched together, and
//     each worker is woken once per round.
//   * Deadlines: every task has one (its timeout_ms, or the pool's default),
//     kept in an ordered set with a single timer armed for the earliest. A task
//     past its deadline ends with DEADLINE_EXCEEDED wherever it is: removed
//     from its queue, its CPU worker killed if it was running there, its I/O
//     result ignored if it comes later.
//   * Cancel ends a task with CANCELLED: a queued one leaves its queue, a
//     running CPU task's worker is killed and replaced.
//   * Worker loss: the task a dead worker was running ends with ABORTED naming
//     the signal or exit status; tasks queued behind it on that worker never
//     started and go back to the front of the queue.
//   * Quarantine (crash loops): per CPU kind, the scheduler counts tasks in a
//     row whose worker died under them on its own (a signal, an exit, a
//     seccomp or rlimit kill; not a worker the daemon killed for a timeout, a
//     cancel or recycling: a task that runs too long is the timeout's business,
//     and it costs its worker no more than the timeout). A task of the kind
//     that succeeds resets the count; one that fails with an error of its own
//     neither counts nor resets. At [cpu] quarantine_after in a row the kind is
//     quarantined for [cpu] quarantine_ms: new tasks of it are refused at once
//     and its queued ones end, both with FAILED_PRECONDITION naming the kind,
//     the time left and the crashes; tasks of it already handed to a worker
//     run on. After the cooldown the count starts again from zero. So a
//     poisoned kind costs at most quarantine_after worker restarts per
//     cooldown, and the other kinds keep the pool.
//   * Submit()ted results are kept for result_ttl_ms for Wait().
//   * Drain: new tasks get UNAVAILABLE; running ones may finish within the
//     grace period; whatever is left then ends with UNAVAILABLE.
//
// Thread safety: not thread-safe; all calls on the io_context's thread,
// except request_limits().

#ifndef CRUNCH_DAEMON_SCHEDULER_H_
#define CRUNCH_DAEMON_SCHEDULER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/steady_timer.hpp"
#include "daemon/config.h"
#include "daemon/cpu_kind_probe.h"
#include "daemon/cpu_pool.h"
#include "daemon/io_pool.h"
#include "daemon/kind_registry.h"
#include "daemon/kinds/io_kinds.h"
#include "daemon/latency_window.h"
#include "daemon/metrics.h"
#include "daemon/request_limits.h"
#include "daemon/task.h"
#include "daemon/task_queue.h"

namespace crunch::daemon {

struct PoolSnapshot {
  std::string name;
  uint32_t size = 0;
  uint32_t busy = 0;
  uint32_t queued = 0;
  uint32_t queue_capacity = 0;
  LatencySummary latency;
  uint32_t in_flight = 0;  // Handed to a worker or thread, not ended.
};

// The crash-loop state of one CPU kind.
struct KindHealthSnapshot {
  std::string kind;
  uint32_t consecutive_crashes = 0;
  uint64_t quarantined_ms_left = 0;  // 0: not quarantined.
  uint64_t quarantines = 0;          // Since crunchd started.
};

struct SchedulerSnapshot {
  std::vector<WorkerSnapshot> workers;
  std::vector<KindHealthSnapshot> cpu_kinds;  // In CPU kind order.
  std::vector<PoolSnapshot> pools;
  uint64_t accepted = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t rejected = 0;
  uint64_t cancelled = 0;
  std::map<std::string, uint64_t> failed_by_code;
  uint64_t arena_bytes_in_use = 0;  // Payloads and outputs in shared memory.
  bool draining = false;
};

struct CancelOutcome {
  bool cancelled = false;
  std::string state;  // queued, running, done
};

class Scheduler final : private CpuPool::Listener {
 public:
  // config.cpu.worker_path must name the crunch_worker executable.
  static absl::StatusOr<std::unique_ptr<Scheduler>> Create(boost::asio::io_context& io,
                                                           const Config& config);
  ~Scheduler() override;

  // Starts the worker processes; `on_ready` runs once all have attached.
  absl::Status Start(absl::AnyInvocable<void()> on_ready);

  // Accepts the task or refuses it at once. On acceptance returns its id and
  // calls `done` exactly once, later, when it ends. With `keep_result` the
  // result stays available to Wait() for result_ttl_ms. The parameters'
  // count and sizes ([limits] max_params, max_param_bytes) are checked before
  // anything else looks at them.
  absl::StatusOr<uint64_t> Submit(TaskRequest request, TaskDoneCallback done,
                                  bool keep_result = false);

  // Calls `done` with the task's result: now if it has ended, else when it
  // does. If `deadline` passes first, `done` gets a result whose code is
  // DEADLINE_EXCEEDED and error says the wait timed out (the task goes on).
  // NOT_FOUND if no such task is running or kept.
  absl::Status Wait(uint64_t task_id, std::chrono::steady_clock::time_point deadline,
                    TaskDoneCallback done);

  // NOT_FOUND if no such task is running or kept.
  absl::StatusOr<CancelOutcome> Cancel(uint64_t task_id);

  // Stops accepting; when every task has ended, or `grace` has passed and the
  // rest were failed with UNAVAILABLE, stops the pools and calls `drained`.
  // Called again while draining, it ends the grace period at once.
  void Drain(std::chrono::milliseconds grace, absl::AnyInvocable<void()> drained);

  // Applies what can change without a restart (queue capacities, timeouts,
  // limits, I/O settings, log level, the [plugins]); the rest is logged as
  // needing one. New plugins (added, removed, or a file rebuilt) are read
  // through a worker (daemon/cpu_kind_probe.h), on a thread of their own so
  // that calls are answered meanwhile (a plugin's init may take seconds); a
  // reload during that probe is applied after it. If the probe fails, the running
  // kinds and workers stay, workers started meanwhile (replacing one that
  // died, timed out or was recycled) still load the files those kinds came
  // from (daemon/plugin_files.h), and the error is logged. Otherwise calls are
  // validated against the new kinds at once, queued tasks move to them by
  // name (a queued task whose kind is gone ends FAILED_PRECONDITION), and the
  // workers are replaced one at a time (CpuPool::ReloadKinds); running tasks
  // finish on the workers they are on.
  void Reload(const Config& config);

  // The [limits] on one request as they stand (they follow reloads), for a
  // transport to read on its own threads: what is over them need not be
  // copied or parsed, only measured (TaskRequest::left_out). The one member
  // safe to use from any thread.
  const PublishedRequestLimits& request_limits() const { return request_limits_; }

  SchedulerSnapshot Snapshot() const;
  const TaskMetrics& task_metrics() const { return metrics_; }
  const KindRegistry& kinds() const { return *kinds_; }
  size_t live_tasks() const { return live_.size(); }

 private:
  enum class State : uint8_t { kQueued, kRunning };
  struct Task {
    uint64_t id = 0;
    uint64_t sequence = 0;
    TaskRequest request;
    const KindSpec* spec = nullptr;
    uint32_t cpu_index = 0;
    std::shared_ptr<const KindRegistry> kinds;  // Where `spec` lives (a reload may retire it).
    TaskParams params;
    State state = State::kQueued;
    std::chrono::steady_clock::time_point accepted, dispatched, deadline;
    TaskDoneCallback done;
    bool keep_result = false;
    uint64_t payload_bytes = 0;  // Counted in queued_bytes_ until the task ends.
    uint32_t worker_pid = 0;
    std::shared_ptr<std::atomic<bool>> cancelled;  // I/O tasks.
    std::vector<TaskDoneCallback> waiters;
    TaskQueue::Key key() const { return {request.priority, sequence, id}; }
  };
  // Crash-loop accounting of one CPU kind (see "Quarantine" above).
  struct KindHealth {
    uint32_t consecutive_crashes = 0;
    std::chrono::steady_clock::time_point quarantined_until;  // Past: not quarantined.
    uint32_t crashes_before_quarantine = 0;                   // What the last quarantine followed.
    uint64_t quarantines = 0;
  };
  struct Kept {
    TaskResult result;
    std::chrono::steady_clock::time_point expires;
  };

  Scheduler(boost::asio::io_context& io, const Config& config,
            std::shared_ptr<const KindRegistry> kinds);

  // CpuPool::Listener
  void OnCpuTaskDone(uint64_t task_id, absl::StatusCode code, std::span<const std::byte> output,
                     uint32_t worker_pid) override;
  void OnCpuWorkerLost(uint32_t worker_pid, const std::string& cause, std::vector<uint64_t> held,
                       bool killed_by_daemon) override;
  void OnCpuCapacity() override { SchedulePump(); }

  void OnIoTaskDone(uint64_t task_id, absl::Status status, std::string output);

  // FAILED_PRECONDITION if the CPU kind `cpu_index` is quarantined now.
  absl::Status CheckQuarantine(const KindSpec& spec, uint32_t cpu_index) const;
  // Counts a task of `cpu_index` whose worker died under it; true if that
  // starts a quarantine.
  bool CountCrash(const KindSpec& spec, uint32_t cpu_index);
  // Ends every queued task of a quarantined kind.
  void FailQueuedOfKind(const KindSpec& spec, uint32_t cpu_index);
  // The [plugins] part of Reload: starts the probe if the plugins changed.
  void ReloadKinds(const Config& config);
  // On the io_context, once the probe of `config`'s plugins ended: the new
  // kinds replace the running ones, or the error is logged.
  void ApplyKinds(const Config& config, absl::StatusOr<std::shared_ptr<const PluginFiles>> files,
                  absl::StatusOr<CpuKindCatalog> catalog);
  // Whether the task's kind is one of the current registry's (not retired by a reload).
  bool HasCurrentKind(const Task& task) const { return task.kinds == kinds_; }

  void SchedulePump();
  void Pump();
  // Hands a queued CPU task to a worker (and marks it running) if one can take it.
  CpuPool::DispatchResult DispatchCpu(Task* task);
  void PumpCpu();
  void PumpIo();
  void LogEnd(const Task& task, absl::StatusCode code, const TaskResult& result);
  // Ends the task: removes it from every index, reports it, keeps it if asked.
  void Finish(Task* task, absl::StatusCode code, std::string error, std::string output);
  static std::chrono::milliseconds Timeout(const Task& task);
  static std::string KernelTimedOut(const Task& task, absl::string_view detail);
  void ArmDeadlineTimer();
  void OnDeadlineTimer();
  void ExpireKept();
  void CheckDrained();
  void OnDrainGraceOver();
  TaskQueue& QueueOf(Pool pool) { return pool == Pool::kCpu ? cpu_queue_ : io_queue_; }

  boost::asio::io_context& io_;
  Config config_;
  PublishedRequestLimits request_limits_;  // From config_.limits, published.
  std::shared_ptr<const KindRegistry> kinds_;
  IoSettings io_settings_;  // What the I/O kinds were made with (kept across reloads).
  // The [plugins] files the running kinds came from, as opened
  // (PluginFiles::Fingerprint); the pool holds them open.
  std::string plugin_fingerprint_;
  // A reload's probe runs on probe_thread_ (joined by the destructor, at most
  // the probe's timeout); a reload meanwhile waits in reprobe_. alive_ lets
  // the probe's result find out, on the io_context, that the scheduler is gone.
  std::thread probe_thread_;
  bool probing_ = false;
  std::optional<Config> reprobe_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<CpuPool> cpu_;
  std::unique_ptr<IoPool> io_pool_;
  TaskQueue cpu_queue_;
  TaskQueue io_queue_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Task>> live_;
  std::vector<KindHealth> kind_health_;  // By CPU kind index.
  absl::flat_hash_map<uint64_t, Kept> kept_;
  std::deque<uint64_t> kept_order_;  // By expiry (TTL is uniform).
  absl::flat_hash_map<std::string, uint64_t> idempotency_;
  std::set<std::pair<std::chrono::steady_clock::time_point, uint64_t>> deadlines_;
  boost::asio::steady_timer deadline_timer_;
  std::chrono::steady_clock::time_point deadline_timer_at_ =
      std::chrono::steady_clock::time_point::max();
  boost::asio::steady_timer housekeeping_timer_;
  bool pump_scheduled_ = false;
  uint64_t next_id_ = 1;
  uint64_t next_sequence_ = 0;

  LatencyWindow cpu_latency_;
  LatencyWindow io_latency_;
  TaskMetrics metrics_;
  uint64_t accepted_ = 0, completed_ = 0, failed_ = 0, rejected_ = 0, cancelled_ = 0;
  uint64_t queued_bytes_ = 0;  // Payload bytes of live tasks; at most [limits] max_queued_bytes.
  absl::flat_hash_map<absl::StatusCode, uint64_t> failed_by_code_;

  bool draining_ = false;
  boost::asio::steady_timer drain_timer_;
  std::chrono::milliseconds drain_grace_{0};
  absl::AnyInvocable<void()> drained_;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_SCHEDULER_H_
