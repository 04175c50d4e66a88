#include "daemon/scheduler.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "daemon/cpu_kind_probe.h"
#include "daemon/kinds/io_kinds.h"
#include "daemon/log_format.h"
#include "daemon/task_codec.h"

namespace crunch::daemon {
namespace {

using Clock = std::chrono::steady_clock;

// Every CPU task is lent at least this much output space, so that an error
// message always fits.
constexpr uint64_t kMinOutputCapacity = 1024;
// During a rolling reload, how many queued CPU tasks behind a front one that
// no ready worker can take are tried (PumpCpu).
constexpr size_t kReloadLookahead = 64;

uint64_t Micros(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

std::string CodeName(absl::StatusCode code) { return absl::StatusCodeToString(code); }

std::span<const std::byte> AsBytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// The [limits] a transport measures a request against (Scheduler::request_limits).
RequestLimits ToRequestLimits(const LimitsConfig& limits) {
  return RequestLimits{.max_payload_bytes = limits.max_payload_bytes,
                       .max_params = limits.max_params,
                       .max_param_bytes = limits.max_param_bytes};
}

// [limits] max_params and max_param_bytes, for a request whose transport did
// not check them (TaskRequest::left_out).
absl::Status CheckParamSizes(const std::map<std::string, std::string>& params,
                             const LimitsConfig& limits) {
  if (params.size() > limits.max_params) {
    return TooManyParamsError(params.size(), limits.max_params);
  }
  for (const auto& [name, value] : params) {
    if (name.size() > limits.max_param_bytes || value.size() > limits.max_param_bytes) {
      return ParamTooLongError(name, name.size(), value.size(), limits.max_param_bytes);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Create(boost::asio::io_context& io,
                                                             const Config& config) {
  IoSettings io_settings;
  io_settings.data_dir = config.io.data_dir;
  io_settings.http_allow = config.io.http_allow;
  io_settings.http_max_redirects = config.io.http_max_redirects;
  io_settings.http_connect_timeout_ms = config.io.http_connect_timeout_ms;
  io_settings.limits.max_output_bytes = config.limits.max_output_bytes;
  // Held open from here on: the probe and every worker load these very files.
  absl::StatusOr<std::shared_ptr<const PluginFiles>> plugin_files =
      PluginFiles::Open(config.plugins.paths);
  if (!plugin_files.ok()) return plugin_files.status();
  absl::StatusOr<CpuKindCatalog> cpu_kinds =
      ProbeCpuKinds(config.cpu.worker_path, **plugin_files,
                    std::chrono::milliseconds(config.plugins.init_timeout_ms));
  if (!cpu_kinds.ok()) return cpu_kinds.status();
  std::vector<std::string> cpu_kind_names;
  for (const KindSpec& k : cpu_kinds->kinds) cpu_kind_names.push_back(k.name);
  absl::StatusOr<KindRegistry> kinds =
      KindRegistry::Create(std::move(cpu_kinds->kinds), IoKinds(io_settings));
  if (!kinds.ok()) return kinds.status();
  std::unique_ptr<Scheduler> s(
      new Scheduler(io, config, std::make_shared<const KindRegistry>(*std::move(kinds))));
  s->io_settings_ = io_settings;
  s->plugin_fingerprint_ = (*plugin_files)->Fingerprint();
  CpuPoolOptions cpu;
  cpu.worker_path = config.cpu.worker_path;
  cpu.workers = config.cpu.workers;
  cpu.in_flight_per_worker = config.cpu.in_flight_per_worker;
  cpu.spin_ns = config.cpu.spin_ns;
  cpu.arena_bytes = config.cpu.arena_bytes;
  cpu.max_tasks_per_worker = config.cpu.max_tasks_per_worker;
  cpu.max_worker_rss_bytes = config.cpu.max_worker_rss_bytes;
  cpu.limits.address_space_bytes = config.cpu.worker_address_space_bytes;
  cpu.limits.cpu_seconds = config.cpu.worker_cpu_seconds;
  cpu.limits.nice = config.cpu.worker_nice;
  cpu.limits.open_files = config.cpu.worker_open_files;
  cpu.limits.seccomp = config.cpu.seccomp;
  cpu.plugin_files = *std::move(plugin_files);
  cpu.attach_timeout = std::chrono::milliseconds(config.plugins.init_timeout_ms);
  cpu.kinds_digest = cpu_kinds->digest;
  cpu.kind_names = std::move(cpu_kind_names);
  absl::StatusOr<std::unique_ptr<CpuPool>> pool = CpuPool::Create(io, cpu, s.get());
  if (!pool.ok()) return pool.status();
  s->cpu_ = *std::move(pool);
  Scheduler* self = s.get();
  s->io_pool_ =
      std::make_unique<IoPool>(io, config.io.threads, config.limits.max_output_bytes,
                               [self](uint64_t id, absl::Status status, std::string output) {
                                 self->OnIoTaskDone(id, std::move(status), std::move(output));
                               });
  return s;
}

Scheduler::Scheduler(boost::asio::io_context& io, const Config& config,
                     std::shared_ptr<const KindRegistry> kinds)
    : io_(io),
      config_(config),
      request_limits_(ToRequestLimits(config.limits)),
      kinds_(std::move(kinds)),
      cpu_queue_(config.cpu.queue_capacity),
      io_queue_(config.io.queue_capacity),
      deadline_timer_(io),
      housekeeping_timer_(io),
      drain_timer_(io) {
  size_t cpu_kinds = 0;
  for (const KindSpec& spec : kinds_->kinds()) cpu_kinds += spec.pool == Pool::kCpu;
  kind_health_.resize(cpu_kinds);
}

Scheduler::~Scheduler() {
  if (probe_thread_.joinable()) probe_thread_.join();
  if (io_pool_) io_pool_->Stop();
  if (cpu_) cpu_->Stop();
}

absl::Status Scheduler::Start(absl::AnyInvocable<void()> on_ready) {
  ExpireKept();  // Arms the housekeeping timer.
  return cpu_->Start(std::move(on_ready));
}

absl::StatusOr<uint64_t> Scheduler::Submit(TaskRequest request, TaskDoneCallback done,
                                           bool keep_result) {
  auto reject = [this](absl::Status s) {
    ++rejected_;
    metrics_.OnRejected(s.code());
    return s;
  };
  if (draining_) {
    return reject(absl::UnavailableError("crunchd is shutting down and accepts no new tasks"));
  }
  // The parameters' sizes first: nothing below copies or parses them before this.
  if (!request.left_out.params.ok()) return reject(request.left_out.params);
  if (absl::Status s = CheckParamSizes(request.params, config_.limits); !s.ok()) return reject(s);
  absl::StatusOr<KindRegistry::Entry> entry = kinds_->Find(request.kind);
  if (!entry.ok()) return reject(entry.status());
  absl::StatusOr<TaskParams> params = ValidateParams(*entry->spec, request.params);
  if (!params.ok()) return reject(params.status());
  if (entry->spec->pool == Pool::kCpu) {
    if (absl::Status q = CheckQuarantine(*entry->spec, entry->cpu_index); !q.ok()) {
      return reject(q);
    }
  }
  if (request.left_out.payload_bytes != 0) {
    return reject(
        PayloadTooLargeError(request.left_out.payload_bytes, request.left_out.payload_limit));
  }
  if (request.payload.size() > config_.limits.max_payload_bytes) {
    return reject(PayloadTooLargeError(request.payload.size(), config_.limits.max_payload_bytes));
  }
  if (keep_result && !request.idempotency_key.empty()) {
    auto it = idempotency_.find(request.idempotency_key);
    if (it != idempotency_.end()) return it->second;
  }
  if (queued_bytes_ + request.payload.size() > config_.limits.max_queued_bytes) {
    return reject(absl::ResourceExhaustedError(
        absl::StrCat("crunchd holds ", queued_bytes_,
                     " bytes of payloads of unfinished tasks and this one adds ",
                     request.payload.size(), "; the limit is ", config_.limits.max_queued_bytes,
                     " ([limits] max_queued_bytes): retry when tasks have ended")));
  }
  const Pool pool = entry->spec->pool;
  const uint64_t id = next_id_++;
  auto task = std::make_unique<Task>();
  task->id = id;
  task->sequence = next_sequence_++;
  if (!QueueOf(pool).Push({request.priority, task->sequence, id})) {
    --next_id_;
    const TaskQueue& q = QueueOf(pool);
    return reject(absl::ResourceExhaustedError(
        absl::StrCat("the ", PoolName(pool), " queue is full (", q.size(), " of ", q.capacity(),
                     " tasks queued; [", PoolName(pool), "] queue_capacity)")));
  }
  const uint32_t default_timeout =
      pool == Pool::kCpu ? config_.cpu.task_timeout_ms : config_.io.task_timeout_ms;
  uint32_t timeout_ms = request.timeout_ms != 0 ? request.timeout_ms : default_timeout;
  if (request.call_timeout_ms != 0) timeout_ms = std::min(timeout_ms, request.call_timeout_ms);
  task->spec = entry->spec;
  task->cpu_index = entry->cpu_index;
  task->kinds = kinds_;
  task->params = *std::move(params);
  task->accepted = Clock::now();
  task->deadline = task->accepted + std::chrono::milliseconds(timeout_ms);
  task->done = std::move(done);
  task->keep_result = keep_result;
  task->payload_bytes = request.payload.size();
  queued_bytes_ += task->payload_bytes;
  if (keep_result && !request.idempotency_key.empty()) {
    idempotency_[request.idempotency_key] = id;
  }
  task->request = std::move(request);
  deadlines_.emplace(task->deadline, id);
  live_.emplace(id, std::move(task));
  ++accepted_;
  ArmDeadlineTimer();
  SchedulePump();
  return id;
}

void Scheduler::SchedulePump() {
  if (pump_scheduled_) return;
  pump_scheduled_ = true;
  boost::asio::post(io_, [this] {
    pump_scheduled_ = false;
    Pump();
  });
}

void Scheduler::Pump() {
  PumpCpu();
  PumpIo();
}

CpuPool::DispatchResult Scheduler::DispatchCpu(Task* task) {
  const KernelLimits limits{config_.limits.max_output_bytes};
  const std::string header = EncodeParamsHeader(task->params);
  const std::span<const std::byte> parts[] = {AsBytes(header), AsBytes(task->request.payload)};
  const uint64_t capacity =
      std::max(kMinOutputCapacity, OutputCapacity(*task->spec, parts[1].size(), limits));
  uint32_t pid = 0;
  const auto deadline_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(task->deadline.time_since_epoch())
          .count());
  const CpuPool::DispatchResult result =
      cpu_->Dispatch(task->id, task->cpu_index, parts, capacity, deadline_ns, &pid);
  if (result == CpuPool::DispatchResult::kOk) {
    task->state = State::kRunning;
    task->dispatched = Clock::now();
    task->worker_pid = pid;
  }
  return result;
}

void Scheduler::PumpCpu() {
  bool dispatched = false;
  while (std::optional<TaskQueue::Key> key = cpu_queue_.Front()) {
    const CpuPool::DispatchResult result = DispatchCpu(live_.at(key->task_id).get());
    if (result != CpuPool::DispatchResult::kOk) {
      // During a rolling reload the front task's kind may be one only the new
      // workers serve, and none is ready yet (its plugin's init takes its
      // time), while the old workers could run the tasks behind it: look a
      // little further instead of holding up the queue. Retried when a worker
      // reports capacity.
      if (result == CpuPool::DispatchResult::kNoWorker && cpu_->reloading()) {
        for (const TaskQueue::Key& behind : cpu_queue_.FirstKeys(kReloadLookahead + 1)) {
          if (behind.task_id == key->task_id) continue;
          const CpuPool::DispatchResult r = DispatchCpu(live_.at(behind.task_id).get());
          if (r == CpuPool::DispatchResult::kArenaFull) break;
          if (r == CpuPool::DispatchResult::kOk) {
            cpu_queue_.Remove(behind);
            dispatched = true;
          }
        }
      }
      break;
    }
    cpu_queue_.PopFront();
    dispatched = true;
  }
  if (dispatched) cpu_->Flush();
}

void Scheduler::PumpIo() {
  while (io_pool_->busy() < io_pool_->size()) {
    std::optional<TaskQueue::Key> key = io_queue_.Front();
    if (!key) break;
    Task* task = live_.at(key->task_id).get();
    io_queue_.PopFront();
    task->state = State::kRunning;
    task->dispatched = Clock::now();
    task->cancelled = std::make_shared<std::atomic<bool>>(false);
    IoPool::Job job;
    job.task_id = task->id;
    job.spec = task->spec;
    job.params = task->params;
    job.payload = std::move(task->request.payload);  // An I/O task never runs twice.
    job.context.deadline = task->deadline;
    job.context.cancelled = task->cancelled.get();
    job.cancelled = task->cancelled;
    io_pool_->Dispatch(std::move(job));
  }
}

void Scheduler::OnCpuTaskDone(uint64_t task_id, absl::StatusCode code,
                              std::span<const std::byte> output, uint32_t worker_pid) {
  auto it = live_.find(task_id);
  if (it == live_.end()) return;  // Ended already (deadline, cancel, drain).
  Task* task = it->second.get();
  task->worker_pid = worker_pid;
  std::string bytes(reinterpret_cast<const char*>(output.data()), output.size());
  if (code == absl::StatusCode::kOk) {
    if (HasCurrentKind(*task)) kind_health_[task->cpu_index].consecutive_crashes = 0;
    Finish(task, code, "", std::move(bytes));
  } else if (code == absl::StatusCode::kDeadlineExceeded) {
    Finish(task, code, KernelTimedOut(*task, bytes), "");
  } else {
    Finish(task, code, std::move(bytes), "");
  }
}

void Scheduler::OnCpuWorkerLost(uint32_t worker_pid, const std::string& cause,
                                std::vector<uint64_t> held, bool killed_by_daemon) {
  const KindSpec* quarantined = nullptr;
  uint32_t quarantined_index = 0;
  for (size_t i = 0; i < held.size(); ++i) {
    auto it = live_.find(held[i]);
    if (it == live_.end()) continue;  // Ended already: it is what the worker was killed for.
    Task* task = it->second.get();
    // A worker that died on its own was killed by held[0]; one the daemon
    // killed (for a timeout or a cancel) took innocent tasks with it, which
    // simply run again.
    if (i == 0 && !killed_by_daemon) {
      const KindSpec* spec = task->spec;
      const uint32_t cpu_index = task->cpu_index;
      const bool current = HasCurrentKind(*task);
      Finish(task, absl::StatusCode::kAborted,
             absl::StrCat("worker process ", worker_pid, " ", cause, " while running this task"),
             "");
      if (current && CountCrash(*spec, cpu_index)) {
        quarantined = spec;
        quarantined_index = cpu_index;
      }
    } else {
      spdlog::debug("task {} {}: back to the queue (worker {} {})", task->id, task->spec->name,
                    worker_pid, cause);
      task->state = State::kQueued;
      task->worker_pid = 0;
      cpu_queue_.Requeue(task->key());
    }
  }
  // After the requeueing above, so tasks of the kind that were behind the
  // crashed one on its worker end too.
  if (quarantined != nullptr) FailQueuedOfKind(*quarantined, quarantined_index);
  SchedulePump();
}

absl::Status Scheduler::CheckQuarantine(const KindSpec& spec, uint32_t cpu_index) const {
  const KindHealth& health = kind_health_[cpu_index];
  const Clock::time_point now = Clock::now();
  if (health.quarantined_until <= now) return absl::OkStatus();
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(health.quarantined_until - now);
  return absl::FailedPreconditionError(
      absl::StrCat("kind '", spec.name, "' is quarantined for ", left.count(), " more ms after ",
                   health.crashes_before_quarantine,
                   " consecutive worker crashes ([cpu] quarantine_after, quarantine_ms)"));
}

bool Scheduler::CountCrash(const KindSpec& spec, uint32_t cpu_index) {
  const uint32_t limit = config_.cpu.quarantine_after;
  KindHealth& health = kind_health_[cpu_index];
  ++health.consecutive_crashes;
  if (limit == 0 || health.consecutive_crashes < limit) return false;
  health.crashes_before_quarantine = health.consecutive_crashes;
  health.consecutive_crashes = 0;
  health.quarantined_until = Clock::now() + std::chrono::milliseconds(config_.cpu.quarantine_ms);
  ++health.quarantines;
  spdlog::warn(
      "kind '{}' quarantined for {} ms: its last {} tasks crashed their worker ([cpu] "
      "quarantine_after {})",
      spec.name, config_.cpu.quarantine_ms, health.crashes_before_quarantine, limit);
  return true;
}

void Scheduler::FailQueuedOfKind(const KindSpec& spec, uint32_t cpu_index) {
  std::vector<uint64_t> queued;
  for (const auto& [id, task] : live_) {
    if (task->spec == &spec && task->state == State::kQueued) queued.push_back(id);
  }
  if (queued.empty()) return;
  const std::string why = std::string(CheckQuarantine(spec, cpu_index).message());
  for (uint64_t id : queued) {
    Finish(live_.at(id).get(), absl::StatusCode::kFailedPrecondition, why, "");
  }
}

void Scheduler::OnIoTaskDone(uint64_t task_id, absl::Status status, std::string output) {
  SchedulePump();  // A thread is free whether or not the task still matters.
  auto it = live_.find(task_id);
  if (it == live_.end()) return;
  if (status.ok()) {
    Finish(it->second.get(), absl::StatusCode::kOk, "", std::move(output));
  } else if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    Finish(it->second.get(), status.code(), KernelTimedOut(*it->second, status.message()), "");
  } else {
    Finish(it->second.get(), status.code(), std::string(status.message()), "");
  }
}

// One short line per ended task, led by its id: a warning when crunchd or the
// machine was the cause (a crashed worker, a timeout, a drain), else debug
// (the caller's own doing) or trace (success).
void Scheduler::LogEnd(const Task& task, absl::StatusCode code, const TaskResult& result) {
  spdlog::level::level_enum level = spdlog::level::debug;
  switch (code) {
    case absl::StatusCode::kOk:
      level = spdlog::level::trace;
      break;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kInternal:
      level = spdlog::level::warn;
      break;
    default:
      break;
  }
  if (!spdlog::should_log(level)) return;
  if (code == absl::StatusCode::kOk) {
    spdlog::log(level, "task {} {}: OK in {} us ({} us queued)", task.id, task.spec->name,
                result.run_us, result.queue_us);
  } else {
    spdlog::log(level, "task {} {}: {}: {}", task.id, task.spec->name, CodeName(code),
                result.error);
  }
}

void Scheduler::Finish(Task* task, absl::StatusCode code, std::string error, std::string output) {
  const Clock::time_point now = Clock::now();
  TaskResult result;
  result.task_id = task->id;
  result.tag = task->request.tag;
  result.code = code;
  result.error = std::move(error);
  result.output = std::move(output);
  result.pool = task->spec->pool;
  result.worker_pid = task->spec->pool == Pool::kCpu ? task->worker_pid : 0;
  const bool ran = task->state == State::kRunning;
  if (!ran) {
    QueueOf(task->spec->pool).Remove(task->key());
    result.queue_us = Micros(now - task->accepted);
  } else {
    result.queue_us = Micros(task->dispatched - task->accepted);
    result.run_us = Micros(now - task->dispatched);
  }
  LogEnd(*task, code, result);
  metrics_.OnEnded(*task->spec, code, std::chrono::microseconds(result.queue_us), ran,
                   std::chrono::microseconds(result.run_us));
  deadlines_.erase({task->deadline, task->id});
  (task->spec->pool == Pool::kCpu ? cpu_latency_ : io_latency_).Add(Micros(now - task->accepted));
  if (code == absl::StatusCode::kOk) {
    ++completed_;
  } else {
    ++failed_;
    ++failed_by_code_[code];
    if (code == absl::StatusCode::kCancelled) ++cancelled_;
  }
  queued_bytes_ -= task->payload_bytes;
  auto node = live_.extract(task->id);
  std::unique_ptr<Task> owned = std::move(node.mapped());
  if (owned->done) owned->done(result);
  for (TaskDoneCallback& waiter : owned->waiters) waiter(result);
  if (owned->keep_result) {
    kept_order_.push_back(owned->id);
    kept_.emplace(owned->id, Kept{std::move(result),
                                  now + std::chrono::milliseconds(config_.server.result_ttl_ms)});
    while (kept_.size() > config_.server.max_kept_results && !kept_order_.empty()) {
      auto k = kept_.find(kept_order_.front());
      if (k != kept_.end()) kept_.erase(k);  // Its idempotency key goes in ExpireKept().
      kept_order_.pop_front();
    }
  }
  CheckDrained();
}

absl::Status Scheduler::Wait(uint64_t task_id, Clock::time_point deadline, TaskDoneCallback done) {
  if (auto k = kept_.find(task_id); k != kept_.end()) {
    done(k->second.result);
    return absl::OkStatus();
  }
  auto it = live_.find(task_id);
  if (it == live_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "no task ", task_id, ": unknown, never submitted with Submit, or its result expired (kept ",
        config_.server.result_ttl_ms, " ms, [server] result_ttl_ms)"));
  }
  // Whichever comes first, the result or the deadline, answers the waiter.
  struct WaitState {
    explicit WaitState(boost::asio::io_context& io) : timer(io) {}
    TaskDoneCallback done;
    boost::asio::steady_timer timer;
    bool answered = false;
  };
  auto state = std::make_shared<WaitState>(io_);
  state->done = std::move(done);
  state->timer.expires_at(deadline);
  state->timer.async_wait([state, task_id](boost::system::error_code ec) {
    if (ec || state->answered) return;
    state->answered = true;
    TaskResult r;
    r.task_id = task_id;
    r.code = absl::StatusCode::kDeadlineExceeded;
    r.error = "the wait ended at the call's deadline; the task is still running";
    state->done(r);
  });
  it->second->waiters.push_back([state](const TaskResult& r) {
    if (state->answered) return;
    state->answered = true;
    state->timer.cancel();
    state->done(r);
  });
  return absl::OkStatus();
}

absl::StatusOr<CancelOutcome> Scheduler::Cancel(uint64_t task_id) {
  if (kept_.contains(task_id)) return CancelOutcome{false, "done"};
  auto it = live_.find(task_id);
  if (it == live_.end()) {
    return absl::NotFoundError(absl::StrCat("no task ", task_id, " is running or kept"));
  }
  Task* task = it->second.get();
  CancelOutcome outcome{true, task->state == State::kQueued ? "queued" : "running"};
  if (task->state == State::kRunning) {
    if (task->spec->pool == Pool::kCpu) {
      cpu_->CancelTask(task_id);  // Skipped if not started; else stopped, or its worker killed.
    } else {
      task->cancelled->store(true);
    }
  }
  Finish(task, absl::StatusCode::kCancelled, "cancelled by request", "");
  return outcome;
}

void Scheduler::ArmDeadlineTimer() {
  if (deadlines_.empty()) return;
  const Clock::time_point earliest = deadlines_.begin()->first;
  if (earliest >= deadline_timer_at_) return;
  deadline_timer_at_ = earliest;
  deadline_timer_.expires_at(earliest);
  deadline_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) OnDeadlineTimer();
  });
}

