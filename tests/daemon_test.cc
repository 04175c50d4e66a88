// crunchd as a program: flags and configuration checks, its socket, SIGHUP
// reload, the gRPC health service, JSON logs, and refusing to start twice.

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/daemon_process.h"

namespace crunch {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
namespace v1 = crunch::v1;

struct CommandResult {
  int exit_status = -1;
  std::string output;  // stdout and stderr together
};

CommandResult RunCrunchd(const std::string& args) {
  CommandResult r;
  FILE* p = ::popen((std::string(CRUNCHD_PATH) + " " + args + " 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string WriteTemp(const std::string& text) {
  char path[] = "/tmp/crunchd-test-config-XXXXXX";
  const int fd = ::mkstemp(path);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(Crunchd, VersionAndHelp) {
  CommandResult v = RunCrunchd("--version");
  EXPECT_EQ(v.exit_status, 0);
  EXPECT_THAT(v.output, ::testing::StartsWith("crunchd "));
  CommandResult h = RunCrunchd("--help");
  EXPECT_EQ(h.exit_status, 0);
  for (const char* flag : {"--config", "--listen", "--workers", "--io-threads", "--log-level",
                           "--check-config", "--version"}) {
    EXPECT_THAT(h.output, HasSubstr(flag));
  }
}

TEST(Crunchd, CheckConfigAcceptsAGoodFileAndPrintsTheResult) {
  const std::string path = WriteTemp("[cpu]\nworkers = 3\n[io]\ndata_dir = \"/tmp\"\n");
  CommandResult r = RunCrunchd("--check-config --config " + path);
  EXPECT_EQ(r.exit_status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("workers = 3"));
  ::unlink(path.c_str());
}

TEST(Crunchd, CheckConfigRejectsABadFileNamingTheKey) {
  const std::string path = WriteTemp("[cpu]\nworkers = 5000\n");
  CommandResult r = RunCrunchd("--check-config --config " + path);
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.output, HasSubstr("[cpu] workers must be an integer in 1..1024"));
  ::unlink(path.c_str());

  const std::string unknown = WriteTemp("[cpu]\nworker = 2\n");
  r = RunCrunchd("--check-config --config " + unknown);
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.output, HasSubstr("unknown key 'worker'"));
  ::unlink(unknown.c_str());
}

TEST(Crunchd, BadFlagsAreRejectedWithTheReason) {
  CommandResult r = RunCrunchd("--check-config --workers 5000");
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.output, HasSubstr("--workers"));
  r = RunCrunchd("--check-config --listen nonsense");
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.output, HasSubstr("--listen"));
  r = RunCrunchd("--check-config --log-level loud");
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.output, HasSubstr("--log-level"));
}

