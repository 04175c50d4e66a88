// The invariant of issue 6, checked against the real daemon under chaos:
// every task crunchd accepted ends exactly once, with its result or an error
// naming the cause; every task it refused was refused at once with a reason;
// no caller waits past its deadline; and when the dust settles the daemon has
// its workers back and holds no more fds, mappings or child processes than
// before.
//
// Load: unary Run, Submit/Wait and RunStream clients at once, each task tagged
// uniquely and entered in a Ledger before it is sent; mixed kinds (noop,
// sha256, fib, spin, sleep, file.write, file.read, a few invalid ones), some
// past their timeout. Chaos: a worker SIGKILLed every 200 ms, one SIGSTOPped
// for longer than the task timeout every 2 s, random Submit()ted tasks
// cancelled, and RunStream floods that overrun the small queues.
//
// How long (environment):
//   CRUNCH_CHAOS_SECONDS    load phase at least this long (default 60)
//   CRUNCH_CHAOS_MIN_TASKS  and at least this many tasks sent (default 20000)
// The load phase stops at 3x CRUNCH_CHAOS_SECONDS (at least 240 s) whatever
// happens; the long run in docs/reliability.md is CRUNCH_CHAOS_SECONDS=600.
//
// DaemonDeath: crunchd SIGKILLed with a busy and a stopped worker; both must
// exit on their own, and the next crunchd on the same socket must start.

#include <arpa/inet.h>
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testing/daemon_process.h"

namespace crunch {
namespace {

namespace v1 = crunch::v1;
using testing::DaemonProcess;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// --- settings ---------------------------------------------------------------

constexpr int kWorkers = 2;
constexpr int kTaskTimeoutMs = 400;  // [cpu] and [io] task_timeout_ms.
constexpr int kStopMs = 700;         // A SIGSTOPped worker stays stopped this long.
// A caller's deadline is its task's timeout plus this: an accepted task ends
// within its timeout, so a call still open after that has hung.
constexpr milliseconds kCallerSlack{5000};
// A refusal must come back at least this fast (on a loaded 2-core machine).
constexpr milliseconds kRejectWithin{2000};

// Anonymous mappings the daemon may gain (malloc arenas split and grow).
constexpr int kAnonMapsSlack = 8;
// Whether the daemon's anonymous mappings and RSS are compared before and
// after. Not under a sanitizer: its allocator maps a region per size class as
// it goes and keeps freed memory in quarantine (256 MiB under ASan), so both
// grow by design; leaks are then its leak checker's to find (ASan's, as
// crunchd exits).
#ifdef CRUNCH_SANITIZED
constexpr bool kCheckMemory = false;
#else
constexpr bool kCheckMemory = true;
#endif

// Small queues and a small arena, so the floods overrun them and a leaked
// extent would soon starve dispatch. No quarantine: the chaos loop kills
// workers whatever they run, which is no fault of the kind (the quarantine
// has its own test in tests/worker_hardening_test.cc).
constexpr char kConfig[] = R"(
[cpu]
quarantine_after = 0
queue_capacity = 48
task_timeout_ms = 400
in_flight_per_worker = 4
arena_bytes = 4194304
[io]
threads = 4
queue_capacity = 24
task_timeout_ms = 400
data_dir = "@DIR@/data"
[limits]
max_payload_bytes = 1048576
max_output_bytes = 1048576
[server]
result_ttl_ms = 5000
)";

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

// --- expected outputs -------------------------------------------------------

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), digest, &n, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::string Fib(int n) {
  uint64_t a = 0, b = 1;
  for (int i = 0; i < n; ++i) b = std::exchange(a, b) + b;
  return std::to_string(a);
}

// Fixed payloads, so expected digests are computed once.
struct Payloads {
  std::vector<std::string> sha_inputs, sha_digests, files;
  Payloads() {
    std::mt19937_64 rng(7);
    for (size_t size : {0, 1, 100, 4096, 65536, 200000}) {
      std::string s(size, '\0');
      for (char& c : s) c = static_cast<char>(rng());
      sha_inputs.push_back(s);
      sha_digests.push_back(Sha256Hex(s));
    }
    for (int i = 0; i < 8; ++i)
      files.push_back(absl::StrCat("file ", i, ": ", std::string(i * 997, 'f')));
  }
};
const Payloads& P() {
  static const Payloads* p = new Payloads();
  return *p;
}

// --- the ledger -------------------------------------------------------------

enum class Via : uint8_t { kRun, kSubmit, kStream };
const char* ViaName(Via v) {
  return v == Via::kRun ? "Run" : v == Via::kSubmit ? "Submit" : "RunStream";
}

// What a task is, and what it may end as.
struct TaskSpec {
  v1::TaskRequest request;
  std::string expected;   // Output when it succeeds.
  bool invalid = false;   // Must be refused (INVALID_ARGUMENT or NOT_FOUND).
  bool cpu = false;       // Runs on a worker process: may be ABORTED by a kill.
  bool overruns = false;  // Asks for more time than its timeout.
  int timeout_ms = kTaskTimeoutMs;
};

