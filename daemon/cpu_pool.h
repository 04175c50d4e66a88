// CpuPool: the worker processes that run CPU tasks, and their supervision.
//
// One shared segment (memfd) holds a slot per worker: a request ring, a
// completion ring and the payload arena they share. The pool owns the daemon's
// end of every slot (ipc::DaemonChannel) and the worker processes
// (ipc::ChildProcess, started with fork+exec of crunch_worker).
//
// Wake-ups: each slot's completion eventfd and each worker's exit fd are waited on
// by the scheduler's io_context, so one thread serves every worker: a
// completion wakes the loop, the pool drains the ring and reports each result
// to its Listener. Requests are published without waking the worker; Flush()
// rings every worker that got some, once per dispatch round.
//
// Dispatch picks the least loaded worker, and among equals the next one after
// the last used, so tasks arriving one at a time still spread over the pool.
//
// Pipelining adapts to task length: each worker keeps an estimate of its
// service time (EWMA of completion intervals). Short tasks (<= 200 us) are
// dispatched up to `in_flight_per_worker` deep, so a worker never waits for the
// daemon between them; medium ones 2 deep; long ones (> 5 ms) one at a time, so
// a long task never holds others hostage while another worker could take them.
//
// Recycling: a worker that has completed max_tasks_per_worker tasks, or whose
// RSS is over max_worker_rss_bytes (read from /proc about once a second while
// it works), gets no new tasks; once it holds none it is killed and replaced
// at once. That is not a failure: no backoff, and counted apart from restarts.
// With [cpu] worker_cpu_seconds (the worker's RLIMIT_CPU, see
// daemon/worker_limits.h), a worker that has used half of it is recycled the
// same way (its CPU time read from /proc on the same schedule, or every
// eighth of the budget if that is shorter), so the limit kills only a worker
// whose one task burns the other half.
//
// Limits: every worker is started with the WorkerLimits in the options (passed
// on its command line); it applies them and its seccomp filter itself.
//
// Kinds and reloads: every worker loads the same CPU kinds (the built-ins and
// the [plugins] files) and numbers them alike; a descriptor carries that
// number. Reload() brings new kinds (plugins added, removed or rebuilt) by a
// rolling replacement that never leaves fewer than `workers` processes
// serving: the segment has one spare slot, normally parked (no process). A
// reload starts a worker of the new generation there; once it has attached,
// one worker of an older generation is retired (no new tasks; killed and its
// slot parked once it holds none), which frees the spare for the next. Until
// it is retired, an old worker keeps taking tasks of the kinds it has: Dispatch
// takes kind numbers of the newest generation and translates them for each
// worker by name. Every worker started, for a reload or to replace one that
// died or was recycled (an old one's replacement too), is of the newest
// generation and gets that generation's plugin files, which the pool holds
// open (daemon/plugin_files.h): a plugin file replaced on disk reaches the
// workers only through a reload, never through a respawn. An older
// generation's files are released by ReloadKinds, when nothing can start a
// worker with them any more (its running workers have loaded theirs).
//
// Supervision: a worker that exits for any reason is reaped through its exit fd;
// completions it published are still delivered, the tasks it held are handed
// to the Listener (the first was running, the rest had not started), its arena
// space is reclaimed, and a replacement is started, at once after a first
// failure and with exponential backoff (up to 5 s) while failures repeat.
//
// Thread safety: not thread-safe; every call, and every Listener callback,
// happens on the io_context's thread.

#ifndef CRUNCH_DAEMON_CPU_POOL_H_
#define CRUNCH_DAEMON_CPU_POOL_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/posix/stream_descriptor.hpp"
#include "boost/asio/steady_timer.hpp"
#include "daemon/plugin_files.h"
#include "daemon/worker_limits.h"
#include "ipc/arena_allocator.h"
#include "ipc/child_process.h"
#include "ipc/daemon_channel.h"
#include "ipc/segment.h"