std::chrono::milliseconds Scheduler::Timeout(const Task& task) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(task.deadline - task.accepted);
}

// A kernel that noticed its deadline before the daemon's timer did says so in
// the same words as the timer would, with its own detail after.
std::string Scheduler::KernelTimedOut(const Task& task, absl::string_view detail) {
  return absl::StrCat("the task ran past its timeout of ", Timeout(task).count(), " ms (", detail,
                      ")");
}

void Scheduler::OnDeadlineTimer() {
  deadline_timer_at_ = Clock::time_point::max();
  const Clock::time_point now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    Task* task = live_.at(deadlines_.begin()->second).get();
    const std::chrono::milliseconds timeout = Timeout(*task);
    std::string why;
    if (task->state == State::kQueued) {
      why = absl::StrCat("the task waited in the ", PoolName(task->spec->pool),
                         " queue past its timeout of ", timeout.count(), " ms");
    } else {
      why = absl::StrCat("the task ran past its timeout of ", timeout.count(), " ms");
      if (task->spec->pool == Pool::kCpu) {
        if (cpu_->IsRunning(task->id)) {
          cpu_->KillWorkerHolding(task->id);
          absl::StrAppend(&why, "; its worker process ", task->worker_pid, " was killed");
        }
      } else {
        task->cancelled->store(true);
      }
    }
    Finish(task, absl::StatusCode::kDeadlineExceeded, std::move(why), "");
  }
  ArmDeadlineTimer();
}