TaskSpec MakeTask(std::mt19937_64& rng, uint64_t tag) {
  TaskSpec t;
  v1::TaskRequest& r = t.request;
  r.set_tag(tag);
  r.set_priority(static_cast<int>(rng() % 3));
  auto param = [&](const std::string& k, const std::string& v) { (*r.mutable_params())[k] = v; };
  const int pick = static_cast<int>(rng() % 100);
  if (pick < 28) {
    r.set_kind("noop");
    r.set_payload(absl::StrCat("tag ", tag, std::string(rng() % 2048, 'n')));
    t.expected = r.payload();
    t.cpu = true;
  } else if (pick < 46) {
    const size_t i = rng() % P().sha_inputs.size();
    r.set_kind("sha256");
    r.set_payload(P().sha_inputs[i]);
    t.expected = P().sha_digests[i];
    t.cpu = true;
  } else if (pick < 62) {
    const int n = static_cast<int>(rng() % 26);
    r.set_kind("fib");
    param("n", std::to_string(n));
    t.expected = Fib(n);
    t.cpu = true;
  } else if (pick < 72) {
    r.set_kind("spin");
    t.overruns = rng() % 40 == 0;
    param("ms", t.overruns ? "3000" : std::to_string(rng() % 4));
    t.cpu = true;
  } else if (pick < 81) {
    r.set_kind("sleep");
    t.overruns = rng() % 40 == 0;
    param("ms", t.overruns ? "3000" : std::to_string(rng() % 15));
  } else if (pick < 89) {
    r.set_kind("file.write");
    param("path", absl::StrCat("w/", tag % 32));
    r.set_payload(absl::StrCat("written by task ", tag));
    t.expected = std::to_string(r.payload().size());
  } else if (pick < 98) {
    const size_t i = rng() % P().files.size();
    r.set_kind("file.read");
    param("path", absl::StrCat("r/", i));
    t.expected = P().files[i];
  } else if (pick == 98) {
    r.set_kind("fib");
    param("n", "99");  // Out of range: INVALID_ARGUMENT at admission.
    t.invalid = true;
  } else {
    r.set_kind("no.such.kind");  // NOT_FOUND at admission.
    t.invalid = true;
  }
  if (!t.invalid && rng() % 10 == 0) {  // Some carry their own (shorter) timeout.
    t.timeout_ms = 150 + static_cast<int>(rng() % 250);
    r.set_timeout_ms(static_cast<uint32_t>(t.timeout_ms));
  }
  return t;
}

bool IsRefusal(int code) {
  return code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
         code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::NOT_FOUND;
}

constexpr const char* kKinds[] = {"noop",  "sha256",     "fib",       "spin",
                                  "sleep", "file.write", "file.read", "no.such.kind"};
uint8_t KindIndex(const std::string& kind) {
  for (uint8_t i = 0; i < std::size(kKinds); ++i) {
    if (kind == kKinds[i]) return i;
  }
  return 0;
}

// Every tag sent, and how it ended; checks each end as it is reported.
// Compact (a few bytes a tag), so the 10-minute run's million tags fit.
// Thread-safe.
class Ledger {
 public:
  struct Tally {
    uint64_t sent = 0, accepted = 0, refused = 0, completed = 0, failed = 0;
    std::map<int, uint64_t> ended_by_code, refused_by_code;
    uint64_t cancels_that_took = 0;
    milliseconds slowest_refusal{0};
  };

  void Sent(const TaskSpec& t, Via via) {
    std::lock_guard lock(mu_);
    Entry& e = At(t.request.tag());
    e.kind = KindIndex(t.request.kind());
    e.via = via;
    e.sent = true;
    e.invalid = t.invalid;
    e.cpu = t.cpu;
    e.overruns = t.overruns;
    ++sent_;
    if (!t.expected.empty()) expected_[t.request.tag()] = t.expected;
  }

  // An end reported to a caller. `took`: how long the call that refused it
  // took (zero for stream results, which cannot tell).
  void Ended(uint64_t tag, int code, const std::string& error, const std::string& output,
             milliseconds took = milliseconds(0)) {
    std::lock_guard lock(mu_);
    if (tag >= entries_.size() || !entries_[tag].sent) {
      Fail(absl::StrCat("a result for tag ", tag, ", which was never sent (code ", code, ")"));
      return;
    }
    Entry& e = entries_[tag];
    const std::string who = Who(tag, e);
    if (++e.ends > 1) {
      Fail(absl::StrCat(who, " ended ", int{e.ends}, " times: first code ", int{e.code}, ", now ",
                        code, " '", error, "'"));
      return;
    }
    e.code = static_cast<int8_t>(code);
    auto expected = expected_.extract(tag);
    const std::string& m = error;
    auto need = [&](bool ok, const char* what) {
      if (!ok) Fail(absl::StrCat(who, " ended with code ", code, " (", what, "): '", m, "'"));
    };
    if (code == 0) {
      ++tally_.accepted;
      ++tally_.completed;
      need(!e.invalid, "should have been refused");
      need(!e.overruns, "should have run past its timeout");
      const std::string want = expected.empty() ? std::string() : std::move(expected.mapped());
      if (output != want) {
        Fail(absl::StrCat(who, ": wrong output (", output.size(), " bytes, expected ", want.size(),
                          ")"));
      }
    } else if (IsRefusal(code)) {
      ++tally_.refused;
      ++tally_.refused_by_code[code];
      tally_.slowest_refusal = std::max(tally_.slowest_refusal, took);
      need(took <= kRejectWithin, "refused, but not at once");
      need(!m.empty(), "refused without a reason");
      if (code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        need(!e.invalid && m.find("queue_capacity") != std::string::npos,
             "a full queue, named as such");
      } else {
        need(e.invalid, "refused, though the task is valid");
      }
    } else {
      ++tally_.accepted;
      ++tally_.failed;
      ++tally_.ended_by_code[code];
      need(!e.invalid, "should have been refused");
      switch (code) {
        case grpc::StatusCode::ABORTED:  // Its worker was killed under it.
          need(e.cpu && m.find("worker process") != std::string::npos &&
                   m.find("signal 9") != std::string::npos,
               "only a CPU task, naming the worker and the signal");
          break;
        case grpc::StatusCode::DEADLINE_EXCEEDED:  // The daemon's timeout, not the caller's clock.
          need(m.find("timeout of") != std::string::npos, "the task's timeout, not a hang");
          break;
        case grpc::StatusCode::CANCELLED:  // Checked against the cancels in Verify().
          need(m.find("cancelled by request") != std::string::npos, "cancelled by request");
          break;
        default:
          need(false, "not a cause this test provokes");
      }
    }
  }