namespace crunch::daemon {

struct CpuPoolOptions {
  std::string worker_path;  // The crunch_worker executable.
  uint32_t workers = 1;
  uint32_t in_flight_per_worker = 8;  // The most; see "Pipelining" above.
  uint64_t spin_ns = 50'000;
  uint64_t arena_bytes = 1ull << 30;
  uint64_t max_tasks_per_worker = 0;  // 0: never recycle for the count.
  uint64_t max_worker_rss_bytes = 0;  // 0: never recycle for memory.
  WorkerLimits limits;                // Applied by each worker to itself.
  // How long a worker may take from its start to attaching (it loads the
  // kinds, every plugin's init, first); past it, it is killed and restarted.
  std::chrono::milliseconds attach_timeout{10000};
  // The [plugins] files, held open and handed to each worker, which loads
  // them in this order, and the digest of the kind catalog they make
  // (daemon/cpu_kind_probe.h), which each worker checks. Null: no plugins.
  std::shared_ptr<const PluginFiles> plugin_files;
  std::string kinds_digest;
  // The CPU kinds' names in the catalog's order (their numbers).
  std::vector<std::string> kind_names;
};

struct WorkerSnapshot {
  uint32_t slot = 0;
  uint32_t pid = 0;
  std::string state;  // starting, idle, busy, restarting
  uint64_t tasks_done = 0;
  uint32_t restarts = 0;
  uint32_t recycles = 0;     // Replaced on purpose (max_tasks_per_worker, max_worker_rss_bytes).
  std::string current_kind;  // The running task's kind, if busy.
  uint64_t rss_bytes = 0;
};

class CpuPool {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // A task ended in its worker (any status). `output` is valid only during the call.
    virtual void OnCpuTaskDone(uint64_t task_id, absl::StatusCode code,
                               std::span<const std::byte> output, uint32_t worker_pid) = 0;
    // A worker exited; `held` lists the tasks it had, in order: held[0] was
    // running, the rest never started. `cause` describes the exit. When
    // `killed_by_daemon`, the pool killed it on request (KillWorkerHolding):
    // no held task is to blame, not even held[0] (the task it was killed for
    // may have ended on its own meanwhile, and the next one started).
    virtual void OnCpuWorkerLost(uint32_t worker_pid, const std::string& cause,
                                 std::vector<uint64_t> held, bool killed_by_daemon) = 0;
    // A worker can take more work (it attached, or finished tasks).
    virtual void OnCpuCapacity() = 0;
  };

  enum class DispatchResult { kOk, kNoWorker, kArenaFull };

  // Creates the segment; starts no process yet. FAILED_PRECONDITION if the
  // worker is missing or limits.open_files is over crunchd's own hard limit.
  static absl::StatusOr<std::unique_ptr<CpuPool>> Create(boost::asio::io_context& io,
                                                         const CpuPoolOptions& options,
                                                         Listener* listener);
  ~CpuPool();

  // Starts every worker. `on_ready` runs once, when all of them have attached.
  absl::Status Start(absl::AnyInvocable<void()> on_ready);

  // Hands a task to the least-loaded ready worker that has the kind (numbered
  // as in the newest generation's kind_names). The input is gathered from
  // `input_parts` into the arena; `output_capacity` bytes are lent for output.
  DispatchResult Dispatch(uint64_t task_id, uint32_t kind_index,
                          std::span<const std::span<const std::byte>> input_parts,
                          uint64_t output_capacity, uint64_t deadline_ns, uint32_t* worker_pid);
  // Wakes every worker that got requests since the last Flush().
  void Flush();
  bool HasCapacity() const;

  // True if `task_id` is what its worker is executing right now.
  bool IsRunning(uint64_t task_id) const;
  // Kills the worker that holds `task_id` (to enforce a timeout).
  // Its loss is reported through the Listener like any other.
  void KillWorkerHolding(uint64_t task_id);
  // Asks the worker that holds `task_id` to stop it (ipc::SlotControl::
  // cancel_request): a task not started yet is skipped, and a running kernel
  // that polls crunch_task_should_stop() ends it. If it is still running
  // 100 ms later (kCancelGrace), the worker is killed, as by KillWorkerHolding. The
  // completion that follows, if any, is reported as usual.
  void CancelTask(uint64_t task_id);
  // Kills a worker by pid; false if no worker of this pool has it.
  bool KillWorkerPid(uint32_t pid);

  // Kills and reaps every worker; no callbacks follow.
  void Stop();

  std::vector<WorkerSnapshot> Snapshot() const;
  // Changes the recycling limits (a reload); 0 turns one off.
  void SetRecycling(uint64_t max_tasks_per_worker, uint64_t max_worker_rss_bytes);
  // Changes attach_timeout (a reload) for workers started from now on.
  void SetAttachTimeout(std::chrono::milliseconds timeout) { options_.attach_timeout = timeout; }
  // New kinds (a reload that changed the [plugins]): replaces every worker,
  // one at a time, by one started with these; see "Kinds and reloads" above.
  // Every worker started from now on, a replacement of an old one included,
  // loads `plugin_files`.
  void ReloadKinds(std::shared_ptr<const PluginFiles> plugin_files, std::string kinds_digest,
                   std::vector<std::string> kind_names);
  // True while workers of an older generation remain.
  bool reloading() const;
  uint32_t size() const { return options_.workers; }
  uint32_t busy() const;
  uint64_t arena_bytes_in_use() const { return arena_.bytes_in_use(); }