void Scheduler::ExpireKept() {
  const Clock::time_point now = Clock::now();
  while (!kept_order_.empty()) {
    auto k = kept_.find(kept_order_.front());
    if (k != kept_.end()) {
      if (k->second.expires > now) break;
      kept_.erase(k);
    }
    kept_order_.pop_front();
  }
  for (auto it = idempotency_.begin(); it != idempotency_.end();) {
    if (!live_.contains(it->second) && !kept_.contains(it->second)) {
      idempotency_.erase(it++);
    } else {
      ++it;
    }
  }
  housekeeping_timer_.expires_after(std::chrono::seconds(1));
  housekeeping_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) ExpireKept();
  });
}

void Scheduler::Drain(std::chrono::milliseconds grace, absl::AnyInvocable<void()> drained) {
  if (draining_) {  // Asked again: the grace period ends now.
    drain_timer_.cancel();
    OnDrainGraceOver();
    return;
  }
  draining_ = true;
  drained_ = std::move(drained);
  drain_grace_ = grace;
  spdlog::info("draining: {} task(s) in flight, grace period {} ms", live_.size(), grace.count());
  drain_timer_.expires_after(grace);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) OnDrainGraceOver();
  });
  CheckDrained();
}

void Scheduler::OnDrainGraceOver() {
  std::vector<uint64_t> left;
  for (const auto& [id, task] : live_) left.push_back(id);
  if (!left.empty()) {
    spdlog::warn("drain grace period over: failing {} unfinished task(s)", left.size());
  }
  for (uint64_t id : left) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    Task* task = it->second.get();
    if (task->state == State::kRunning && task->cancelled) task->cancelled->store(true);
    Finish(task, absl::StatusCode::kUnavailable,
           absl::StrCat("crunchd shut down before the task finished (grace period ",
                        drain_grace_.count(), " ms, [server] drain_grace_ms)"),
           "");
  }
  CheckDrained();
}

