// How crunchd confines its worker processes, through the real daemon and its
// real crunch_worker processes: the quarantine of a kind whose tasks keep
// crashing their worker, the per-worker resource limits and nice value from
// [cpu] worker_*, and the seccomp filter (its denials are proved in
// daemon/worker_seccomp_test.cc; here, that real workers run under it).

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/testing/daemon_process.h"

namespace crunch {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunTask;
using testing::StartDaemon;
namespace v1 = crunch::v1;

// The pid of the worker running a task of `kind` (0 if none within 10 s).
uint32_t BusyWorker(const DaemonProcess& d, const std::string& kind) {
  uint32_t pid = 0;
  d.WaitForStatus([&](const v1::DaemonStatus& s) {
    for (const v1::WorkerInfo& w : s.workers()) {
      if (w.state() == "busy" && w.current_kind() == kind) pid = w.pid();
    }
    return pid != 0;
  });
  return pid;
}

// Starts a long spin, SIGKILLs the worker running it, and returns the call's status.
grpc::Status CrashASpin(const DaemonProcess& d, v1::Crunch::Stub& stub) {
  auto running = std::async(std::launch::async, [&] {
    v1::TaskResult r;
    return RunTask(stub, "spin", {{"ms", "30000"}}, "", &r);
  });
  const uint32_t pid = BusyWorker(d, "spin");
  EXPECT_NE(pid, 0u) << "no worker ever ran the spin";
  if (pid != 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
  return running.get();
}

uint64_t Submit(v1::Crunch::Stub& stub, const std::string& kind,
                const std::map<std::string, std::string>& params) {
  grpc::ClientContext context;
  v1::TaskRequest request;
  request.set_kind(kind);
  for (const auto& [k, v] : params) (*request.mutable_params())[k] = v;
  v1::TaskRef ref;
  grpc::Status s = stub.Submit(&context, request, &ref);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return ref.task_id();
}

grpc::Status Wait(v1::Crunch::Stub& stub, uint64_t id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::TaskRef ref;
  ref.set_task_id(id);
  v1::TaskResult result;
  return stub.Wait(&context, ref, &result);
}

// GET /metrics over a plain TCP connection; the whole reply.
std::string FetchMetrics(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      for (ssize_t n; (n = ::read(fd, buffer, sizeof(buffer))) > 0;) reply.append(buffer, n);
    }
  }
  ::close(fd);
  return reply;
}

std::string ReadProc(uint32_t pid, const std::string& file) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/", file));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The line of /proc/<pid>/limits that starts with `name`, spaces squeezed:
// "Max open files 64 64 files".
std::string LimitLine(uint32_t pid, const std::string& name) {
  std::istringstream limits(ReadProc(pid, "limits"));
  for (std::string line; std::getline(limits, line);) {
    if (line.rfind(name, 0) != 0) continue;
    std::istringstream words(line);
    std::string squeezed;
    for (std::string word; words >> word;)
      absl::StrAppend(&squeezed, squeezed.empty() ? "" : " ", word);
    return squeezed;
  }
  return "";
}

// Field 19 of /proc/<pid>/stat.
int NiceOf(uint32_t pid) {
  const std::string stat = ReadProc(pid, "stat");
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i < 19; ++i) rest >> field;
  int nice = 99;
  rest >> nice;
  return nice;
}

// --- Quarantine ---------------------------------------------------------------