  void CancelSent(uint64_t tag) {
    std::lock_guard lock(mu_);
    At(tag).cancel_sent = true;
  }
  void CancelSaidCancelled(uint64_t tag) {
    std::lock_guard lock(mu_);
    At(tag).cancel_took = true;
  }
  void Report(std::string what) {
    std::lock_guard lock(mu_);
    Fail(std::move(what));
  }
  size_t sent() const {
    std::lock_guard lock(mu_);
    return sent_;
  }

  // After every caller is done: every tag ended, and cancels agree.
  Tally Verify() {
    std::lock_guard lock(mu_);
    tally_.sent = sent_;
    for (uint64_t tag = 0; tag < entries_.size(); ++tag) {
      const Entry& e = entries_[tag];
      if (!e.sent) continue;
      if (e.ends == 0) {
        Fail(absl::StrCat(Who(tag, e), " never ended"));
        continue;
      }
      if (e.code == grpc::StatusCode::CANCELLED && !e.cancel_sent) {
        Fail(absl::StrCat(Who(tag, e), " ended CANCELLED, but nobody cancelled it"));
      }
      if (e.cancel_took) {
        ++tally_.cancels_that_took;
        if (e.code != grpc::StatusCode::CANCELLED) {
          Fail(absl::StrCat(Who(tag, e), ": Cancel said cancelled, but it ended with code ",
                            int{e.code}));
        }
      }
    }
    return tally_;
  }

  std::vector<std::string> failures() const {
    std::lock_guard lock(mu_);
    return failures_;
  }
  uint64_t failure_count() const {
    std::lock_guard lock(mu_);
    return failure_count_;
  }

 private:
  void Fail(std::string what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failures_.size() < 50) failures_.push_back(std::move(what));
    ++failure_count_;
  }

  struct Entry {
    uint8_t kind = 0;
    Via via = Via::kRun;
    uint8_t ends = 0;
    int8_t code = -1;
    bool sent : 1 = false;
    bool invalid : 1 = false;
    bool cpu : 1 = false;
    bool overruns : 1 = false;
    bool cancel_sent : 1 = false;
    bool cancel_took : 1 = false;  // Cancel answered cancelled = true.
  };
  Entry& At(uint64_t tag) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (tag >= entries_.size()) entries_.resize(tag + 1);
    return entries_[tag];
  }
  static std::string Who(uint64_t tag, const Entry& e) {
    return absl::StrCat("tag ", tag, " (", kKinds[e.kind], " via ", ViaName(e.via), ")");
  }

  mutable std::mutex mu_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);  // By tag.
  // Outputs of tasks not yet ended.
  std::unordered_map<uint64_t, std::string> expected_ ABSL_GUARDED_BY(mu_);
  Tally tally_ ABSL_GUARDED_BY(mu_);
  size_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
  uint64_t failure_count_ ABSL_GUARDED_BY(mu_) = 0;
};

// --- /proc, metrics ---------------------------------------------------------

struct ProcStat {
  pid_t ppid = 0;
  char state = '?';
  std::string comm;
};
std::optional<ProcStat> ReadStat(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  ProcStat s;
  s.comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  rest >> s.state >> s.ppid;
  return s;
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    std::optional<ProcStat> s = ReadStat(pid);
    if (s && s->ppid == parent) out.push_back(pid);
  }
  return out;
}

// Gone, or a zombie (dead; whoever adopted it reaps it).
bool Dead(pid_t pid) {
  std::optional<ProcStat> s = ReadStat(pid);
  return !s || s->state == 'Z' || s->state == 'X';
}

