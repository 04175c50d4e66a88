#include "daemon/cpu_pool.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "boost/asio/post.hpp"
#include "daemon/log_format.h"
#include "ipc/spawn_worker.h"

namespace crunch::daemon {
namespace {

constexpr std::chrono::milliseconds kMaxBackoff{5000};
// How long a cancelled task's kernel has to notice the request (through
// crunch_task_should_stop) before its worker is killed. The built-in kernels
// poll every millisecond or so.
constexpr std::chrono::milliseconds kCancelGrace{100};
// While a cancelled task waits behind another, how often to look again.
constexpr std::chrono::milliseconds kCancelRecheck{20};
// A worker that lived this long before dying starts its slot's backoff afresh.
constexpr std::chrono::seconds kHealthyLifetime{10};
// How often a working worker's RSS is read for max_worker_rss_bytes, and its
// CPU time for limits.cpu_seconds; for the latter at least 8 times per budget,
// so that a check comes before the worker is far past half of it.
constexpr std::chrono::milliseconds kRssCheckInterval{1000};

std::chrono::milliseconds CheckInterval(const CpuPoolOptions& options) {
  if (options.limits.cpu_seconds == 0) return kRssCheckInterval;
  return std::min(kRssCheckInterval,
                  std::chrono::milliseconds(options.limits.cpu_seconds * 1000 / 8));
}

uint32_t NextPowerOfTwo(uint32_t n) {
  uint32_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

uint64_t ReadRss(uint32_t pid) {
  if (pid == 0) return 0;
  std::ifstream statm(absl::StrCat("/proc/", pid, "/statm"));
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

// User plus system CPU time of `pid`, from /proc/<pid>/stat (fields 14 and 15).
double ReadCpuSeconds(uint32_t pid) {
  if (pid == 0) return 0;
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // The command name, in parentheses, may hold spaces; field 3 follows it.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string skip;
  for (int field = 3; field < 14; ++field) fields >> skip;
  uint64_t utime = 0, stime = 0;
  if (!(fields >> utime >> stime)) return 0;
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuPool>> CpuPool::Create(boost::asio::io_context& io,
                                                         const CpuPoolOptions& options,
                                                         Listener* listener) {
  if (::access(options.worker_path.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker executable '", options.worker_path,
                     "' is missing or not executable (set [cpu] worker_path)"));
  }
  if (options.limits.open_files != 0) {
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_max != RLIM_INFINITY && options.limits.open_files > nofile.rlim_max) {
      return absl::FailedPreconditionError(absl::StrCat(
          "[cpu] worker_open_files is ", options.limits.open_files,
          " but crunchd's own hard limit on open files is ", nofile.rlim_max,
          "; a worker cannot raise it (lower the key, or raise LimitNOFILE= / ulimit -Hn)"));
    }
  }
  ipc::SegmentOptions segment_options;
  segment_options.worker_slots = options.workers + 1;  // One spare, for reloads.
  segment_options.ring_capacity =
      std::max<uint32_t>(ipc::kMinRingCapacity, NextPowerOfTwo(options.in_flight_per_worker));
  segment_options.arena_bytes = options.arena_bytes;
  absl::StatusOr<ipc::Segment> segment = ipc::Segment::Create(segment_options);
  if (!segment.ok()) return segment.status();
  std::unique_ptr<CpuPool> pool(new CpuPool(io, options, listener, *std::move(segment)));
  for (uint32_t slot = 0; slot < options.workers + 1; ++slot) {
    auto w = std::make_unique<Worker>(io);
    w->slot = slot;
    if (slot == options.workers) w->state = State::kParked;
    absl::StatusOr<ipc::DaemonChannel> channel =
        ipc::DaemonChannel::Create(&pool->segment_, slot, &pool->arena_);
    if (!channel.ok()) return channel.status();
    w->channel.emplace(*std::move(channel));
    int fd = ::fcntl(w->channel->wakeup_fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return absl::InternalError(absl::StrCat("dup(eventfd): ", std::strerror(errno)));
    w->wake.assign(fd);
    pool->workers_.push_back(std::move(w));
  }
  return pool;
}

CpuPool::CpuPool(boost::asio::io_context& io, const CpuPoolOptions& options, Listener* listener,
                 ipc::Segment segment)
    : io_(io),
      options_(options),
      listener_(listener),
      segment_(std::move(segment)),
      arena_(segment_.layout().arena_bytes) {
  Generation& g = generations_[generation_];
  g.names = options_.kind_names;
  for (uint32_t i = 0; i < g.names.size(); ++i) g.from_newest.push_back(i);
}

CpuPool::~CpuPool() { Stop(); }

absl::Status CpuPool::Start(absl::AnyInvocable<void()> on_ready) {
  on_ready_ = std::move(on_ready);
  for (auto& w : workers_) {
    if (w->state == State::kParked) continue;
    if (absl::Status s = Spawn(*w); !s.ok()) return s;
    ArmWake(*w);
  }
  return absl::OkStatus();
}

absl::Status CpuPool::Spawn(Worker& w) {
  ipc::SpawnOptions spawn;
  spawn.path = options_.worker_path;
  spawn.args = {absl::StrCat("--spin-ns=", options_.spin_ns)};
  for (std::string& flag : WorkerLimitsFlags(options_.limits))
    spawn.args.push_back(std::move(flag));
  if (options_.plugin_files != nullptr) options_.plugin_files->AddTo(&spawn);
  if (!options_.kinds_digest.empty()) {
    spawn.args.push_back(absl::StrCat("--kinds-digest=", options_.kinds_digest));
  }
  absl::StatusOr<ipc::ChildProcess> child = ipc::SpawnWorker(*w.channel, std::move(spawn));
  if (!child.ok()) return child.status();
  w.child.emplace(*std::move(child));
  w.pid = static_cast<uint32_t>(w.child->pid());
  w.state = State::kStarting;
  w.started = std::chrono::steady_clock::now();
  w.rss_checked = w.started;
  w.tasks_this_life = 0;
  w.retiring = false;
  w.park_on_exit = false;
  w.generation = generation_;
  int fd = ::fcntl(w.child->exit_fd(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("dup(exit fd): ", std::strerror(errno)));
  w.exit_watch.assign(fd);
  w.exit_watch.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                          [this, &w](boost::system::error_code ec) {
                            if (!ec) OnExit(w);
                          });
  w.timer.expires_after(options_.attach_timeout);
  w.timer.async_wait([this, &w](boost::system::error_code ec) {
    if (ec || w.state != State::kStarting || !w.child) return;
    spdlog::error(
        "worker {} (slot {}) did not load its kinds and attach within {} ms "
        "([plugins] init_timeout_ms); killing it",
        w.pid, w.slot, options_.attach_timeout.count());
    (void)w.child->Signal(SIGKILL);
  });
  spdlog::debug("worker {} started on slot {}", w.pid, w.slot);
  return absl::OkStatus();
}

void CpuPool::ArmWake(Worker& w) {
  if (stopped_) return;
  if (w.channel->PrepareToSleep()) {
    w.wake.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                      [this, &w](boost::system::error_code ec) {
                        if (ec || stopped_) return;
                        w.channel->Woken();
                        OnWake(w);
                      });
  } else {
    boost::asio::post(io_, [this, &w] {
      if (!stopped_) OnWake(w);
    });
  }
}

void CpuPool::OnWake(Worker& w) {
  bool capacity = false;
  if (w.state == State::kStarting && w.child && w.channel->worker_attached()) {
    w.state = State::kReady;
    w.timer.cancel();
    capacity = true;
    CheckAllReady();
    if (w.surge) {
      w.surge = false;
      RetireOneStale();
    }
  }
  const size_t before = w.in_flight.size();
  if (w.state == State::kReady) DrainCompletions(w);
  capacity = capacity || w.in_flight.size() < before;
  MaybeRecycle(w);
  ArmWake(w);
  if (capacity) listener_->OnCpuCapacity();
}

void CpuPool::DrainCompletions(Worker& w) {
  const auto now = std::chrono::steady_clock::now();
  absl::StatusOr<size_t> n = w.channel->DrainCompletions([&](const ipc::Completion& c) {
    auto it = std::find_if(w.in_flight.begin(), w.in_flight.end(),
                           [&](const HeldTask& t) { return t.id == c.task_id; });
    if (it != w.in_flight.end()) {
      // The task started when it was dispatched or when the one before it
      // ended, whichever is later.
      const auto began = std::max(it->dispatched, w.last_completion);
      const int64_t took =
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - began).count();
      w.service_ns = w.service_ns < 0 ? took : w.service_ns + (took - w.service_ns) / 8;
      w.last_completion = now;
      w.in_flight.erase(it);
    }
    slot_of_task_.erase(c.task_id);
    ++w.tasks_done;
    ++w.tasks_this_life;
    w.consecutive_failures = 0;
    // Kernels report a gRPC code (0..16); anything else is a buggy worker's and
    // must not reach a client as a code outside the protocol.
    const absl::StatusCode code =
        c.status <= 16 ? static_cast<absl::StatusCode>(c.status) : absl::StatusCode::kInternal;
    listener_->OnCpuTaskDone(c.task_id, code, c.output, w.pid);
  });
  if (!n.ok() && w.child) {
    spdlog::error("worker {} (slot {}) broke the protocol: {}; killing it", w.pid, w.slot,
                  n.status().message());
    (void)w.child->Signal(SIGKILL);
  }
}

void CpuPool::MaybeRecycle(Worker& w) {
  if (w.state != State::kReady || !w.child) return;
  if (!w.retiring) {
    std::string why;
    const auto now = std::chrono::steady_clock::now();
    if (options_.max_tasks_per_worker != 0 && w.tasks_this_life >= options_.max_tasks_per_worker) {
      why = absl::StrCat("completed ", w.tasks_this_life, " tasks ([cpu] max_tasks_per_worker ",
                         options_.max_tasks_per_worker, ")");
    } else if ((options_.max_worker_rss_bytes != 0 || options_.limits.cpu_seconds != 0) &&
               now - w.rss_checked >= CheckInterval(options_)) {
      w.rss_checked = now;
      const uint64_t rss = options_.max_worker_rss_bytes != 0 ? ReadRss(w.pid) : 0;
      const double cpu = options_.limits.cpu_seconds != 0 ? ReadCpuSeconds(w.pid) : 0;
      if (rss > options_.max_worker_rss_bytes && options_.max_worker_rss_bytes != 0) {
        why = absl::StrCat("uses ", rss, " bytes of memory ([cpu] max_worker_rss_bytes ",
                           options_.max_worker_rss_bytes, ")");
      } else if (options_.limits.cpu_seconds != 0 &&
                 cpu >= static_cast<double>(options_.limits.cpu_seconds) / 2) {
        why = absl::StrCat("used ", cpu, " s of CPU, half its [cpu] worker_cpu_seconds ",
                           options_.limits.cpu_seconds);
      }
    }
    if (why.empty()) return;
    w.retiring = true;
    spdlog::info("worker {} (slot {}) {}: replacing it once its tasks are done", w.pid, w.slot,
                 why);
  }
  if (!w.in_flight.empty() || w.recycled) return;
  w.recycled = true;
  (void)w.child->Signal(SIGKILL);  // It holds no task.
}

void CpuPool::SetRecycling(uint64_t max_tasks_per_worker, uint64_t max_worker_rss_bytes) {
  options_.max_tasks_per_worker = max_tasks_per_worker;
  options_.max_worker_rss_bytes = max_worker_rss_bytes;
}

void CpuPool::OnExit(Worker& w) {
  if (stopped_ || !w.child) return;
  absl::StatusOr<std::optional<int>> status = w.child->TryWait();
  if (status.ok() && !status->has_value()) {  // Spurious: still running.
    w.exit_watch.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                            [this, &w](boost::system::error_code ec) {
                              if (!ec) OnExit(w);
                            });
    return;
  }
  const std::string cause =
      status.ok() ? ipc::DescribeWaitStatus(**status) : std::string(status.status().message());
  const uint32_t pid = w.pid;
  // What it finished before dying still counts.
  if (w.state == State::kReady) DrainCompletions(w);
  std::vector<uint64_t> held = w.channel->Reset();
  for (uint64_t id : held) slot_of_task_.erase(id);
  w.in_flight.clear();
  w.service_ns = -1;
  w.exit_watch.close();
  w.child.reset();
  w.timer.cancel();
  const bool was_starting = w.state == State::kStarting;
  const bool killed_by_daemon = w.killed_by_daemon || w.recycled;
  const bool recycled = w.recycled && held.empty();
  const bool park = w.park_on_exit;
  w.killed_by_daemon = false;
  w.recycled = false;
  w.park_on_exit = false;
  w.state = park ? State::kParked : State::kRestarting;
  w.pid = 0;
  if (recycled) {
    ++w.recycles;
    spdlog::debug("worker {} (slot {}) recycled", pid, w.slot);
  } else {
    ++w.restarts;
    if (std::chrono::steady_clock::now() - w.started >= kHealthyLifetime) {
      w.consecutive_failures = 0;
    }
    ++w.consecutive_failures;
    spdlog::warn("worker {} (slot {}) {}{}; {} task(s) were on it", pid, w.slot, cause,
                 was_starting ? " before attaching" : "", held.size());
  }
  listener_->OnCpuWorkerLost(pid, cause, std::move(held), killed_by_daemon);
  if (park) {
    spdlog::info("worker {} (slot {}) retired by the reload; slot {} is the spare now", pid, w.slot,
                 w.slot);
    RollOn();
    return;
  }
  ScheduleRespawn(w);
}

void CpuPool::ReloadKinds(std::shared_ptr<const PluginFiles> plugin_files, std::string kinds_digest,
                          std::vector<std::string> kind_names) {
  options_.plugin_files = std::move(plugin_files);
  options_.kinds_digest = std::move(kinds_digest);
  options_.kind_names = std::move(kind_names);
  ++generation_;
  // Keep the generations some worker still has, translated to the newest numbers.
  // (No reference into `kept` is held across an insertion: one that rehashes
  // moves its elements. ASan caught the newest generation's being read that
  // way after the map grew.)
  const std::vector<std::string>& newest = options_.kind_names;
  absl::flat_hash_map<uint32_t, Generation> kept;
  kept[generation_].names = newest;
  for (const auto& w : workers_) {
    if (w->state == State::kParked || kept.contains(w->generation)) continue;
    auto it = generations_.find(w->generation);
    if (it != generations_.end()) kept[w->generation].names = std::move(it->second.names);
  }
  for (auto& [number, g] : kept) {
    g.from_newest.assign(newest.size(), kNoKind);
    for (uint32_t i = 0; i < newest.size(); ++i) {
      for (uint32_t j = 0; j < g.names.size(); ++j) {
        if (g.names[j] == newest[i]) g.from_newest[i] = j;
      }
    }
  }
  generations_ = std::move(kept);
  spdlog::info("reload: replacing the {} worker(s) one at a time for the new kinds",
               options_.workers);
  RollOn();
}

bool CpuPool::reloading() const {
  for (const auto& w : workers_) {
    if (IsStale(*w) || w->surge) return true;
  }
  return false;
}

void CpuPool::RollOn() {
  if (stopped_) return;
  Worker* spare = nullptr;
  bool stale = false;
  for (auto& w : workers_) {
    if (w->surge || w->park_on_exit) return;  // A step is under way.
    if (w->state == State::kParked) spare = w.get();
    stale = stale || IsStale(*w);
  }
  if (!stale) {
    if (generations_.size() > 1) {
      spdlog::info("reload: every worker serves the new kinds");
      Generation newest = std::move(generations_[generation_]);
      generations_.clear();
      generations_[generation_] = std::move(newest);
    }
    return;
  }
  if (spare == nullptr) return;
  spare->surge = true;
  if (absl::Status s = Spawn(*spare); !s.ok()) {
    spdlog::error("reload: cannot start a worker on slot {}: {}; retrying", spare->slot,
                  s.message());
    spare->state = State::kRestarting;
    ++spare->consecutive_failures;
    ScheduleRespawn(*spare);
    return;
  }
  ArmWake(*spare);
}

void CpuPool::RetireOneStale() {
  // Prefer a worker that holds nothing: it goes at once.
  Worker* pick = nullptr;
  for (auto& w : workers_) {
    if (!IsStale(*w) || w->park_on_exit) continue;
    if (pick == nullptr || w->in_flight.size() < pick->in_flight.size()) pick = w.get();
  }
  if (pick == nullptr) {
    RollOn();
    return;
  }
  pick->retiring = true;
  pick->park_on_exit = true;
  if (pick->state == State::kReady) {
    MaybeRecycle(*pick);  // Kills it if it holds nothing.
  } else if (pick->child) {
    (void)pick->child->Signal(SIGKILL);  // Starting: it holds nothing.
    pick->recycled = true;
  } else {
    // Waiting to be respawned after a crash: park it now.
    pick->timer.cancel();
    pick->state = State::kParked;
    pick->park_on_exit = false;
    RollOn();
  }
}

void CpuPool::ScheduleRespawn(Worker& w) {
  std::chrono::milliseconds delay{0};
  if (w.consecutive_failures > 1) {
    delay = std::min<std::chrono::milliseconds>(
        kMaxBackoff, std::chrono::milliseconds(50 << std::min(w.consecutive_failures - 2, 10u)));
  }
  w.timer.expires_after(delay);
  w.timer.async_wait([this, &w](boost::system::error_code ec) {
    if (ec || stopped_ || w.state != State::kRestarting) return;
    if (absl::Status s = Spawn(w); !s.ok()) {
      spdlog::error("cannot restart worker on slot {}: {}", w.slot, s.message());
      ++w.consecutive_failures;
      ScheduleRespawn(w);
    }
  });
}

void CpuPool::CheckAllReady() {
  if (!on_ready_) return;
  for (const auto& w : workers_) {
    if (w->state != State::kReady && w->state != State::kParked) return;
  }
  auto ready = std::move(on_ready_);
  on_ready_ = nullptr;
  ready();
}

CpuPool::DispatchResult CpuPool::Dispatch(uint64_t task_id, uint32_t kind_index,
                                          std::span<const std::span<const std::byte>> input_parts,
                                          uint64_t output_capacity, uint64_t deadline_ns,
                                          uint32_t* worker_pid) {
  // The least loaded worker; among equals, the next after the last one used,
  // so tasks arriving one at a time still spread over the pool.
  Worker* best = nullptr;
  uint32_t best_kind = kNoKind;
  const size_t n = workers_.size();
  for (size_t i = 0; i < n; ++i) {
    Worker* w = workers_[(next_worker_ + i) % n].get();
    if (w->state != State::kReady || w->retiring || w->in_flight.size() >= DepthFor(*w)) continue;
    // The kind's number for this worker: the same unless a reload is rolling.
    uint32_t kind = kind_index;
    if (w->generation != generation_) {
      auto g = generations_.find(w->generation);
      kind = g == generations_.end() || kind_index >= g->second.from_newest.size()
                 ? kNoKind
                 : g->second.from_newest[kind_index];
      if (kind == kNoKind) continue;
    }
    if (best == nullptr || w->in_flight.size() < best->in_flight.size()) {
      best = w;
      best_kind = kind;
    }
    if (best->in_flight.empty()) break;
  }
  if (best == nullptr) return DispatchResult::kNoWorker;
  switch (best->channel->SubmitGather(task_id, best_kind, input_parts, output_capacity, deadline_ns,
                                      /*ring=*/false)) {
    case ipc::SubmitResult::kOk:
      break;
    case ipc::SubmitResult::kArenaFull:
      return DispatchResult::kArenaFull;
    case ipc::SubmitResult::kSlotBusy:
      return DispatchResult::kNoWorker;
    case ipc::SubmitResult::kCorrupt:
      spdlog::error("worker {} (slot {}) corrupted its request ring; killing it", best->pid,
                    best->slot);
      if (best->child) (void)best->child->Signal(SIGKILL);
      return DispatchResult::kNoWorker;
  }
  next_worker_ = (best->slot + 1) % n;
  best->in_flight.push_back({task_id, best_kind, std::chrono::steady_clock::now()});
  best->needs_ring = true;
  slot_of_task_[task_id] = best->slot;
  *worker_pid = best->pid;
  return DispatchResult::kOk;
}

void CpuPool::Flush() {
  for (auto& w : workers_) {
    if (!w->needs_ring) continue;
    w->needs_ring = false;
    w->channel->RingWorker();
  }
}

bool CpuPool::HasCapacity() const {
  for (const auto& w : workers_) {
    if (w->state == State::kReady && !w->retiring && w->in_flight.size() < DepthFor(*w)) {
      return true;
    }
  }
  return false;
}

uint32_t CpuPool::DepthFor(const Worker& w) const {
  constexpr int64_t kShortNs = 200'000;
  constexpr int64_t kLongNs = 5'000'000;
  uint32_t depth = 2;  // Until there is an estimate.
  if (w.service_ns >= 0 && w.service_ns <= kShortNs) depth = options_.in_flight_per_worker;
  if (w.service_ns > kLongNs) depth = 1;
  return std::min(depth, options_.in_flight_per_worker);
}

bool CpuPool::IsRunning(uint64_t task_id) const {
  auto it = slot_of_task_.find(task_id);
  if (it == slot_of_task_.end()) return false;
  const Worker& w = *workers_[it->second];
  return !w.in_flight.empty() && w.in_flight.front().id == task_id;
}

void CpuPool::KillWorkerHolding(uint64_t task_id) {
  auto it = slot_of_task_.find(task_id);
  if (it == slot_of_task_.end()) return;
  Worker& w = *workers_[it->second];
  if (!w.child) return;
  w.killed_by_daemon = true;
  (void)w.child->Signal(SIGKILL);
}

void CpuPool::CancelTask(uint64_t task_id) {
  auto it = slot_of_task_.find(task_id);
  if (it == slot_of_task_.end()) return;
  Worker& w = *workers_[it->second];
  if (!w.child || !w.channel) return;
  for (HeldTask& t : w.in_flight) {
    if (t.id == task_id) t.kill_if_running_at = std::chrono::steady_clock::now() + kCancelGrace;
  }
  w.channel->RequestCancel(task_id);
  CheckCancels(w);
}

void CpuPool::CheckCancels(Worker& w) {
  if (w.in_flight.empty() || !w.child || w.killed_by_daemon) return;
  const auto now = std::chrono::steady_clock::now();
  if (w.in_flight.front().kill_if_running_at <= now) {
    w.killed_by_daemon = true;
    (void)w.child->Signal(SIGKILL);
    return;
  }
  // A cancelled task further back is normally skipped when the worker gets to
  // it; if a later request replaced its cancel word, it runs, and is killed at
  // the first check after it started.
  auto next = std::chrono::steady_clock::time_point::max();
  for (const HeldTask& t : w.in_flight) next = std::min(next, t.kill_if_running_at);
  if (next == std::chrono::steady_clock::time_point::max()) return;
  w.cancel_timer.expires_at(std::max(next, now + kCancelRecheck));
  w.cancel_timer.async_wait([this, &w](boost::system::error_code ec) {
    if (!ec) CheckCancels(w);
  });
}

bool CpuPool::KillWorkerPid(uint32_t pid) {
  for (auto& w : workers_) {
    if (w->child && w->pid == pid) {
      w->killed_by_daemon = true;
      (void)w->child->Signal(SIGKILL);
      return true;
    }
  }
  return false;
}

void CpuPool::Stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& w : workers_) {
    w->timer.cancel();
    w->cancel_timer.cancel();
    w->wake.close();
    w->exit_watch.close();
    if (w->child) {
      (void)w->child->Signal(SIGKILL);
      (void)w->child->Wait();
      w->child.reset();
    }
    w->state = State::kStopped;
  }
}

uint32_t CpuPool::busy() const {
  uint32_t n = 0;
  for (const auto& w : workers_) n += !w->in_flight.empty();
  return n;
}

std::vector<WorkerSnapshot> CpuPool::Snapshot() const {
  std::vector<WorkerSnapshot> out;
  for (const auto& w : workers_) {
    if (w->state == State::kParked) continue;
    WorkerSnapshot s;
    s.slot = w->slot;
    s.pid = w->pid;
    switch (w->state) {
      case State::kStarting:
        s.state = "starting";
        break;
      case State::kReady:
        s.state = w->in_flight.empty() ? "idle" : "busy";
        break;
      case State::kRestarting:
        s.state = "restarting";
        break;
      case State::kStopped:
      case State::kParked:
        s.state = "stopped";
        break;
    }
    s.tasks_done = w->tasks_done;
    s.restarts = w->restarts;
    s.recycles = w->recycles;
    if (!w->in_flight.empty()) {
      auto g = generations_.find(w->generation);
      const uint32_t kind = w->in_flight.front().kind;
      if (g != generations_.end() && kind < g->second.names.size()) {
        s.current_kind = g->second.names[kind];
      }
    }
    s.rss_bytes = ReadRss(w->pid);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace crunch::daemon
