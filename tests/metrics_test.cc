// The Prometheus endpoint of a real crunchd: what it counts after real tasks,
// that Debian's promtool accepts the exposition, and how it answers HTTP.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "crunch/version.h"
#include "tests/testing/daemon_process.h"

namespace crunch {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunTask;
namespace v1 = crunch::v1;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct Reply {
  int status = 0;
  std::string content_type;
  std::string allow;
  std::string body;
};

Reply Fetch(uint16_t port, const std::string& target, http::verb method = http::verb::get) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> request(method, target, 11);
  request.set(http::field::host, "127.0.0.1");
  http::write(stream, request);
  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.skip(method == http::verb::head);  // A HEAD reply has no body to read.
  http::read(stream, buffer, parser);
  const http::response<http::string_body>& response = parser.get();
  return {static_cast<int>(response.result_int()), std::string(response[http::field::content_type]),
          std::string(response[http::field::allow]), response.body()};
}

// The value of the sample `name_and_labels` ("crunchd_x{pool=\"cpu\"}"), or -1.
double Value(const std::string& text, const std::string& name_and_labels) {
  const std::string prefix = name_and_labels + " ";
  for (size_t at = 0; (at = text.find(prefix, at)) != std::string::npos; at += prefix.size()) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + prefix.size()));
  }
  return -1;
}