struct Resources {
  int fds = 0, memfds = 0, children = 0, zombies = 0;
  // Mappings: anonymous ones come and go with malloc's arenas and thread
  // stacks; the rest (files, the memfd segment, [heap], [stack]) must not grow.
  int maps = 0, anon_maps = 0, memfd_maps = 0;
  uint64_t rss_bytes = 0;
  std::vector<std::string> map_lines;
  std::string ToString() const {
    return absl::StrCat("fds ", fds, " (memfd ", memfds, "), maps ", maps, " (anonymous ",
                        anon_maps, ", memfd ", memfd_maps, "), children ", children, " (zombies ",
                        zombies, "), rss ", rss_bytes >> 20, " MiB");
  }
};
Resources Measure(pid_t pid) {
  Resources r;
  const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir)) {
    ++r.fds;
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec).string().starts_with("/memfd:")) ++r.memfds;
  }
  std::ifstream maps(absl::StrCat("/proc/", pid, "/maps"));
  for (std::string line; std::getline(maps, line);) {
    ++r.maps;
    // "start-end perms offset dev inode [path]": no path is an anonymous mapping.
    std::istringstream fields(line);
    std::string field, path;
    for (int i = 0; i < 5; ++i) fields >> field;
    std::getline(fields >> std::ws, path);
    r.anon_maps += path.empty();
    r.memfd_maps += path.starts_with("/memfd:");
    r.map_lines.push_back(line);
  }
  for (pid_t child : ChildrenOf(pid)) {
    ++r.children;
    r.zombies += Dead(child);
  }
  std::ifstream statm(absl::StrCat("/proc/", pid, "/statm"));
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  r.rss_bytes = resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return r;
}

// GET /metrics; returns every unlabelled sample and the per-label ones as
// "name{labels}" -> value.
std::map<std::string, double> ScrapeMetrics(int port) {
  std::map<std::string, double> out;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return out;
  }
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::write(fd, req.data(), req.size()) < 0) {
    ::close(fd);
    return out;
  }
  std::string body;
  char buf[16384];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) body.append(buf, static_cast<size_t>(n));
  ::close(fd);
  std::istringstream lines(body.substr(std::min(body.size(), body.find("\r\n\r\n"))));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#' || line[0] == '\r') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::atof(line.c_str() + space + 1);
  }
  return out;
}

// Signals `pid` only if it is still one of `daemon`'s crunch_worker children
// (checked through a pidfd, so a recycled pid is never hit).
bool SignalWorker(pid_t daemon, pid_t pid, int signo) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  std::optional<ProcStat> s = ReadStat(pid);
  bool sent = false;
  if (s && s->ppid == daemon && s->comm == "crunch_worker") {
    sent = ::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0) == 0;
  }
  ::close(pidfd);
  return sent;
}

std::chrono::system_clock::time_point DeadlineFor(const TaskSpec& t) {
  return std::chrono::system_clock::now() + milliseconds(t.timeout_ms) + kCallerSlack;
}

// --- the clients --------------------------------------------------------------

struct Shared {
  DaemonProcess* daemon;
  Ledger ledger;
  std::atomic<uint64_t> next_tag{1};
  std::atomic<bool> stop{false};
  // Submit()ted tasks the canceller may pick from: {task id, tag}.
  std::mutex cancel_mu;
  std::vector<std::pair<uint64_t, uint64_t>> cancellable;
  std::atomic<uint64_t> kills{0}, stops{0}, cancels{0}, waits_repeated{0}, stream_rounds{0};
};

void RunClient(Shared& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto stub = s.daemon->NewStub();
  while (!s.stop) {
    TaskSpec t = MakeTask(rng, s.next_tag++);
    s.ledger.Sent(t, Via::kRun);
    grpc::ClientContext context;
    context.set_deadline(DeadlineFor(t));
    v1::TaskResult result;
    const auto start = Clock::now();
    grpc::Status st = stub->Run(&context, t.request, &result);
    const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    if (st.ok() && result.tag() != t.request.tag()) {
      s.ledger.Report(
          absl::StrCat("Run for tag ", t.request.tag(), " answered with tag ", result.tag()));
    }
    s.ledger.Ended(t.request.tag(), st.error_code(), st.error_message(), result.output(), took);
  }
}

void SubmitWaitClient(Shared& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto stub = s.daemon->NewStub();
  while (!s.stop) {
    struct Pending {
      TaskSpec t;
      uint64_t id;
    };
    std::vector<Pending> pending;
    const int batch = 4 + static_cast<int>(rng() % 40);
    for (int i = 0; i < batch; ++i) {
      TaskSpec t = MakeTask(rng, s.next_tag++);
      s.ledger.Sent(t, Via::kSubmit);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + kCallerSlack);
      v1::TaskRef ref;
      const auto start = Clock::now();
      grpc::Status st = stub->Submit(&context, t.request, &ref);
      if (!st.ok()) {
        s.ledger.Ended(t.request.tag(), st.error_code(), st.error_message(), "",
                       std::chrono::duration_cast<milliseconds>(Clock::now() - start));
        continue;
      }
      if (rng() % 4 == 0) {
        std::lock_guard lock(s.cancel_mu);
        s.cancellable.emplace_back(ref.task_id(), t.request.tag());
      }
      pending.push_back({std::move(t), ref.task_id()});
    }
    for (const Pending& p : pending) {
      const uint64_t tag = p.t.request.tag();
      auto wait = [&](v1::TaskResult* result) {
        grpc::ClientContext context;
        context.set_deadline(DeadlineFor(p.t));
        v1::TaskRef ref;
        ref.set_task_id(p.id);
        return stub->Wait(&context, ref, result);
      };
      v1::TaskResult result;
      grpc::Status st = wait(&result);
      if (st.ok() && (result.tag() != tag || result.task_id() != p.id)) {
        s.ledger.Report(absl::StrCat("Wait(", p.id, ") for tag ", tag, " answered task ",
                                     result.task_id(), " tag ", result.tag()));
      }
      if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
        s.ledger.Report(absl::StrCat("Wait(", p.id, ") for accepted tag ", tag,
                                     ": NOT_FOUND: ", st.error_message()));
      }
      s.ledger.Ended(tag, st.error_code(), st.error_message(), result.output());
      if (rng() % 16 == 0) {  // The result is kept: a second Wait gets the same end.
        ++s.waits_repeated;
        v1::TaskResult again;
        grpc::Status st2 = wait(&again);
        if (st2.error_code() != st.error_code() || again.output() != result.output()) {
          s.ledger.Report(absl::StrCat("tag ", tag, ": second Wait gave ", st2.error_code(),
                                       ", the first ", st.error_code()));
        }
      }
    }
  }
}