TEST(Crunchd, SocketIsGroupOnly) {
  auto d = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(d.ok()) << d.status();
  struct stat st;
  ASSERT_EQ(::stat((*d)->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(Crunchd, SecondInstanceOnTheSameSocketIsRefused) {
  auto d = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(d.ok()) << d.status();
  CommandResult r = RunCrunchd("--workers 1 --listen " + (*d)->address());
  EXPECT_NE(r.exit_status, 0);
  EXPECT_THAT(r.output, HasSubstr("already listening"));
  EXPECT_TRUE((*d)->Status().ok()) << "the first daemon must keep its socket";
}

TEST(Crunchd, StaleSocketFromACrashIsReplaced) {
  auto first = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::vector<pid_t> workers = (*first)->WorkerPids();
  (*first)->Signal(SIGKILL);  // Leaves its socket file behind.
  // Its workers follow it (parent-death signal).
  for (int i = 0; i < 200 && ::kill(workers.at(0), 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(::kill(workers.at(0), 0), 0) << "a worker outlived its daemon";
  struct stat st;
  ASSERT_EQ(::stat((*first)->socket_path().c_str(), &st), 0) << "no stale socket to test with";
  // A new daemon on the same path replaces the stale socket and serves.
  auto second = DaemonProcess::Start({"--workers", "1"}, "", (*first)->socket_path());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT((*second)->Log(), HasSubstr("removing stale socket"));
  v1::TaskResult r;
  auto stub = (*second)->NewStub();
  EXPECT_TRUE(testing::RunTask(*stub, "fib", {{"n", "10"}}, "", &r).ok());
}

TEST(Crunchd, SighupReloadsTheConfigurationWithoutDroppingTasks) {
  auto d = DaemonProcess::Start({"--workers", "1"}, "[cpu]\nqueue_capacity = 100\n");
  ASSERT_TRUE(d.ok()) << d.status();
  auto stub = (*d)->NewStub();
  auto running = std::async(std::launch::async, [&] {
    v1::TaskResult r;
    return testing::RunTask(*stub, "spin", {{"ms", "500"}}, "", &r);
  });
  std::ofstream((*d)->dir() + "/crunchd.toml") << "[cpu]\nqueue_capacity = 7\n";
  (*d)->Signal(SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 500 && !reloaded; ++i) {
    absl::StatusOr<v1::DaemonStatus> s = (*d)->Status();
    reloaded = s.ok() && s->pools(0).queue_capacity() == 7;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(reloaded) << (*d)->Log();
  EXPECT_TRUE(running.get().ok());
  // A broken file is refused and the running configuration kept.
  std::ofstream((*d)->dir() + "/crunchd.toml") << "[cpu]\nqueue_capacity = -1\n";
  (*d)->Signal(SIGHUP);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  absl::StatusOr<v1::DaemonStatus> s = (*d)->Status();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->pools(0).queue_capacity(), 7u);
  EXPECT_THAT((*d)->Log(), HasSubstr("keeping the running configuration"));
}

TEST(Crunchd, SighupChangesTheRequestLimitsForRunAndSubmit) {
  // The limits are read where the request is decoded, off the scheduler's
  // thread (what is over them is measured, not copied): a reload must reach
  // that reader too, or a raised limit would go on refusing.
  auto d = DaemonProcess::Start(
      {"--workers", "1"},
      "[limits]\nmax_payload_bytes = 2048\nmax_params = 1\nmax_param_bytes = 10\n");
  ASSERT_TRUE(d.ok()) << d.status();
  auto stub = (*d)->NewStub();
  v1::TaskResult r;
  grpc::Status s = testing::RunTask(*stub, "sha256", {}, std::string(3000, 'x'), &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "payload is 3000 bytes; the limit is 2048 ([limits] max_payload_bytes)");
  v1::TaskRequest request;
  request.set_kind("sha256");
  request.set_payload(std::string(2049, 'y'));
  {
    grpc::ClientContext context;
    v1::TaskRef ref;
    s = stub->Submit(&context, request, &ref);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(s.error_message(),
              "payload is 2049 bytes; the limit is 2048 ([limits] max_payload_bytes)");
  }
  s = testing::RunTask(*stub, "fib", {{"n", "10"}, {"x", "1"}}, "", &r);
  EXPECT_EQ(s.error_message(), "the request has 2 params; the limit is 1 ([limits] max_params)");
  s = testing::RunTask(*stub, "fib", {{"n", "00000000010"}}, "", &r);
  EXPECT_EQ(s.error_message(),
            "param 'n' has a value of 11 bytes; the limit is 10 ([limits] max_param_bytes)");
  // Refused tasks are counted like any other refusal.
  absl::StatusOr<v1::DaemonStatus> status = (*d)->Status();
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->counters().rejected(), 4u);

  std::ofstream((*d)->dir() + "/crunchd.toml")
      << "[limits]\nmax_payload_bytes = 4096\nmax_params = 2\nmax_param_bytes = 11\n";
  (*d)->Signal(SIGHUP);
  ASSERT_TRUE((*d)->WaitForLog("configuration reloaded")) << (*d)->Log();
  s = testing::RunTask(*stub, "sha256", {}, std::string(3000, 'x'), &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
  grpc::ClientContext context;
  v1::TaskRef ref;
  s = stub->Submit(&context, request, &ref);
  EXPECT_TRUE(s.ok()) << s.error_message();
  // Both params reach the kind now, which refuses the one it does not take.
  s = testing::RunTask(*stub, "fib", {{"n", "10"}, {"x", "1"}}, "", &r);
  EXPECT_EQ(s.error_message(), "unknown param 'x'; kind 'fib' takes: n");
  s = testing::RunTask(*stub, "fib", {{"n", "00000000010"}}, "", &r);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST(Crunchd, ServesTheStandardHealthService) {
  auto d = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(d.ok()) << d.status();
  auto channel = grpc::CreateChannel((*d)->address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  grpc::Slice empty("", 0);
  grpc::ByteBuffer request(&empty, 1);  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(s); });
  grpc::Status s = done.get_future().get();
  ASSERT_TRUE(s.ok()) << s.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "HealthCheckResponse{status: SERVING}";
}

TEST(Crunchd, HealthWatchReportsServingThenNotServingWhenTheDrainBegins) {
  namespace health = grpc::health::v1;
  auto d = DaemonProcess::Start({"--workers", "1"});
  ASSERT_TRUE(d.ok()) << d.status();
  auto channel = grpc::CreateChannel((*d)->address(), grpc::InsecureChannelCredentials());
  auto stub = health::Health::NewStub(channel);
  {
    grpc::ClientContext context;
    health::HealthCheckRequest request;
    request.set_service("no.such.Service");
    health::HealthCheckResponse response;
    const grpc::Status s = stub->Check(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(s.error_message(), HasSubstr("crunch.v1.Crunch"));
  }
  {
    grpc::ClientContext context;
    health::HealthCheckRequest request;
    request.set_service("no.such.Service");
    auto reader = stub->Watch(&context, request);
    health::HealthCheckResponse response;
    ASSERT_TRUE(reader->Read(&response));
    EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVICE_UNKNOWN);
    context.TryCancel();
  }
  grpc::ClientContext context;
  health::HealthCheckRequest request;
  request.set_service("crunch.v1.Crunch");
  auto reader = stub->Watch(&context, request);
  health::HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);
  // A task keeps the drain going while the stream says NOT_SERVING.
  auto crunch_stub = (*d)->NewStub();
  const uint64_t busy = [&] {
    grpc::ClientContext c;
    v1::TaskRequest r;
    r.set_kind("sleep");
    (*r.mutable_params())["ms"] = "2000";
    v1::TaskRef ref;
    EXPECT_TRUE(crunch_stub->Submit(&c, r, &ref).ok());
    return ref.task_id();
  }();
  ASSERT_NE(busy, 0u);
  (*d)->Signal(SIGTERM);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), health::HealthCheckResponse::NOT_SERVING);
  // Still draining: the sleep runs and the server answers.
  absl::StatusOr<v1::DaemonStatus> status = (*d)->Status();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->pools(1).busy(), 1u) << "NOT_SERVING came after the drain, not when it began";
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST(Crunchd, JsonLogsAreOneObjectPerLine) {
  auto d = DaemonProcess::Start({"--workers", "1"}, "[log]\nformat = \"json\"\n");
  ASSERT_TRUE(d.ok()) << d.status();
  // A reload refused for a value with quotes in it puts quotes in a message.
  std::ofstream((*d)->dir() + "/crunchd.toml") << "[log]\nformat = \"x\\\"ml\"\n";
  (*d)->Signal(SIGHUP);
  (*d)->WaitForLog("SIGHUP", std::chrono::seconds(2));
  ASSERT_EQ((*d)->Stop(), 0);
  const std::string log = (*d)->Log();
  EXPECT_THAT(log, HasSubstr("keeping the running configuration"));
  // Every line must be a JSON object: let Python's json module judge.
  const std::string path = (*d)->dir() + "/log.json";
  std::ofstream(path) << log;
  const std::string check =
      "/usr/bin/python3 -c 'import json,sys\nn=0\nfor l in open(sys.argv[1]):\n"
      "  o=json.loads(l); assert set(o)=={\"time\",\"level\",\"pid\",\"msg\"}; n+=1\n"
      "assert n>=3, n' " +
      path;
  EXPECT_EQ(::system(check.c_str()), 0) << log;
}

}  // namespace
}  // namespace crunch