// Runs Debian's promtool (fetched by the promtool fixture) on `text`; its exit status.
int PromtoolCheck(const std::string& text) {
  FILE* pipe = ::popen(CRUNCH_PROMTOOL " check metrics", "w");
  if (pipe == nullptr) return -1;
  std::fwrite(text.data(), 1, text.size(), pipe);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

grpc::StatusCode RunKind(v1::Crunch::Stub& stub, const std::string& kind,
                         const std::map<std::string, std::string>& params, int timeout_ms = 0) {
  v1::TaskResult result;
  return RunTask(stub, kind, params, "", &result, timeout_ms).error_code();
}

TEST(Metrics, CountsRealTasksAndPromtoolAcceptsTheText) {
  const uint16_t port = testing::FreeLoopbackPort();
  auto d = DaemonProcess::Start(
      {"--workers", "2", "--metrics-listen", absl::StrCat("127.0.0.1:", port)});
  ASSERT_TRUE(d.ok()) << d.status();
  // A worker killed from outside is replaced, and counted.
  const std::vector<pid_t> workers = (*d)->WorkerPids();
  ASSERT_EQ(workers.size(), 2u);
  ::kill(workers[0], SIGKILL);
  for (int i = 0; i < 500; ++i) {
    const std::vector<pid_t> now = (*d)->WorkerPids();
    if (now.size() == 2 && now != workers) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto stub = (*d)->NewStub();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(RunKind(*stub, "fib", {{"n", "20"}}), grpc::StatusCode::OK);
  }
  EXPECT_EQ(RunKind(*stub, "sleep", {{"ms", "1"}}), grpc::StatusCode::OK);
  EXPECT_EQ(RunKind(*stub, "no.such.kind", {}), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(RunKind(*stub, "spin", {{"ms", "5000"}}, 50), grpc::StatusCode::DEADLINE_EXCEEDED);

  const Reply reply = Fetch(port, "/metrics");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = reply.body;
  EXPECT_EQ(Value(text, R"(crunchd_tasks_ended_total{kind="fib",pool="cpu",code="OK"})"), 3)
      << text;
  EXPECT_EQ(Value(text, R"(crunchd_tasks_ended_total{kind="sleep",pool="io",code="OK"})"), 1);
  EXPECT_EQ(
      Value(text, R"(crunchd_tasks_ended_total{kind="spin",pool="cpu",code="DEADLINE_EXCEEDED"})"),
      1);
  EXPECT_EQ(Value(text, R"(crunchd_tasks_rejected_total{code="NOT_FOUND"})"), 1);
  EXPECT_EQ(Value(text, "crunchd_tasks_accepted_total"), 5);
  // Every CPU task waited and ran; the histograms count each once.
  EXPECT_EQ(Value(text, R"(crunchd_task_queue_wait_seconds_count{pool="cpu"})"), 4);
  EXPECT_EQ(Value(text, R"(crunchd_task_run_seconds_count{pool="cpu"})"), 4);
  EXPECT_EQ(Value(text, R"(crunchd_task_run_seconds_bucket{pool="cpu",le="+Inf"})"), 4);
  EXPECT_GE(Value(text, R"(crunchd_task_run_seconds_sum{pool="cpu"})"), 0.05);
  EXPECT_EQ(Value(text, R"(crunchd_task_run_seconds_count{pool="io"})"), 1);
  EXPECT_EQ(Value(text, R"(crunchd_pool_size{pool="cpu"})"), 2);
  // A worker killed for a timeout gives its extents back when its death is
  // processed, which may come just after the task's answer.
  double arena = Value(text, "crunchd_arena_bytes_in_use");
  for (int i = 0; i < 200 && arena != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    arena = Value(Fetch(port, "/metrics").body, "crunchd_arena_bytes_in_use");
  }
  EXPECT_EQ(arena, 0) << "every task ended: nothing may stay in the arena";
  EXPECT_EQ(Value(text, R"(crunchd_pool_size{pool="io"})"), 16);
  // The killed worker (and maybe the timed-out spin's, if the daemon's timer
  // was first to notice rather than the kernel itself).
  EXPECT_GE(Value(text, R"(crunchd_worker_restarts_total{slot="0"})") +
                Value(text, R"(crunchd_worker_restarts_total{slot="1"})"),
            1);
  // One slot may be between workers still; the other has one.
  EXPECT_GT(Value(text, R"(crunchd_worker_resident_memory_bytes{slot="0"})") +
                Value(text, R"(crunchd_worker_resident_memory_bytes{slot="1"})"),
            0);
  EXPECT_GT(Value(text, "process_open_fds"), 3);
  EXPECT_GT(Value(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Value(text, "process_start_time_seconds"), 1.7e9);
  EXPECT_EQ(Value(text, absl::StrCat("crunchd_build_info{version=\"", kVersion, "\"}")), 1);

  EXPECT_EQ(PromtoolCheck(text), 0) << "promtool check metrics rejected:\n" << text;
}

TEST(Metrics, QueueDepthAndInFlightFollowTheLoad) {
  const uint16_t port = testing::FreeLoopbackPort();
  auto d = DaemonProcess::Start({"--workers", "1", "--io-threads", "2", "--metrics-listen",
                                 absl::StrCat("127.0.0.1:", port)});
  ASSERT_TRUE(d.ok()) << d.status();
  auto stub = (*d)->NewStub();
  std::vector<std::thread> callers;
  for (int i = 0; i < 5; ++i) {
    callers.emplace_back([&] { RunKind(*stub, "sleep", {{"ms", "1500"}}); });
  }
  // Until all five have arrived and both threads run one: with four arrived
  // and the second thread not yet awake, the queue holds 3 as well (seen once).
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text = Fetch(port, "/metrics").body;
    if (Value(text, R"(crunchd_queue_depth{pool="io"})") == 3 &&
        Value(text, R"(crunchd_tasks_in_flight{pool="io"})") == 2 &&
        Value(text, R"(crunchd_pool_busy{pool="io"})") == 2) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Value(text, R"(crunchd_queue_depth{pool="io"})"), 3) << text;
  EXPECT_EQ(Value(text, R"(crunchd_tasks_in_flight{pool="io"})"), 2);
  EXPECT_EQ(Value(text, R"(crunchd_pool_busy{pool="io"})"), 2);
  EXPECT_EQ(Value(text, R"(crunchd_tasks_in_flight{pool="cpu"})"), 0);
  for (std::thread& t : callers) t.join();
  text = Fetch(port, "/metrics").body;
  EXPECT_EQ(Value(text, R"(crunchd_queue_depth{pool="io"})"), 0);
  EXPECT_EQ(Value(text, R"(crunchd_tasks_in_flight{pool="io"})"), 0);
  EXPECT_EQ(Value(text, R"(crunchd_tasks_ended_total{kind="sleep",pool="io",code="OK"})"), 5);
}

TEST(Metrics, AnswersOtherPathsAndMethodsClearly) {
  const uint16_t port = testing::FreeLoopbackPort();
  auto d = DaemonProcess::Start({"--metrics-listen", absl::StrCat("127.0.0.1:", port)});
  ASSERT_TRUE(d.ok()) << d.status();
  const Reply missing = Fetch(port, "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(missing.body, HasSubstr("metrics are at /metrics"));
  const Reply post = Fetch(port, "/metrics", http::verb::post);
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.allow, "GET, HEAD");
  const Reply head = Fetch(port, "/metrics", http::verb::head);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
}

TEST(Metrics, AnAddressInUseStopsTheStartNamingTheKey) {
  boost::asio::io_context io;
  tcp::acceptor taken(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  const std::string address = absl::StrCat("127.0.0.1:", taken.local_endpoint().port());
  auto d = DaemonProcess::Start({"--metrics-listen", address});
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()),
              HasSubstr(absl::StrCat("[metrics] listen '", address, "': cannot listen on")));
}

TEST(Metrics, OffUnlessAsked) {
  auto d = DaemonProcess::Start({});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_THAT((*d)->Log(), ::testing::Not(HasSubstr("metrics at")));
}

}  // namespace
}  // namespace crunch