void Scheduler::CheckDrained() {
  if (!draining_ || !live_.empty() || !drained_) return;
  drain_timer_.cancel();
  deadline_timer_.cancel();
  housekeeping_timer_.cancel();
  cpu_->Stop();
  io_pool_->Stop();
  auto drained = std::move(drained_);
  drained_ = nullptr;
  drained();
}

void Scheduler::ReloadKinds(const Config& config) {
  if (probing_) {
    spdlog::info(
        "SIGHUP: the [plugins] of the previous reload are still being read; "
        "this reload's are read next");
    reprobe_ = config;
    return;
  }
  if (config.plugins.paths == config_.plugins.paths &&
      PluginFilesFingerprint(config.plugins.paths) == plugin_fingerprint_) {
    return;  // Nothing to do.
  }
  probing_ = true;
  if (probe_thread_.joinable()) probe_thread_.join();  // The last probe's, which has ended.
  // The probe's worker gets the parent-death signal when the thread that
  // started it ends, so the thread lives until the probe returns.
  probe_thread_ = std::thread([this, alive = std::weak_ptr<bool>(alive_), config] {
    absl::StatusOr<std::shared_ptr<const PluginFiles>> files =
        PluginFiles::Open(config.plugins.paths);
    absl::StatusOr<CpuKindCatalog> catalog =
        files.ok() ? ProbeCpuKinds(config.cpu.worker_path, **files,
                                   std::chrono::milliseconds(config.plugins.init_timeout_ms))
                   : absl::StatusOr<CpuKindCatalog>(files.status());
    boost::asio::post(io_, [this, alive, config, files = std::move(files),
                            catalog = std::move(catalog)]() mutable {
      if (alive.expired()) return;
      probing_ = false;
      ApplyKinds(config, std::move(files), std::move(catalog));
      if (reprobe_) {
        const Config next = *std::move(reprobe_);
        reprobe_.reset();
        ReloadKinds(next);
      }
    });
  });
}

