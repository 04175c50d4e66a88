#include "daemon/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crunch/version.h"
#include "daemon/scheduler.h"

namespace crunch::daemon {

void LatencyHistogram::Observe(std::chrono::microseconds elapsed) {
  const auto us = static_cast<uint64_t>(std::max<int64_t>(0, elapsed.count()));
  const double seconds = static_cast<double>(us) / 1e6;
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  ++buckets_[i];
  ++count_;
  sum_us_ += us;
}

void TaskMetrics::OnEnded(const KindSpec& kind, absl::StatusCode code,
                          std::chrono::microseconds queue_wait, bool ran,
                          std::chrono::microseconds run) {
  ++ended_[{&kind, code}];
  const auto p = static_cast<size_t>(kind.pool);
  queue_wait_[p].Observe(queue_wait);
  if (ran) run_[p].Observe(run);
}

namespace {

// A label value with \, " and newline escaped as the text format requires.
std::string Escape(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Appends metric families to one text exposition.
class Exposition {
 public:
  void Family(absl::string_view name, absl::string_view type, absl::string_view help) {
    absl::StrAppend(&text_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  }
  // `labels` is already formatted: `pool="cpu",code="OK"` (may be empty).
  template <typename T>
  void Sample(absl::string_view name, absl::string_view labels, T value) {
    absl::StrAppend(&text_, name);
    if (!labels.empty()) absl::StrAppend(&text_, "{", labels, "}");
    absl::StrAppend(&text_, " ", value, "\n");
  }
  void Histogram(absl::string_view name, absl::string_view labels, const LatencyHistogram& h) {
    const std::string prefix = labels.empty() ? "" : absl::StrCat(labels, ",");
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.buckets().size(); ++i) {
      cumulative += h.buckets()[i];
      const std::string le = i < LatencyHistogram::kBounds.size()
                                 ? absl::StrCat(LatencyHistogram::kBounds[i])
                                 : "+Inf";
      Sample(absl::StrCat(name, "_bucket"), absl::StrCat(prefix, "le=\"", le, "\""), cumulative);
    }
    Sample(absl::StrCat(name, "_sum"), labels, h.sum_seconds());
    Sample(absl::StrCat(name, "_count"), labels, h.count());
  }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

std::string PoolLabel(Pool pool) { return absl::StrCat("pool=\"", PoolName(pool), "\""); }

// This process's figures, as client libraries export them.
void AppendProcessMetrics(Exposition& out) {
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces:
  // [0] is field 3 (state), so field N is [N - 3].
  const size_t close = stat.rfind(')');
  std::vector<std::string> fields;
  if (close != std::string::npos) {
    fields = absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty());
  }
  auto field = [&](size_t n) -> double {
    return n - 3 < fields.size() ? std::strtod(fields[n - 3].c_str(), nullptr) : 0;
  };
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));

  double boot_time = 0;
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.rfind("btime ", 0) == 0) boot_time = std::strtod(line.c_str() + 6, nullptr);
  }

  size_t open_fds = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (const dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++open_fds;
    }
    ::closedir(dir);
    --open_fds;  // The one opendir() holds.
  }
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);

  out.Family("process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
  out.Sample("process_cpu_seconds_total", "", (field(14) + field(15)) / ticks);
  out.Family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  out.Sample("process_resident_memory_bytes", "", field(24) * page);
  out.Family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
  out.Sample("process_virtual_memory_bytes", "", field(23));
  out.Family("process_open_fds", "gauge", "Number of open file descriptors.");
  out.Sample("process_open_fds", "", open_fds);
  out.Family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
  out.Sample("process_max_fds", "", static_cast<double>(nofile.rlim_cur));
  out.Family("process_start_time_seconds", "gauge",
             "Start time of the process since the Unix epoch, in seconds.");
  out.Sample("process_start_time_seconds", "", boot_time + field(22) / ticks);
}

}  // namespace