void StreamClient(Shared& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto stub = s.daemon->NewStub();
  while (!s.stop) {
    ++s.stream_rounds;
    const int count = 50 + static_cast<int>(rng() % 350);
    std::vector<TaskSpec> tasks;
    for (int i = 0; i < count; ++i) {
      tasks.push_back(MakeTask(rng, s.next_tag++));
      s.ledger.Sent(tasks.back(), Via::kStream);
    }
    grpc::ClientContext context;
    // Generous: every task ends within its timeout, but they queue behind each other.
    context.set_deadline(std::chrono::system_clock::now() + seconds(60));
    auto stream = stub->RunStream(&context);
    std::thread writer([&] {
      for (const TaskSpec& t : tasks) {
        if (!stream->Write(t.request)) break;  // Flood: the queue overruns.
      }
      stream->WritesDone();
    });
    v1::TaskResult result;
    int received = 0;
    while (stream->Read(&result)) {
      ++received;
      s.ledger.Ended(result.tag(), result.code(), result.error(), result.output());
    }
    writer.join();
    grpc::Status st = stream->Finish();
    if (!st.ok() || received != count) {
      s.ledger.Report(absl::StrCat("RunStream of ", count, " tasks: ", received,
                                   " results, finished with ", st.error_code(), " '",
                                   st.error_message(), "'"));
    }
  }
}

void Canceller(Shared& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto stub = s.daemon->NewStub();
  while (!s.stop) {
    std::this_thread::sleep_for(milliseconds(5 + rng() % 20));
    std::pair<uint64_t, uint64_t> victim;
    {
      std::lock_guard lock(s.cancel_mu);
      if (s.cancellable.empty()) continue;
      const size_t i = rng() % s.cancellable.size();
      victim = s.cancellable[i];
      s.cancellable.erase(s.cancellable.begin() + static_cast<ptrdiff_t>(i));
      if (s.cancellable.size() > 256) s.cancellable.erase(s.cancellable.begin());
    }
    s.ledger.CancelSent(victim.second);  // Before: it may end CANCELLED before the reply.
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kCallerSlack);
    v1::TaskRef ref;
    ref.set_task_id(victim.first);
    v1::CancelReply reply;
    grpc::Status st = stub->Cancel(&context, ref, &reply);
    ++s.cancels;
    if (st.ok() && reply.cancelled()) s.ledger.CancelSaidCancelled(victim.second);
    if (!st.ok() && st.error_code() != grpc::StatusCode::NOT_FOUND) {
      s.ledger.Report(
          absl::StrCat("Cancel(", victim.first, "): ", st.error_code(), " ", st.error_message()));
    }
  }
}

// SIGKILLs a random worker every 200 ms; every 2 s SIGSTOPs one for kStopMs
// (past the task timeout: the daemon kills it if it holds a task), then
// SIGCONTs it if it is still there.
void ChaosMonkey(Shared& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const pid_t daemon = s.daemon->pid();
  pid_t stopped = 0;
  Clock::time_point stopped_at;
  for (int tick = 1; !s.stop; ++tick) {
    std::this_thread::sleep_for(milliseconds(200));
    std::vector<pid_t> workers = s.daemon->WorkerPids();
    if (stopped != 0 && Clock::now() - stopped_at >= milliseconds(kStopMs)) {
      SignalWorker(daemon, stopped, SIGCONT);
      stopped = 0;
    }
    std::erase(workers, stopped);
    if (workers.empty()) continue;
    const pid_t victim = workers[rng() % workers.size()];
    if (tick % 10 == 0 && stopped == 0) {
      if (SignalWorker(daemon, victim, SIGSTOP)) {
        stopped = victim;
        stopped_at = Clock::now();
        ++s.stops;
      }
    } else if (SignalWorker(daemon, victim, SIGKILL)) {
      ++s.kills;
    }
  }
  if (stopped != 0) SignalWorker(daemon, stopped, SIGCONT);
}