void Scheduler::ApplyKinds(const Config& config,
                           absl::StatusOr<std::shared_ptr<const PluginFiles>> files,
                           absl::StatusOr<CpuKindCatalog> catalog) {
  if (draining_) {
    spdlog::info("SIGHUP: draining; the new [plugins] kinds are not applied");
    return;
  }
  absl::StatusOr<KindRegistry> registry =
      catalog.ok() ? KindRegistry::Create(catalog->kinds, IoKinds(io_settings_))
                   : absl::StatusOr<KindRegistry>(catalog.status());
  if (!registry.ok()) {
    spdlog::error("SIGHUP: keeping the running kinds and workers: {}", registry.status().message());
    return;
  }
  auto next = std::make_shared<const KindRegistry>(*std::move(registry));

  // Quarantines and crash counts follow their kind by name.
  std::vector<KindHealth> health;
  std::vector<std::string> names;
  for (const KindSpec& k : next->kinds()) {
    if (k.pool != Pool::kCpu) continue;
    names.push_back(k.name);
    absl::StatusOr<KindRegistry::Entry> old = kinds_->Find(k.name);
    health.push_back(old.ok() && old->spec->pool == Pool::kCpu ? kind_health_[old->cpu_index]
                                                               : KindHealth{});
  }
  // Live tasks move to the new kinds by name; queued ones are validated again.
  std::vector<std::pair<uint64_t, absl::Status>> to_fail;
  for (auto& [id, task] : live_) {
    absl::StatusOr<KindRegistry::Entry> entry = next->Find(task->spec->name);
    if (!entry.ok() || entry->spec->pool != task->spec->pool) {
      if (task->state == State::kQueued) {
        to_fail.emplace_back(id, absl::FailedPreconditionError(absl::StrCat(
                                     "kind '", task->spec->name,
                                     "' was removed by a reload ([plugins] paths) before this "
                                     "task started")));
      }
      continue;  // A running one ends on its worker, under its old kind.
    }
    if (task->state == State::kQueued) {
      absl::StatusOr<TaskParams> params = ValidateParams(*entry->spec, task->request.params);
      if (!params.ok()) {
        to_fail.emplace_back(
            id, absl::InvalidArgumentError(absl::StrCat(
                    "kind '", task->spec->name, "' changed in a reload before this task started: ",
                    params.status().message())));
        continue;
      }
      task->params = *std::move(params);
    }
    task->spec = entry->spec;
    task->cpu_index = entry->cpu_index;
    task->kinds = next;
  }
  const size_t before = kinds_->kinds().size();
  kinds_ = next;
  kind_health_ = std::move(health);
  plugin_fingerprint_ = (*files)->Fingerprint();
  for (auto& [id, status] : to_fail) {
    Finish(live_.at(id).get(), status.code(), std::string(status.message()), "");
  }
  spdlog::info("SIGHUP: {} kinds now ({} before), {} CPU kinds from {} plugin file(s)",
               kinds_->kinds().size(), before, names.size(), config.plugins.paths.size());
  cpu_->ReloadKinds(*std::move(files), catalog->digest, std::move(names));
  config_.plugins = config.plugins;
  SchedulePump();
}