std::string RenderMetrics(const TaskMetrics& tasks, const SchedulerSnapshot& snapshot) {
  Exposition out;
  out.Family("crunchd_build_info", "gauge", "crunchd's version; always 1.");
  out.Sample("crunchd_build_info", absl::StrCat("version=\"", Escape(kVersion), "\""), 1);
  out.Family("crunchd_draining", "gauge", "1 while crunchd drains before it stops, else 0.");
  out.Sample("crunchd_draining", "", snapshot.draining ? 1 : 0);

  out.Family("crunchd_tasks_accepted_total", "counter", "Tasks accepted into a queue.");
  out.Sample("crunchd_tasks_accepted_total", "", snapshot.accepted);
  out.Family("crunchd_tasks_ended_total", "counter",
             "Accepted tasks that ended, by kind, pool and status code (OK for success).");
  // Sorted by label text, so scrapes list the series in a stable order.
  std::map<std::string, uint64_t> ended;
  for (const auto& [key, n] : tasks.ended_) {
    const auto& [kind, code] = key;
    ended[absl::StrCat("kind=\"", Escape(kind->name), "\",", PoolLabel(kind->pool), ",code=\"",
                       absl::StatusCodeToString(code), "\"")] = n;
  }
  for (const auto& [labels, n] : ended) out.Sample("crunchd_tasks_ended_total", labels, n);
  out.Family("crunchd_tasks_rejected_total", "counter",
             "Tasks refused before they were accepted, by status code.");
  for (const auto& [code, n] : tasks.rejected_) {
    out.Sample("crunchd_tasks_rejected_total",
               absl::StrCat("code=\"", absl::StatusCodeToString(code), "\""), n);
  }

  const Pool pools[] = {Pool::kCpu, Pool::kIo};
  struct PoolGauge {
    const char* name;
    const char* help;
    uint32_t PoolSnapshot::*field;
  };
  const PoolGauge gauges[] = {
      {"crunchd_queue_depth", "Tasks waiting in the pool's queue.", &PoolSnapshot::queued},
      {"crunchd_queue_capacity", "The most tasks the pool's queue holds.",
       &PoolSnapshot::queue_capacity},
      {"crunchd_tasks_in_flight", "Tasks handed to the pool's workers or threads, not ended.",
       &PoolSnapshot::in_flight},
      {"crunchd_pool_size", "Worker processes (cpu) or threads (io) in the pool.",
       &PoolSnapshot::size},
      {"crunchd_pool_busy", "Worker processes or threads running a task.", &PoolSnapshot::busy},
  };
  for (const PoolGauge& gauge : gauges) {
    out.Family(gauge.name, "gauge", gauge.help);
    for (size_t i = 0; i < snapshot.pools.size() && i < std::size(pools); ++i) {
      out.Sample(gauge.name, PoolLabel(pools[i]), snapshot.pools[i].*gauge.field);
    }
  }
  out.Family("crunchd_task_queue_wait_seconds", "histogram",
             "Time from acceptance until a task was handed to a worker or thread (or ended "
             "in the queue).");
  for (Pool pool : pools) {
    out.Histogram("crunchd_task_queue_wait_seconds", PoolLabel(pool),
                  tasks.queue_wait_[static_cast<size_t>(pool)]);
  }
  out.Family("crunchd_task_run_seconds", "histogram",
             "Time from hand-over to a worker or thread until the task ended.");
  for (Pool pool : pools) {
    out.Histogram("crunchd_task_run_seconds", PoolLabel(pool),
                  tasks.run_[static_cast<size_t>(pool)]);
  }

  out.Family("crunchd_arena_bytes_in_use", "gauge",
             "Bytes of the shared payload arena held by tasks' inputs and outputs.");
  out.Sample("crunchd_arena_bytes_in_use", "", snapshot.arena_bytes_in_use);

  out.Family("crunchd_worker_up", "gauge",
             "1 if the worker process in this slot is attached and serving, else 0.");
  for (const WorkerSnapshot& w : snapshot.workers) {
    out.Sample("crunchd_worker_up", absl::StrCat("slot=\"", w.slot, "\""),
               w.state == "idle" || w.state == "busy" ? 1 : 0);
  }
  out.Family("crunchd_worker_restarts_total", "counter",
             "Times the worker process in this slot died or was killed and was replaced.");
  for (const WorkerSnapshot& w : snapshot.workers) {
    out.Sample("crunchd_worker_restarts_total", absl::StrCat("slot=\"", w.slot, "\""), w.restarts);
  }
  out.Family("crunchd_worker_recycles_total", "counter",
             "Times the worker process in this slot was replaced on purpose "
             "([cpu] max_tasks_per_worker, max_worker_rss_bytes).");
  for (const WorkerSnapshot& w : snapshot.workers) {
    out.Sample("crunchd_worker_recycles_total", absl::StrCat("slot=\"", w.slot, "\""), w.recycles);
  }
  out.Family("crunchd_worker_tasks_total", "counter",
             "Tasks the worker processes in this slot completed.");
  for (const WorkerSnapshot& w : snapshot.workers) {
    out.Sample("crunchd_worker_tasks_total", absl::StrCat("slot=\"", w.slot, "\""), w.tasks_done);
  }
  out.Family("crunchd_worker_resident_memory_bytes", "gauge",
             "Resident memory of the worker process in this slot.");
  for (const WorkerSnapshot& w : snapshot.workers) {
    out.Sample("crunchd_worker_resident_memory_bytes", absl::StrCat("slot=\"", w.slot, "\""),
               w.rss_bytes);
  }
  out.Family("crunchd_kind_quarantined", "gauge",
             "1 while the CPU kind is quarantined after consecutive worker crashes "
             "([cpu] quarantine_after), else 0.");
  for (const KindHealthSnapshot& k : snapshot.cpu_kinds) {
    out.Sample("crunchd_kind_quarantined", absl::StrCat("kind=\"", Escape(k.kind), "\""),
               k.quarantined_ms_left > 0 ? 1 : 0);
  }
  out.Family("crunchd_kind_quarantines_total", "counter",
             "Times the CPU kind was quarantined after consecutive worker crashes.");
  for (const KindHealthSnapshot& k : snapshot.cpu_kinds) {
    out.Sample("crunchd_kind_quarantines_total", absl::StrCat("kind=\"", Escape(k.kind), "\""),
               k.quarantines);
  }
  AppendProcessMetrics(out);
  return out.Take();
}

}  // namespace crunch::daemon
