// Task plugins through the real daemon: the example plugins listed and called
// over gRPC, a crashing, hanging and leaking plugin isolated like a built-in
// kind, plugins crunchd refuses to start with, and SIGHUP swapping a plugin
// while tasks run.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testing/daemon_process.h"

// The plugins' paths come from tests/plugins/CMakeLists.txt (crunch::test_plugins):
// CRUNCH_EXAMPLE_PLUGIN_{WORDFREQ,IMAGEKIT} are the examples in
// daemon/plugin/examples, CRUNCH_TEST_PLUGIN_* the misbehaving ones in tests/plugins.

namespace crunch {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunTask;
using testing::StartDaemon;
namespace fs = std::filesystem;
namespace v1 = crunch::v1;

std::string PluginsToml(const std::vector<std::string>& paths) {
  std::vector<std::string> quoted;
  for (const std::string& p : paths) quoted.push_back(absl::StrCat("\"", p, "\""));
  return absl::StrCat("[plugins]\npaths = [", absl::StrJoin(quoted, ", "), "]\n");
}

std::vector<v1::KindInfo> ListKinds(v1::Crunch::Stub& stub) {
  grpc::ClientContext context;
  v1::ListKindsReply reply;
  EXPECT_TRUE(stub.ListKinds(&context, v1::ListKindsRequest(), &reply).ok());
  return {reply.kinds().begin(), reply.kinds().end()};
}

const v1::KindInfo* FindKind(const std::vector<v1::KindInfo>& kinds, const std::string& name) {
  for (const v1::KindInfo& k : kinds) {
    if (k.name() == name) return &k;
  }
  return nullptr;
}

uint64_t TasksDone(const DaemonProcess& d) {
  const absl::StatusOr<v1::DaemonStatus> status = d.Status();
  EXPECT_TRUE(status.ok()) << status.status();
  if (!status.ok()) return 0;
  uint64_t n = 0;
  for (const v1::WorkerInfo& w : status->workers()) n += w.tasks_done();
  return n;
}

// A binary PGM image of `width` x `height` with pixel (x, y) = (x + y) % 256.
std::string Pgm(int width, int height) {
  std::string image = absl::StrCat("P5\n", width, " ", height, "\n255\n");
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) image.push_back(static_cast<char>((x + y) % 256));
  }
  return image;
}

// A temporary directory for plugin files the test swaps.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/crunchd-plugins-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

  // Copies `from` to `name` atomically (a new inode, as an install does), so
  // processes that mapped the old file keep it.
  void Install(const std::string& from, const std::string& name) const {
    const fs::path tmp = path_ / (name + ".new");
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
    fs::rename(tmp, path_ / name);
  }

 private:
  fs::path path_;
};

// --- The example plugins, called like built-in kinds -----------------------