void Scheduler::Reload(const Config& config) {
  Config applied = config;
  applied.plugins = config_.plugins;  // ApplyKinds changes them, once the probe succeeded.
  ReloadKinds(config);
  cpu_queue_.set_capacity(config.cpu.queue_capacity);
  io_queue_.set_capacity(config.io.queue_capacity);
  io_pool_->set_max_output_bytes(config.limits.max_output_bytes);
  cpu_->SetRecycling(config.cpu.max_tasks_per_worker, config.cpu.max_worker_rss_bytes);
  cpu_->SetAttachTimeout(std::chrono::milliseconds(config.plugins.init_timeout_ms));
  if (config.cpu.quarantine_after == 0) {  // Quarantine turned off: lift any that runs.
    for (KindHealth& health : kind_health_) health.quarantined_until = Clock::time_point();
  }
  auto restart_needed = [](const char* key, bool changed) {
    if (changed) spdlog::warn("config: a change to {} takes effect on restart", key);
  };
  restart_needed("[cpu] workers", config.cpu.workers != config_.cpu.workers);
  restart_needed("[cpu] in_flight_per_worker",
                 config.cpu.in_flight_per_worker != config_.cpu.in_flight_per_worker);
  restart_needed("[cpu] arena_bytes", config.cpu.arena_bytes != config_.cpu.arena_bytes);
  restart_needed("[cpu] spin_ns", config.cpu.spin_ns != config_.cpu.spin_ns);
  restart_needed("[cpu] worker_* and seccomp",
                 config.cpu.worker_address_space_bytes != config_.cpu.worker_address_space_bytes ||
                     config.cpu.worker_cpu_seconds != config_.cpu.worker_cpu_seconds ||
                     config.cpu.worker_nice != config_.cpu.worker_nice ||
                     config.cpu.worker_open_files != config_.cpu.worker_open_files ||
                     config.cpu.seccomp != config_.cpu.seccomp);
  restart_needed("[io] threads", config.io.threads != config_.io.threads);
  restart_needed("[io] data_dir", config.io.data_dir != config_.io.data_dir);
  restart_needed("[io] http_allow", config.io.http_allow != config_.io.http_allow);
  restart_needed("[io] http_max_redirects",
                 config.io.http_max_redirects != config_.io.http_max_redirects);
  restart_needed("[io] http_connect_timeout_ms",
                 config.io.http_connect_timeout_ms != config_.io.http_connect_timeout_ms);
  restart_needed("[server] listen", config.server.listen != config_.server.listen);
  const ServerConfig& now = config_.server;
  const ServerConfig& next = config.server;
  restart_needed("[server] allow_uids / allow_gids",
                 next.allow_uids != now.allow_uids || next.allow_gids != now.allow_gids);
  restart_needed("[server] tls_cert_file / tls_key_file / tls_client_ca_file",
                 next.tls_cert_file != now.tls_cert_file || next.tls_key_file != now.tls_key_file ||
                     next.tls_client_ca_file != now.tls_client_ca_file);
  restart_needed("[server] token_file", next.token_file != now.token_file);
  restart_needed("[metrics] listen", config.metrics.listen != config_.metrics.listen);
  config_ = std::move(applied);
  request_limits_.Store(ToRequestLimits(config_.limits));
}