TEST(Quarantine, AKindThatKeepsCrashingItsWorkerIsRefusedForTheCooldownAndNoOtherKindIs) {
  const uint16_t port = testing::FreeLoopbackPort();
  auto d = StartDaemon({"--workers", "1", "--metrics-listen", absl::StrCat("127.0.0.1:", port)},
                       "[cpu]\nquarantine_after = 3\nquarantine_ms = 3000\n");
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  for (int i = 0; i < 2; ++i) {
    grpc::Status s = CrashASpin(*d, *stub);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("signal 9"));
  }
  // The third crash: a spin waiting behind it is failed with it, not run.
  auto running = std::async(std::launch::async, [&] {
    v1::TaskResult r;
    return RunTask(*stub, "spin", {{"ms", "30000"}}, "", &r);
  });
  const uint32_t pid = BusyWorker(*d, "spin");
  ASSERT_NE(pid, 0u);
  const uint64_t waiting = Submit(*stub, "spin", {{"ms", "1"}});
  ::kill(static_cast<pid_t>(pid), SIGKILL);
  EXPECT_EQ(running.get().error_code(), grpc::StatusCode::ABORTED);
  const auto quarantined_at = std::chrono::steady_clock::now();
  grpc::Status behind = Wait(*stub, waiting);
  EXPECT_EQ(behind.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << behind.error_message();
  EXPECT_THAT(behind.error_message(), HasSubstr("kind 'spin' is quarantined"));

  // New tasks of the kind are refused at once, naming the kind, the time
  // left and the crashes.
  v1::TaskResult r;
  grpc::Status refused = RunTask(*stub, "spin", {{"ms", "1"}}, "", &r);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(), HasSubstr("kind 'spin' is quarantined for "));
  EXPECT_THAT(refused.error_message(), HasSubstr(" more ms after 3 consecutive worker crashes"));
  // Other kinds keep the pool.
  grpc::Status fib = RunTask(*stub, "fib", {{"n", "15"}}, "", &r);
  ASSERT_TRUE(fib.ok()) << fib.error_message();
  EXPECT_EQ(r.output(), "610");

  const std::string metrics = FetchMetrics(port);
  EXPECT_THAT(metrics, HasSubstr("\ncrunchd_kind_quarantined{kind=\"spin\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("\ncrunchd_kind_quarantined{kind=\"fib\"} 0\n"));
  EXPECT_THAT(metrics, HasSubstr("\ncrunchd_kind_quarantines_total{kind=\"spin\"} 1\n"));

  // After the cooldown the kind runs again.
  std::this_thread::sleep_until(quarantined_at + std::chrono::milliseconds(3100));
  grpc::Status again = RunTask(*stub, "spin", {{"ms", "1"}}, "", &r);
  EXPECT_TRUE(again.ok()) << again.error_message();
  EXPECT_THAT(FetchMetrics(port), HasSubstr("\ncrunchd_kind_quarantined{kind=\"spin\"} 0\n"));
}

TEST(Quarantine, ASuccessResetsTheCountAndTimeoutsDoNotCount) {
  auto d = StartDaemon({"--workers", "1"}, "[cpu]\nquarantine_after = 3\nquarantine_ms = 60000\n");
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  v1::TaskResult r;
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(CrashASpin(*d, *stub).error_code(), grpc::StatusCode::ABORTED);
    EXPECT_EQ(CrashASpin(*d, *stub).error_code(), grpc::StatusCode::ABORTED);
    // Timeouts kill the worker too, but are not crashes.
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(RunTask(*stub, "spin", {{"ms", "5000"}}, "", &r, 30).error_code(),
                grpc::StatusCode::DEADLINE_EXCEEDED);
    }
    grpc::Status ok = RunTask(*stub, "spin", {{"ms", "1"}}, "", &r);
    EXPECT_TRUE(ok.ok()) << "round " << round << ": " << ok.error_message();
  }
}

TEST(Quarantine, ZeroTurnsItOff) {
  auto d = StartDaemon({"--workers", "1"}, "[cpu]\nquarantine_after = 0\n");
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(CrashASpin(*d, *stub).error_code(), grpc::StatusCode::ABORTED);
  }
  v1::TaskResult r;
  grpc::Status ok = RunTask(*stub, "spin", {{"ms", "1"}}, "", &r);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
}

// --- Limits and seccomp -------------------------------------------------------

// Small arena and limits, so the address-space figures stay readable.
constexpr char kSmallArena[] = R"(
[limits]
max_payload_bytes = 8388608
max_output_bytes = 8388608
)";