 private:
  enum class State { kStarting, kReady, kRestarting, kStopped, kParked };
  // The kinds one generation of workers serves.
  struct Generation {
    std::vector<std::string> names;     // By the generation's own numbers.
    std::vector<uint32_t> from_newest;  // Newest number -> this one's (kNoKind if absent).
  };
  static constexpr uint32_t kNoKind = UINT32_MAX;
  // A task handed to a worker and not completed yet.
  struct HeldTask {
    uint64_t id;
    uint32_t kind;  // In the worker's generation's numbering.
    std::chrono::steady_clock::time_point dispatched;
    // Cancelled: when its worker is killed if it is running by then.
    std::chrono::steady_clock::time_point kill_if_running_at =
        std::chrono::steady_clock::time_point::max();
  };
  struct Worker {
    explicit Worker(boost::asio::io_context& io)
        : wake(io), exit_watch(io), timer(io), cancel_timer(io) {}
    uint32_t slot = 0;
    std::optional<ipc::DaemonChannel> channel;
    std::optional<ipc::ChildProcess> child;
    boost::asio::posix::stream_descriptor wake;        // Completion eventfd (a dup).
    boost::asio::posix::stream_descriptor exit_watch;  // ChildProcess::exit_fd() (a dup).
    boost::asio::steady_timer timer;                   // Attach timeout / respawn backoff.
    boost::asio::steady_timer cancel_timer;            // CheckCancels().
    State state = State::kStarting;
    uint32_t pid = 0;
    std::deque<HeldTask> in_flight;  // In dispatch order; the front one is running.
    std::chrono::steady_clock::time_point last_completion;
    int64_t service_ns = -1;  // EWMA of the time a task takes here; -1 = no sample yet.
    uint64_t tasks_done = 0;
    uint32_t restarts = 0;
    uint32_t recycles = 0;
    uint64_t tasks_this_life = 0;  // Completed by the current process.
    std::chrono::steady_clock::time_point
        rss_checked;        // Also the CPU time, for limits.cpu_seconds.
    bool retiring = false;  // To be recycled: gets no new tasks.
    bool recycled = false;  // Killed for recycling, not for a fault.
    uint32_t consecutive_failures = 0;
    bool needs_ring = false;
    bool killed_by_daemon = false;  // KillWorkerHolding/KillWorkerPid was called.
    std::chrono::steady_clock::time_point started;
    uint32_t generation = 0;    // Of the kinds it was started with.
    bool surge = false;         // Started in the spare slot by a reload, not attached yet.
    bool park_on_exit = false;  // Retired by a reload: its slot becomes the spare.
  };

  CpuPool(boost::asio::io_context& io, const CpuPoolOptions& options, Listener* listener,
          ipc::Segment segment);

  absl::Status Spawn(Worker& w);
  void ArmWake(Worker& w);
  void OnWake(Worker& w);
  void DrainCompletions(Worker& w);
  void OnExit(Worker& w);
  // Kills `w` if the task it runs was cancelled over kCancelGrace ago;
  // otherwise waits until that could next be so.
  void CheckCancels(Worker& w);
  void ScheduleRespawn(Worker& w);
  void CheckAllReady();
  // Marks `w` retiring if it is past a recycling limit; kills a retiring
  // worker that holds no task.
  void MaybeRecycle(Worker& w);
  // How many tasks `w` may hold at once, from its service-time estimate.
  uint32_t DepthFor(const Worker& w) const;
  // The next step of a reload's rolling replacement, if one is due.
  void RollOn();
  // Retires one worker of an older generation, now that a new one attached.
  void RetireOneStale();
  bool IsStale(const Worker& w) const {
    return w.state != State::kParked && w.generation != generation_;
  }

  boost::asio::io_context& io_;
  CpuPoolOptions options_;
  Listener* listener_;
  ipc::Segment segment_;
  ipc::ArenaAllocator arena_;
  std::vector<std::unique_ptr<Worker>> workers_;
  absl::flat_hash_map<uint64_t, uint32_t> slot_of_task_;
  size_t next_worker_ = 0;   // Where Dispatch starts looking (round-robin among equals).
  uint32_t generation_ = 0;  // The newest.
  absl::flat_hash_map<uint32_t, Generation> generations_;
  absl::AnyInvocable<void()> on_ready_;
  bool stopped_ = false;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_CPU_POOL_H_