TEST(PluginKinds, ListKindsShowsPluginKindsWithTheirSourceAndSchema) {
  auto d =
      StartDaemon({"--workers", "1"},
                  PluginsToml({CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, CRUNCH_EXAMPLE_PLUGIN_IMAGEKIT}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  const std::vector<v1::KindInfo> kinds = ListKinds(*stub);
  const v1::KindInfo* wordfreq = FindKind(kinds, "text.wordfreq");
  ASSERT_NE(wordfreq, nullptr);
  EXPECT_EQ(wordfreq->pool(), "cpu");
  EXPECT_THAT(wordfreq->source(), HasSubstr(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ));
  EXPECT_THAT(wordfreq->source(), ::testing::StartsWith("plugin wordfreq "));
  ASSERT_EQ(wordfreq->params_size(), 2);
  EXPECT_EQ(wordfreq->params(0).name(), "top");
  EXPECT_EQ(wordfreq->params(0).type(), "int");
  EXPECT_EQ(wordfreq->params(0).default_value(), "10");
  EXPECT_EQ(wordfreq->params(0).max(), 10000);
  for (const char* name : {"image.blur", "image.resize"}) {
    const v1::KindInfo* k = FindKind(kinds, name);
    ASSERT_NE(k, nullptr) << name;
    EXPECT_THAT(k->source(), HasSubstr(CRUNCH_EXAMPLE_PLUGIN_IMAGEKIT));
  }
  const v1::KindInfo* fib = FindKind(kinds, "fib");
  ASSERT_NE(fib, nullptr);
  EXPECT_EQ(fib->source(), "built-in");
}

TEST(PluginKinds, ExamplePluginsRunThroughGrpc) {
  auto d =
      StartDaemon({"--workers", "2"},
                  PluginsToml({CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, CRUNCH_EXAMPLE_PLUGIN_IMAGEKIT}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "text.wordfreq", {{"top", "2"}}, "b a B, c b! a", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "3\tb\n2\ta\n");

  s = RunTask(*stub, "image.resize", {{"width", "3"}, {"height", "2"}}, Pgm(64, 48), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(r.output(), ::testing::StartsWith("P5\n3 2\n255\n"));
  EXPECT_EQ(r.output().size(), std::string("P5\n3 2\n255\n").size() + 6);

  s = RunTask(*stub, "image.blur", {}, Pgm(40, 30), &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output().size(), Pgm(40, 30).size());
}

TEST(PluginKinds, BadParametersAreRefusedBeforeAWorkerSeesThemAndPluginErrorsArriveUnchanged) {
  auto d =
      StartDaemon({"--workers", "1"},
                  PluginsToml({CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, CRUNCH_EXAMPLE_PLUGIN_IMAGEKIT}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  v1::TaskResult r;
  ASSERT_TRUE(RunTask(*stub, "text.wordfreq", {}, "warm up", &r).ok());
  const uint64_t done = TasksDone(*d);

  grpc::Status s = RunTask(*stub, "text.wordfreq", {{"top", "0"}}, "x", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("top"));
  EXPECT_THAT(s.error_message(), HasSubstr("10000"));
  s = RunTask(*stub, "image.resize", {{"width", "3"}}, Pgm(4, 4), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("height"));
  s = RunTask(*stub, "text.wordfreq", {{"colour", "red"}}, "x", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("colour"));
  EXPECT_EQ(TasksDone(*d), done) << "a refused call reached a worker";

  // The plugin's own status and message reach the caller as it set them.
  s = RunTask(*stub, "image.blur", {}, "GIF89a not a PGM", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("P5"));
  EXPECT_EQ(TasksDone(*d), done + 1);
}

// --- A misbehaving plugin gets the isolation of the built-ins ----------------

TEST(PluginIsolation, ACrashAbortsTheTaskReplacesTheWorkerAndRepeatedCrashesQuarantineTheKind) {
  auto d = StartDaemon(
      {"--workers", "1"},
      absl::StrCat(PluginsToml({CRUNCH_TEST_PLUGIN_MISBEHAVING, CRUNCH_EXAMPLE_PLUGIN_WORDFREQ}),
                   "[cpu]\nquarantine_after = 3\nquarantine_ms = 60000\n"));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  v1::TaskResult r;
#ifdef CRUNCH_SANITIZED
  // The sanitizer's own SEGV handler reports the crash and ends the worker
  // its way (abort_on_error in the test presets): a signal, not always 11.
  const char* signals[] = {"killed by signal", "signal 6", "killed by signal"};
#else
  const char* signals[] = {"signal 11", "signal 6", "signal 11"};
#endif
  const char* hows[] = {"segv", "abort", "segv"};
  for (int i = 0; i < 3; ++i) {
    const std::vector<pid_t> before = d->WorkerPids();
    grpc::Status s = RunTask(*stub, "bad.crash", {{"how", hows[i]}}, "", &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(signals[i]));
    ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus& st) {
      return st.workers_size() == 1 && st.workers(0).state() == "idle" &&
             static_cast<pid_t>(st.workers(0).pid()) != before.at(0);
    })) << "the crashed worker was not replaced";
  }
  grpc::Status s = RunTask(*stub, "bad.crash", {}, "", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("kind 'bad.crash' is quarantined"));
  // Other kinds, of the same plugin and of another, go on.
  s = RunTask(*stub, "bad.slow_ok", {{"ms", "1"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "ok");
  ASSERT_TRUE(RunTask(*stub, "text.wordfreq", {}, "a", &r).ok());
}

TEST(PluginIsolation, AHangEndsDeadlineExceededAndItsWorkerIsReplaced) {
  auto d = StartDaemon({"--workers", "1"}, PluginsToml({CRUNCH_TEST_PLUGIN_MISBEHAVING}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  const pid_t before = d->WorkerPids().at(0);
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "bad.hang", {}, "", &r, /*timeout_ms=*/300);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus& st) {
    return st.workers(0).state() == "idle" && static_cast<pid_t>(st.workers(0).pid()) != before;
  }));
  s = RunTask(*stub, "bad.slow_ok", {{"ms", "1"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

// Runs `kind` and abandons the call once a worker is busy with it, which
// cancels the task; returns the call's status.
grpc::Status RunAndAbandon(const DaemonProcess& d, v1::Crunch::Stub& stub, const std::string& kind,
                           const std::map<std::string, std::string>& params) {
  grpc::ClientContext context;
  auto call = std::async(std::launch::async, [&] {
    v1::TaskRequest request;
    request.set_kind(kind);
    for (const auto& [k, v] : params) (*request.mutable_params())[k] = v;
    v1::TaskResult r;
    return stub.Run(&context, request, &r);
  });
  EXPECT_TRUE(d.WaitForStatus([](const v1::DaemonStatus& s) { return s.pools(0).busy() == 1; }));
  context.TryCancel();
  return call.get();
}

TEST(PluginIsolation, ACancelStopsAPollingKernelAndKillsOnlyAWorkerThatIgnoresIt) {
  auto d = StartDaemon({"--workers", "1"}, PluginsToml({CRUNCH_TEST_PLUGIN_MISBEHAVING}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  const pid_t before = d->WorkerPids().at(0);
  const auto idle = [](const v1::DaemonStatus& st) {
    return st.pools(0).busy() == 0 && st.workers(0).state() == "idle" &&
           st.counters().cancelled() >= 1;
  };

  // bad.slow_ok polls crunch_task_should_stop: it sees the cancel and ends,
  // and its worker lives on.
  grpc::Status s = RunAndAbandon(*d, *stub, "bad.slow_ok", {{"ms", "30000"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
  ASSERT_TRUE(d->WaitForStatus(idle));
  EXPECT_EQ(d->WorkerPids(), std::vector<pid_t>{before});

  // bad.hang never polls: its worker is killed shortly after the cancel and
  // replaced, long before the task's timeout.
  s = RunAndAbandon(*d, *stub, "bad.hang", {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::CANCELLED) << s.error_message();
  ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus& st) {
    return idle(st) && static_cast<pid_t>(st.workers(0).pid()) != before;
  }));
  v1::TaskResult r;
  s = RunTask(*stub, "bad.slow_ok", {{"ms", "1"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "ok");
}

TEST(PluginIsolation, ALeakIsBoundedByTheWorkersAddressSpace) {
  auto d = StartDaemon(
      {"--workers", "1"},
      absl::StrCat(PluginsToml({CRUNCH_TEST_PLUGIN_MISBEHAVING}),
                   "[cpu]\nworker_address_space_bytes = 1073741824\nquarantine_after = 0\n"));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "bad.leak", {{"mib", "64"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // Over the limit the allocation fails inside the worker; the task ends with
  // an error and the daemon, and the next task, are unaffected.
  s = RunTask(*stub, "bad.leak", {{"mib", "2048"}}, "", &r);
  EXPECT_THAT(s.error_code(),
              ::testing::AnyOf(grpc::StatusCode::ABORTED, grpc::StatusCode::RESOURCE_EXHAUSTED))
      << s.error_message();
  ASSERT_TRUE(
      d->WaitForStatus([](const v1::DaemonStatus& st) { return st.workers(0).state() == "idle"; }));
  s = RunTask(*stub, "bad.slow_ok", {{"ms", "1"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

// --- Plugins crunchd refuses to start with ----------------------------------

std::string StartFailure(const std::vector<std::string>& paths) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d =
      DaemonProcess::Start({"--workers", "1"}, PluginsToml(paths));
  EXPECT_FALSE(d.ok()) << "crunchd started with plugins " << absl::StrJoin(paths, ", ");
  return d.ok() ? "" : std::string(d.status().message());
}

TEST(PluginLoading, APluginForAnotherAbiVersionIsRefusedNamingBothVersions) {
  const std::string log = StartFailure({CRUNCH_TEST_PLUGIN_WRONG_ABI});
  EXPECT_THAT(log, HasSubstr(CRUNCH_TEST_PLUGIN_WRONG_ABI));
  EXPECT_THAT(log, HasSubstr("ABI version 2"));
  EXPECT_THAT(log, HasSubstr("version 1"));
}

TEST(PluginLoading, APluginThatRefusesToLoadSaysWhy) {
  const std::string log = StartFailure({CRUNCH_TEST_PLUGIN_REFUSES});
  EXPECT_THAT(log, HasSubstr(CRUNCH_TEST_PLUGIN_REFUSES));
  EXPECT_THAT(log, HasSubstr("/nonexistent"));
}

TEST(PluginLoading, TwoPluginsClaimingOneKindNameBothFiles) {
  const std::string log =
      StartFailure({CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, CRUNCH_TEST_PLUGIN_DUPLICATE});
  EXPECT_THAT(log, HasSubstr("kind 'text.wordfreq' is defined twice"));
  EXPECT_THAT(log, HasSubstr(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ));
  EXPECT_THAT(log, HasSubstr(CRUNCH_TEST_PLUGIN_DUPLICATE));
}

TEST(PluginLoading, AnInitPastInitTimeoutMsStopsTheStartSayingSo) {
  TempDir dir;
  // The gate never opens: slow_init.so's init waits until the probe gives up.
  ASSERT_EQ(::setenv("CRUNCH_TEST_SLOW_INIT_GATE", (dir / "gate").c_str(), 1), 0);
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d = DaemonProcess::Start(
      {"--workers", "1"},
      absl::StrCat(PluginsToml({CRUNCH_TEST_PLUGIN_SLOW_INIT}), "init_timeout_ms = 300\n"));
  ::unsetenv("CRUNCH_TEST_SLOW_INIT_GATE");
  ASSERT_FALSE(d.ok()) << "crunchd started though its plugin's init never ended";
  EXPECT_THAT(d.status().message(), HasSubstr("within 300 ms"));
  EXPECT_THAT(d.status().message(), HasSubstr("crunch_plugin_init may hang"));
}

TEST(PluginLoading, AMissingOrRelativePathIsRefusedNamingIt) {
  EXPECT_THAT(StartFailure({"/nonexistent/plugin.so"}), HasSubstr("/nonexistent/plugin.so"));
  const std::string log = StartFailure({"relative/plugin.so"});
  EXPECT_THAT(log, HasSubstr("relative/plugin.so"));
  EXPECT_THAT(log, HasSubstr("absolute"));
}

// --- SIGHUP: added, removed and rebuilt plugins -----------------------------

// Counts the workers serving (idle or busy) in every Status until `stop`.
class ServingWatcher {
 public:
  explicit ServingWatcher(const DaemonProcess& d)
      : thread_([this, &d] {
          while (!stop_) {
            absl::StatusOr<v1::DaemonStatus> s = d.Status();
            if (s.ok()) {
              int serving = 0;
              for (const v1::WorkerInfo& w : s->workers()) {
                serving += w.state() == "idle" || w.state() == "busy";
              }
              min_serving_ = std::min(min_serving_.load(), serving);
              ++polls_;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        }) {}
  ~ServingWatcher() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int min_serving() const { return min_serving_; }
  int polls() const { return polls_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> min_serving_{1 << 30};
  std::atomic<int> polls_{0};
  std::thread thread_;
};

TEST(PluginReload, SighupSwapsARebuiltPluginWhileTasksRunAndLosesNone) {
  TempDir dir;
  dir.Install(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, "text.so");
  auto d = StartDaemon({"--workers", "2"}, PluginsToml({dir / "text.so"}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  const std::vector<pid_t> old_workers = d->WorkerPids();
  ASSERT_EQ(old_workers.size(), 2u);

  // Four callers run text.wordfreq back to back through the swap.
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0};
  std::vector<std::string> errors;
  std::mutex errors_mu;
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      auto caller_stub = d->NewStub();
      while (!stop) {
        v1::TaskResult r;
        grpc::Status s =
            RunTask(*caller_stub, "text.wordfreq", {{"top", "1"}}, "to be or not to be", &r);
        if (s.ok() && r.output() == "2\tbe\n") {
          ++ok;
        } else {
          std::lock_guard lock(errors_mu);
          errors.push_back(absl::StrCat(s.error_code(), " ", s.error_message(), " ", r.output()));
        }
      }
    });
  }
  ServingWatcher watcher(*d);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // The rebuilt plugin: the same kind, and a new one.
  dir.Install(CRUNCH_TEST_PLUGIN_DUPLICATE, "text.so");
  d->Signal(SIGHUP);
  ASSERT_TRUE(d->WaitForStatus(
      [&](const v1::DaemonStatus& st) {
        if (st.workers_size() != 2) return false;
        for (const v1::WorkerInfo& w : st.workers()) {
          if (std::find(old_workers.begin(), old_workers.end(), static_cast<pid_t>(w.pid())) !=
              old_workers.end()) {
            return false;
          }
        }
        return true;
      },
      std::chrono::seconds(30)))
      << d->Log();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (std::thread& t : callers) t.join();
  watcher.Stop();

  EXPECT_THAT(errors, ::testing::IsEmpty());
  EXPECT_GT(ok.load(), 20);
  EXPECT_GT(watcher.polls(), 5);
  EXPECT_GE(watcher.min_serving(), 2) << "the pool dropped below its size during the reload";
  const std::vector<v1::KindInfo> kinds = ListKinds(*stub);
  ASSERT_NE(FindKind(kinds, "dup.unique"), nullptr);
  EXPECT_THAT(FindKind(kinds, "text.wordfreq")->source(),
              ::testing::StartsWith("plugin duplicate"));
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "dup.unique", {}, "", &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(d->Log(), HasSubstr("reload: every worker serves the new kinds"));
}

TEST(PluginReload, SighupAddsAndRemovesPluginsFromTheConfig) {
  TempDir dir;
  const std::string config = dir / "crunchd.toml";
  std::ofstream(config) << PluginsToml({CRUNCH_EXAMPLE_PLUGIN_WORDFREQ});
  auto d = StartDaemon({"--workers", "1", "--config", config});
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  ASSERT_EQ(FindKind(ListKinds(*stub), "image.blur"), nullptr);

  std::ofstream(config) << PluginsToml({CRUNCH_EXAMPLE_PLUGIN_IMAGEKIT});
  d->Signal(SIGHUP);
  ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus&) {
    return FindKind(ListKinds(*stub), "image.blur") != nullptr;
  }));
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "text.wordfreq", {}, "a", &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  s = RunTask(*stub, "image.blur", {}, Pgm(8, 8), &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

// A plugin's init may take seconds (reading a model); the reload reads the new
// kinds on a thread of its own, so calls are answered meanwhile. Here the
// probe cannot end until the test opens the gate, after its calls.
TEST(PluginReload, CallsAreAnsweredWhileAReloadWaitsForASlowPluginInit) {
  TempDir dir;
  const std::string gate = dir / "gate";
  ASSERT_EQ(::setenv("CRUNCH_TEST_SLOW_INIT_GATE", gate.c_str(), 1), 0);
  const std::string config = dir / "crunchd.toml";
  std::ofstream(config) << PluginsToml({});
  auto d = StartDaemon({"--workers", "1", "--config", config});
  ::unsetenv("CRUNCH_TEST_SLOW_INIT_GATE");
  ASSERT_TRUE(d);
  auto stub = d->NewStub();

  std::ofstream(config) << PluginsToml({CRUNCH_TEST_PLUGIN_SLOW_INIT});
  d->Signal(SIGHUP);
  // Logged once the reload returned to the event loop, the probe still waiting.
  ASSERT_TRUE(d->WaitForLog("configuration reloaded"))
      << "the reload did not return while the plugin's init was waiting";
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "fib", {{"n", "10"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "55");
  EXPECT_EQ(FindKind(ListKinds(*stub), "slow.ready"), nullptr);

  std::ofstream(gate) << "open";
  ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus&) {
    return FindKind(ListKinds(*stub), "slow.ready") != nullptr;
  })) << d->Log();
  s = RunTask(*stub, "slow.ready", {}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "ready");
}

// After a reload that adds a kind, its tasks wait for a worker of the new
// generation, whose plugin init may take its time; the old workers meanwhile
// run the tasks queued behind them.
TEST(PluginReload, ATaskWaitingForANewKindsWorkerDoesNotHoldUpTheQueue) {
  TempDir dir;
  const std::string gate = dir / "gate";
  ASSERT_EQ(::setenv("CRUNCH_TEST_SLOW_INIT_GATE", gate.c_str(), 1), 0);
  ASSERT_EQ(::setenv("CRUNCH_TEST_SLOW_INIT_FIRST_FREE", "1", 1), 0);
  const std::string config = dir / "crunchd.toml";
  std::ofstream(config) << PluginsToml({});
  auto d = StartDaemon({"--workers", "1", "--config", config});
  ::unsetenv("CRUNCH_TEST_SLOW_INIT_GATE");
  ::unsetenv("CRUNCH_TEST_SLOW_INIT_FIRST_FREE");
  ASSERT_TRUE(d);
  auto stub = d->NewStub();

  // The probe loads slow_init.so at once; the new worker waits for the gate.
  std::ofstream(config) << PluginsToml({CRUNCH_TEST_PLUGIN_SLOW_INIT});
  d->Signal(SIGHUP);
  ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus&) {
    return FindKind(ListKinds(*stub), "slow.ready") != nullptr;
  })) << d->Log();
  auto slow = std::async(std::launch::async, [&] {
    v1::TaskResult r;
    grpc::Status s = RunTask(*d->NewStub(), "slow.ready", {}, "", &r);
    return s.ok() ? r.output() : absl::StrCat("error: ", s.error_message());
  });
  ASSERT_TRUE(d->WaitForStatus([](const v1::DaemonStatus& s) { return s.pools(0).queued() == 1; }));
  // Behind it in the queue, a built-in kind runs on the old worker.
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "fib", {{"n", "10"}}, "", &r, /*timeout_ms=*/5000);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "55");

  std::ofstream(gate) << "open";
  EXPECT_EQ(slow.get(), "ready");
}

TEST(PluginReload, ABrokenPluginOnSighupKeepsTheRunningKindsAndWorkers) {
  TempDir dir;
  dir.Install(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, "text.so");
  auto d = StartDaemon({"--workers", "1"}, PluginsToml({dir / "text.so"}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  const std::vector<pid_t> workers = d->WorkerPids();
  dir.Install(CRUNCH_TEST_PLUGIN_WRONG_ABI, "text.so");
  d->Signal(SIGHUP);
  d->WaitForLog("keeping the running kinds");
  EXPECT_THAT(d->Log(), HasSubstr("SIGHUP: keeping the running kinds and workers"));
  EXPECT_THAT(d->Log(), HasSubstr("ABI version"));
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "text.wordfreq", {{"top", "1"}}, "a a b", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "2\ta\n");
  EXPECT_EQ(d->WorkerPids(), workers);
}

// Kills the only worker and waits until its replacement is idle; returns its pid.
pid_t ReplaceTheWorker(const DaemonProcess& d) {
  const std::vector<pid_t> before = d.WorkerPids();
  EXPECT_EQ(before.size(), 1u);
  if (before.size() != 1) return 0;
  EXPECT_EQ(::kill(before[0], SIGKILL), 0);
  pid_t now = 0;
  const bool replaced = d.WaitForStatus([&](const v1::DaemonStatus& st) {
    if (st.workers_size() != 1 || st.workers(0).state() != "idle") return false;
    now = static_cast<pid_t>(st.workers(0).pid());
    return now != before[0];
  });
  EXPECT_TRUE(replaced) << "no replacement worker serves\n" << d.Log();
  return replaced ? now : 0;
}

// What the worker `pid` has open that lies under `dir`.
std::vector<std::string> OpenFilesUnder(pid_t pid, const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const fs::directory_entry& fd :
       fs::directory_iterator(absl::StrCat("/proc/", pid, "/fd"), ec)) {
    const fs::path target = fs::read_symlink(fd.path(), ec);
    if (!ec && target.string().starts_with(dir)) found.push_back(target.string());
  }
  return found;
}

TEST(PluginReload, ARespawnedWorkerLoadsTheFileItsKindsCameFrom) {
  TempDir dir;
  dir.Install(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, "text.so");
  auto d = StartDaemon({"--workers", "1"}, PluginsToml({dir / "text.so"}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  // Rebuilt on disk (as `cmake --build` does before `systemctl reload`), not
  // reloaded yet; then the worker dies, as for a timeout.
  dir.Install(CRUNCH_TEST_PLUGIN_DUPLICATE, "text.so");
  const pid_t replacement = ReplaceTheWorker(*d);
  ASSERT_NE(replacement, 0);

  // The replacement serves the running kinds, from the file they came from.
  for (int i = 0; i < 2; ++i) {
    v1::TaskResult r;
    grpc::Status s = RunTask(*stub, "text.wordfreq", {{"top", "1"}}, "to be or not to be", &r);
    ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d->Log();
    EXPECT_EQ(r.output(), "2\tbe\n");
  }
  const absl::StatusOr<v1::DaemonStatus> status = d->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(status->workers_size(), 1);
  EXPECT_EQ(status->workers(0).restarts(), 1u) << d->Log();
  EXPECT_EQ(static_cast<pid_t>(status->workers(0).pid()), replacement);
  v1::TaskResult r;
  EXPECT_EQ(RunTask(*stub, "dup.unique", {}, "", &r).error_code(), grpc::StatusCode::NOT_FOUND);
  // It keeps no descriptor of the plugin file once loaded.
  EXPECT_THAT(OpenFilesUnder(replacement, dir / ""), ::testing::IsEmpty());

  // A reload still brings the new file.
  d->Signal(SIGHUP);
  ASSERT_TRUE(d->WaitForStatus([&](const v1::DaemonStatus&) {
    return FindKind(ListKinds(*stub), "dup.unique") != nullptr;
  })) << d->Log();
  ASSERT_TRUE(d->WaitForStatus(
      [&](const v1::DaemonStatus& st) {
        return st.workers_size() == 1 && st.workers(0).state() == "idle" &&
               static_cast<pid_t>(st.workers(0).pid()) != replacement;
      },
      std::chrono::seconds(30)))
      << d->Log();
  grpc::Status s = RunTask(*stub, "dup.unique", {}, "", &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST(PluginReload, AfterAFailedReloadAReplacedWorkerServesTheRunningKinds) {
  TempDir dir;
  dir.Install(CRUNCH_EXAMPLE_PLUGIN_WORDFREQ, "text.so");
  auto d = StartDaemon({"--workers", "1"}, PluginsToml({dir / "text.so"}));
  ASSERT_TRUE(d);
  auto stub = d->NewStub();
  dir.Install(CRUNCH_TEST_PLUGIN_WRONG_ABI, "text.so");
  d->Signal(SIGHUP);
  d->WaitForLog("keeping the running kinds");
  ASSERT_THAT(d->Log(), HasSubstr("SIGHUP: keeping the running kinds and workers"));

  ASSERT_NE(ReplaceTheWorker(*d), 0);
  v1::TaskResult r;
  grpc::Status s = RunTask(*stub, "text.wordfreq", {{"top", "1"}}, "to be or not to be", &r);
  ASSERT_TRUE(s.ok()) << s.error_message() << "\n" << d->Log();
  EXPECT_EQ(r.output(), "2\tbe\n");
  const absl::StatusOr<v1::DaemonStatus> status = d->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->workers(0).restarts(), 1u) << d->Log();
}

}  // namespace
}  // namespace crunch