TEST(WorkerLimits, RealWorkersRunWithTheConfiguredLimitsNiceValueAndSeccompFilter) {
  auto d = StartDaemon({"--workers", "2"}, absl::StrCat(R"(
[cpu]
arena_bytes = 67108864
worker_address_space_bytes = 268435456
worker_cpu_seconds = 600
worker_nice = 5
worker_open_files = 64
)",
                                                        kSmallArena));
  ASSERT_TRUE(d);
  errno = 0;
  const int our_nice = ::getpriority(PRIO_PROCESS, 0);
  const std::vector<pid_t> workers = d->WorkerPids();
  ASSERT_EQ(workers.size(), 2u);
  for (pid_t p : workers) {
    const auto pid = static_cast<uint32_t>(p);
    // A worker attaches first, then sets its limits and filter, and only then
    // reads its first task: give it that moment (the daemon may already list it).
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ReadProc(pid, "status").find("\nSeccomp:\t2\n") == std::string::npos &&
           std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(LimitLine(pid, "Max cpu time"), "Max cpu time 600 601 seconds");
    EXPECT_EQ(LimitLine(pid, "Max open files"), "Max open files 64 64 files");
    // 256 MiB on top of what the worker had mapped: its code and the 64 MiB arena.
    std::istringstream as(LimitLine(pid, "Max address space").substr(18));
    uint64_t soft = 0, hard = 0;
    as >> soft >> hard;
    EXPECT_EQ(soft, hard);
    EXPECT_GE(soft, (256ull + 64) << 20);
#ifndef CRUNCH_SANITIZED  // Whose shadow mappings are terabytes "mapped at start".
    EXPECT_LE(soft, (256ull + 64 + 512) << 20);
#endif
    EXPECT_EQ(NiceOf(pid), std::min(19, our_nice + 5));
    const std::string status = ReadProc(pid, "status");
    EXPECT_THAT(status, HasSubstr("\nSeccomp:\t2\n"));
    EXPECT_THAT(status, HasSubstr("\nNoNewPrivs:\t1\n"));
  }
  // And they still work.
  auto stub = d->NewStub();
  v1::TaskResult r;
  ASSERT_TRUE(RunTask(*stub, "sha256", {}, "abc", &r).ok());
  EXPECT_EQ(r.output(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(WorkerLimits, SeccompCanBeTurnedOffAndNoLimitIsSetByDefault) {
  auto d = StartDaemon({"--workers", "1"}, "[cpu]\nseccomp = false\n");
  ASSERT_TRUE(d);
  const uint32_t pid = static_cast<uint32_t>(d->WorkerPids().at(0));
  EXPECT_THAT(ReadProc(pid, "status"), HasSubstr("\nSeccomp:\t0\n"));
  EXPECT_EQ(NiceOf(pid), NiceOf(static_cast<uint32_t>(d->pid())));
  EXPECT_EQ(LimitLine(pid, "Max cpu time"),
            LimitLine(static_cast<uint32_t>(d->pid()), "Max cpu time"));
}

TEST(WorkerLimits, AnAllocationPastTheAddressSpaceFailsTheTaskCleanlyAndTheWorkerGoesOn) {
#ifdef CRUNCH_SANITIZED
  GTEST_SKIP() << "an address-space limit cannot hold under a sanitizer's shadow mappings "
                  "(terabytes reserved at start), and its allocator aborts instead of failing";
#endif
  auto d = StartDaemon({"--workers", "1"}, absl::StrCat("[cpu]\narena_bytes = 67108864\n"
                                                        "worker_address_space_bytes = 33554432\n",
                                                        kSmallArena));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  const pid_t worker = d->WorkerPids().at(0);
  // 8 MiB that does not compress away; zstd at level 19 wants ~90 MiB of tables for it.
  std::string payload(8 << 20, '\0');
  std::mt19937_64 random(42);
  for (char& c : payload) c = static_cast<char>('a' + random() % 16);
  v1::TaskResult r;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = RunTask(*stub, "zstd.compress", {{"level", "19"}}, payload, &r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("zstd.compress"));
  EXPECT_THAT(s.error_message(), HasSubstr("memory"));
  // Within its means the same worker compresses fine.
  s = RunTask(*stub, "zstd.compress", {{"level", "1"}}, payload.substr(0, 65536), &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.worker_pid(), static_cast<uint32_t>(worker));
}

TEST(WorkerLimits, ACpuLimitKillsAWorkerThatRunsOutAndRecyclesOnesThatNearIt) {
  auto d = StartDaemon({"--workers", "1"}, "[cpu]\nworker_cpu_seconds = 2\n");
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  v1::TaskResult r;
  // One task that needs more than the whole budget (primes up to 10^10: many
  // seconds of CPU; a CPU-bound kind, since spin counts wall time): SIGXCPU.
  grpc::Status s = RunTask(*stub, "primes", {{"n", "10000000000"}}, "", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("signal 24"));
  // Tasks that together need more, each well under half the budget: the
  // worker is replaced between them once it has used half (checked every
  // 250 ms), so none is killed. Each task is sized to this build's speed
  // (a sanitizer makes fib 2-15x slower): about 0.2 s, from one fib(30)
  // timed here and fib(n + 1) costing 1.618 fib(n).
  s = RunTask(*stub, "fib", {{"n", "30"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  const double fib30_s = std::max<double>(static_cast<double>(r.run_us()), 100) / 1e6;
  const int n =
      std::clamp(30 + static_cast<int>(std::log(0.2 / fib30_s) / std::log(1.618)), 20, 42);
  std::set<uint32_t> pids{r.worker_pid()};
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int i = 0; pids.size() < 2 && std::chrono::steady_clock::now() < give_up; ++i) {
    s = RunTask(*stub, "fib", {{"n", std::to_string(n)}}, "", &r);
    EXPECT_TRUE(s.ok()) << "task " << i << " (fib(" << n << ")): " << s.error_message();
    if (!s.ok()) break;
    pids.insert(r.worker_pid());
  }
  EXPECT_GE(pids.size(), 2u) << d->Log();
  EXPECT_THAT(d->Log(), HasSubstr("half its [cpu] worker_cpu_seconds 2"));
}

}  // namespace
}  // namespace crunch