SchedulerSnapshot Scheduler::Snapshot() const {
  SchedulerSnapshot s;
  s.workers = cpu_->Snapshot();
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < kind_health_.size(); ++i) {
    const KindHealth& health = kind_health_[i];
    KindHealthSnapshot k;
    k.kind = kinds_->kinds()[i].name;
    k.consecutive_crashes = health.consecutive_crashes;
    if (health.quarantined_until > now) {
      k.quarantined_ms_left = static_cast<uint64_t>(
          std::chrono::ceil<std::chrono::milliseconds>(health.quarantined_until - now).count());
    }
    k.quarantines = health.quarantines;
    s.cpu_kinds.push_back(std::move(k));
  }
  PoolSnapshot cpu{"cpu",
                   cpu_->size(),
                   cpu_->busy(),
                   static_cast<uint32_t>(cpu_queue_.size()),
                   static_cast<uint32_t>(cpu_queue_.capacity()),
                   cpu_latency_.Summary()};
  PoolSnapshot io{"io",
                  io_pool_->size(),
                  io_pool_->busy(),
                  static_cast<uint32_t>(io_queue_.size()),
                  static_cast<uint32_t>(io_queue_.capacity()),
                  io_latency_.Summary()};
  for (const auto& [id, task] : live_) {
    if (task->state == State::kRunning) ++(task->spec->pool == Pool::kCpu ? cpu : io).in_flight;
  }
  s.pools = {std::move(cpu), std::move(io)};
  s.accepted = accepted_;
  s.completed = completed_;
  s.failed = failed_;
  s.rejected = rejected_;
  s.cancelled = cancelled_;
  for (const auto& [code, n] : failed_by_code_) s.failed_by_code[CodeName(code)] = n;
  s.arena_bytes_in_use = cpu_->arena_bytes_in_use();
  s.draining = draining_;
  return s;
}

}  // namespace crunch::daemon