// Waits (up to 30 s) until every worker is idle and alive and nothing is
// queued or in flight, and stays so for 300 ms with the same workers. The chaos
// loop's last SIGKILL may land just before: until the daemon reaps that worker
// it is still listed idle, and its replacement comes after a backoff.
bool Settle(const DaemonProcess& d, v1::DaemonStatus* out) {
  const auto give_up = Clock::now() + seconds(30);
  std::set<uint32_t> settled_pids;
  Clock::time_point settled_since;
  while (Clock::now() < give_up) {
    absl::StatusOr<v1::DaemonStatus> s = d.Status();
    if (s.ok()) {
      bool idle = s->workers_size() == kWorkers;
      std::set<uint32_t> pids;
      for (const auto& w : s->workers()) {
        idle = idle && w.state() == "idle" && !Dead(static_cast<pid_t>(w.pid()));
        pids.insert(w.pid());
      }
      for (const auto& p : s->pools()) idle = idle && p.busy() == 0 && p.queued() == 0;
      if (!idle) {
        settled_pids.clear();
      } else if (pids != settled_pids) {
        settled_pids = std::move(pids);
        settled_since = Clock::now();
      } else if (Clock::now() - settled_since >= milliseconds(300)) {
        *out = *std::move(s);
        return true;
      }
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return false;
}

void WriteReadableFiles(const DaemonProcess& d) {
  std::filesystem::create_directories(d.dir() + "/data/r");
  std::filesystem::create_directories(d.dir() + "/data/w");
  for (size_t i = 0; i < P().files.size(); ++i) {
    std::ofstream(absl::StrCat(d.dir(), "/data/r/", i)) << P().files[i];
  }
}

TEST(Chaos, EveryAcceptedTaskEndsExactlyOnceAndNothingLeaks) {
  const int min_seconds = EnvInt("CRUNCH_CHAOS_SECONDS", 60);
  const int min_tasks = EnvInt("CRUNCH_CHAOS_MIN_TASKS", 20000);
  const seconds cap(std::max(3 * min_seconds, 240));
  const int metrics_port = testing::FreeLoopbackPort();
  absl::StatusOr<std::unique_ptr<DaemonProcess>> started =
      DaemonProcess::Start({"--workers", std::to_string(kWorkers), "--log-level", "error",
                            "--metrics-listen", absl::StrCat("127.0.0.1:", metrics_port)},
                           kConfig);
  ASSERT_TRUE(started.ok()) << started.status();
  DaemonProcess& d = **started;
  WriteReadableFiles(d);

  // Warm up without chaos (gRPC's and the allocator's threads and caches),
  // then one kill and one timeout, so that the baseline is a daemon that has
  // already replaced a worker.
  {
    auto stub = d.NewStub();
    std::mt19937_64 rng(1);
    for (int i = 0; i < 300; ++i) {
      TaskSpec t = MakeTask(rng, 0);
      v1::TaskResult r;
      grpc::ClientContext context;
      context.set_deadline(DeadlineFor(t));
      (void)stub->Run(&context, t.request, &r);
    }
    SignalWorker(d.pid(), d.WorkerPids().at(0), SIGKILL);
    v1::TaskResult r;
    (void)testing::RunTask(*stub, "spin", {{"ms", "2000"}}, "", &r);
  }
  v1::DaemonStatus before;
  ASSERT_TRUE(Settle(d, &before)) << "the daemon did not settle after the warm-up";
  // A worker being spawned holds a second copy of the segment's fd for a
  // moment: take the baseline once two readings agree.
  Resources base = Measure(d.pid());
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    Resources again = Measure(d.pid());
    const bool same = again.fds == base.fds && again.memfds == base.memfds;
    base = std::move(again);
    if (same) break;
  }
  std::map<std::string, double> metrics_before = ScrapeMetrics(metrics_port);
  std::cout << "before: " << base.ToString() << ", process_open_fds "
            << metrics_before["process_open_fds"] << std::endl;

  Shared s;
  s.daemon = &d;
  std::vector<std::thread> threads;
  uint64_t seed = 100;
  for (int i = 0; i < 3; ++i) threads.emplace_back(RunClient, std::ref(s), seed++);
  for (int i = 0; i < 2; ++i) threads.emplace_back(SubmitWaitClient, std::ref(s), seed++);
  for (int i = 0; i < 2; ++i) threads.emplace_back(StreamClient, std::ref(s), seed++);
  threads.emplace_back(Canceller, std::ref(s), seed++);
  threads.emplace_back(ChaosMonkey, std::ref(s), seed++);

  const auto start = Clock::now();
  for (;;) {
    std::this_thread::sleep_for(milliseconds(250));
    const auto elapsed = Clock::now() - start;
    const size_t sent = s.ledger.sent();
    if ((elapsed >= seconds(min_seconds) && sent >= static_cast<size_t>(min_tasks)) ||
        elapsed >= cap) {
      break;
    }
  }
  const auto load_time = Clock::now() - start;
  s.stop = true;
  // Each client finishes its current call, batch or stream; all are bounded by deadlines.
  for (std::thread& t : threads) t.join();
  const auto drained_time = Clock::now() - start;

  v1::DaemonStatus after;
  const bool settled = Settle(d, &after);
  const Ledger::Tally tally = s.ledger.Verify();
  std::cout << "load " << std::chrono::duration_cast<seconds>(load_time).count()
            << " s (clients done at " << std::chrono::duration_cast<seconds>(drained_time).count()
            << " s): " << tally.sent << " tasks sent, " << tally.accepted << " accepted ("
            << tally.completed << " OK, " << tally.failed << " failed), " << tally.refused
            << " refused (slowest " << tally.slowest_refusal.count() << " ms); " << s.kills
            << " kills, " << s.stops << " stops, " << s.cancels << " cancels ("
            << tally.cancels_that_took << " took), " << s.stream_rounds << " streams, "
            << s.waits_repeated << " repeated waits" << std::endl;
  for (const auto& [code, n] : tally.ended_by_code)
    std::cout << "  ended " << code << ": " << n << "\n";
  for (const auto& [code, n] : tally.refused_by_code)
    std::cout << "  refused " << code << ": " << n << "\n";

  // 1. Every tag accounted for exactly once, each end with its cause.
  EXPECT_EQ(s.ledger.failure_count(), 0u) << absl::StrJoin(s.ledger.failures(), "\n");
  EXPECT_GE(tally.sent, static_cast<uint64_t>(min_tasks)) << "too slow to send the tasks in time";
  // The chaos really happened, or the test proves nothing.
  EXPECT_GT(tally.ended_by_code.count(grpc::StatusCode::ABORTED), 0u);
  EXPECT_GT(tally.ended_by_code.count(grpc::StatusCode::DEADLINE_EXCEEDED), 0u);
  EXPECT_GT(tally.ended_by_code.count(grpc::StatusCode::CANCELLED), 0u);
  EXPECT_GT(tally.refused_by_code.count(grpc::StatusCode::RESOURCE_EXHAUSTED), 0u);
  EXPECT_GT(s.stops, 0u);

  // 2. The daemon's own books agree with the callers': what it accepted it
  //    ended, once each, with the same codes the callers saw.
  ASSERT_TRUE(settled) << "workers not back, or tasks still queued or running, 30 s after the load";
  const v1::Counters& c0 = before.counters();
  const v1::Counters& c1 = after.counters();
  EXPECT_EQ(c1.accepted() - c0.accepted(), tally.accepted);
  EXPECT_EQ(c1.completed() - c0.completed(), tally.completed);
  EXPECT_EQ(c1.failed() - c0.failed(), tally.failed);
  EXPECT_EQ(c1.rejected() - c0.rejected(), tally.refused);
  EXPECT_EQ(c1.accepted(), c1.completed() + c1.failed()) << "accepted tasks that never ended";
  for (const auto& [code, n] : tally.ended_by_code) {
    const std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    const uint64_t was = c0.failed_by_code().contains(name) ? c0.failed_by_code().at(name) : 0;
    EXPECT_EQ(c1.failed_by_code().at(name) - was, n) << name;
  }

  // 3. Workers back to the setting.
  EXPECT_EQ(after.workers_size(), kWorkers);
  EXPECT_EQ(d.WorkerPids().size(), static_cast<size_t>(kWorkers));
  for (const auto& p : after.pools()) EXPECT_EQ(p.size(), p.name() == "cpu" ? kWorkers : 4);

  // 4. Nothing leaked. Closing fds and unmapping lag a little behind the
  //    settle (gRPC closes idle transports, threads exit): poll a few seconds.
  Resources now = Measure(d.pid());
  for (int i = 0; i < 100; ++i) {
    if (now.fds <= base.fds && now.memfds == base.memfds &&
        (!kCheckMemory || now.anon_maps <= base.anon_maps + kAnonMapsSlack) &&
        now.children <= base.children) {
      break;
    }
    std::this_thread::sleep_for(milliseconds(100));
    now = Measure(d.pid());
  }
  std::map<std::string, double> metrics = ScrapeMetrics(metrics_port);
  std::cout << "after:  " << now.ToString() << ", process_open_fds " << metrics["process_open_fds"]
            << std::endl;
  EXPECT_LE(now.fds, base.fds) << "fds leaked";
  EXPECT_EQ(now.memfds, base.memfds) << "shared-memory segments leaked";
  EXPECT_EQ(now.memfd_maps, base.memfd_maps) << "shared-memory mappings leaked";
  // A few anonymous mappings are malloc's business; a leak per worker
  // restart or per task would be tens or thousands.
  EXPECT_LE(now.maps - now.anon_maps, base.maps - base.anon_maps) << "file mappings leaked";
  if (kCheckMemory) {
    EXPECT_LE(now.anon_maps, base.anon_maps + kAnonMapsSlack)
        << "anonymous mappings grew; now:\n"
        << absl::StrJoin(now.map_lines, "\n") << "\nbefore:\n"
        << absl::StrJoin(base.map_lines, "\n");
  }
  EXPECT_EQ(now.children, kWorkers) << "child processes left over";
  EXPECT_EQ(now.zombies, 0) << "unreaped children";
  if (kCheckMemory) {
    EXPECT_LT(now.rss_bytes, base.rss_bytes + (256ull << 20)) << "the daemon's memory grew";
  }
  ASSERT_FALSE(metrics.empty()) << "no metrics on port " << metrics_port;
  EXPECT_EQ(metrics["crunchd_tasks_in_flight{pool=\"cpu\"}"], 0);
  EXPECT_EQ(metrics["crunchd_tasks_in_flight{pool=\"io\"}"], 0);
  EXPECT_EQ(metrics["crunchd_queue_depth{pool=\"cpu\"}"], 0);
  EXPECT_EQ(metrics["crunchd_queue_depth{pool=\"io\"}"], 0);
  ASSERT_TRUE(metrics.contains("crunchd_arena_bytes_in_use"));
  EXPECT_EQ(metrics["crunchd_arena_bytes_in_use"], 0) << "arena extents leaked";
  // The arena is 4 MiB: extents leaked by killed workers would leave no room
  // for two 1 MiB tasks at once, which would then wait until their timeout.
  {
    auto stub = d.NewStub();
    const std::string big((1 << 20) - 4096, 'b');
    std::vector<std::thread> probes;
    std::atomic<int> ok{0};
    for (int i = 0; i < 2; ++i) {
      probes.emplace_back([&] {
        v1::TaskResult r;
        ok += testing::RunTask(*stub, "noop", {}, big, &r, 5000).ok() && r.output() == big;
      });
    }
    for (std::thread& t : probes) t.join();
    EXPECT_EQ(ok, 2) << "the arena has no room for two 1 MiB tasks: extents leaked?";
  }

  EXPECT_EQ(d.Stop(), 0) << d.Log();
}

// --- daemon death -------------------------------------------------------------

TEST(DaemonDeath, WorkersExitOnTheirOwnAndTheNextStartIsClean) {
  char tmpl[] = "/tmp/crunchd-death-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string socket = std::string(tmpl) + "/crunchd.sock";
  auto shm_names = [] {
    std::set<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
      names.insert(e.path().filename());
    }
    return names;
  };
  const std::set<std::string> shm_before = shm_names();

  absl::StatusOr<std::unique_ptr<DaemonProcess>> first =
      DaemonProcess::Start({"--workers", "2"}, "", socket);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<pid_t> workers = (*first)->WorkerPids();
  ASSERT_EQ(workers.size(), 2u);
  // One worker busy with a long task, the other stopped: neither can notice
  // anything by itself; the parent-death signal must end both.
  auto stub = (*first)->NewStub();
  grpc::ClientContext context;
  v1::TaskRequest spin;
  spin.set_kind("spin");
  (*spin.mutable_params())["ms"] = "30000";
  v1::TaskRef ref;
  ASSERT_TRUE(stub->Submit(&context, spin, &ref).ok());
  const auto busy_by = Clock::now() + seconds(10);
  while (Clock::now() < busy_by) {
    absl::StatusOr<v1::DaemonStatus> st = (*first)->Status();
    if (st.ok() && st->pools(0).busy() == 1) break;
    std::this_thread::sleep_for(milliseconds(10));
  }
  absl::StatusOr<v1::DaemonStatus> st = (*first)->Status();
  ASSERT_TRUE(st.ok());
  pid_t idle = 0;
  for (const auto& w : st->workers()) {
    if (w.state() == "idle") idle = static_cast<pid_t>(w.pid());
  }
  ASSERT_NE(idle, 0) << "expected one idle worker";
  ASSERT_TRUE(SignalWorker((*first)->pid(), idle, SIGSTOP));

  (*first)->Signal(SIGKILL);
  const auto give_up = Clock::now() + seconds(5);
  bool all_dead = false;
  while (!all_dead && Clock::now() < give_up) {
    all_dead = Dead(workers[0]) && Dead(workers[1]);
    if (!all_dead) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(all_dead) << "a worker outlived its daemon by 5 s";
  ASSERT_TRUE(std::filesystem::exists(socket)) << "(a SIGKILLed daemon leaves its socket)";
  first->reset();  // Reaps the daemon; its temporary directory goes, not the socket's.

  // The next start replaces the stale socket and works.
  absl::StatusOr<std::unique_ptr<DaemonProcess>> second =
      DaemonProcess::Start({"--workers", "2"}, "", socket);
  ASSERT_TRUE(second.ok()) << second.status();
  v1::TaskResult r;
  auto stub2 = (*second)->NewStub();
  ASSERT_TRUE(testing::RunTask(*stub2, "fib", {{"n", "20"}}, "", &r).ok());
  EXPECT_EQ(r.output(), "6765");
  EXPECT_EQ(shm_names(), shm_before) << "something was left in /dev/shm";
  EXPECT_EQ((*second)->Stop(), 0);
  std::filesystem::remove_all(tmpl);
}

// The check behind the parent-death signal: a worker whose daemon died before
// the worker could ask for the signal (so it would never get one) sees that
// its parent is not the daemon named in its handoff and exits at once.
TEST(DaemonDeath, WorkerWhoseDaemonIsAlreadyGoneExitsAtOnce) {
  const std::string worker = std::filesystem::path(CRUNCHD_PATH).parent_path() / "crunch_worker";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Our parent is the test; the handoff names pid 1 as the daemon.
    ::setenv("CRUNCH_IPC", "v1 segment=3 request=4 completion=5 slot=0 parent=1", 1);
    ::execl(worker.c_str(), worker.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const auto give_up = Clock::now() + seconds(5);
  int status = 0;
  pid_t r = 0;
  while ((r = ::waitpid(child, &status, WNOHANG)) == 0 && Clock::now() < give_up) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  if (r == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "the worker did not exit";
  }
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 78);
}

}  // namespace
}  // namespace crunch
