// Every built-in kind through the real daemon, against known answers, and
// every error code produced by a real bad request.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zstd.h>

#include <filesystem>

#include "tests/testing/daemon_process.h"
#include "tests/testing/http_server.h"

namespace crunch {
namespace {

using ::testing::AnyOf;
using testing::DaemonProcess;
using ::testing::HasSubstr;
using testing::RunTask;

class KindsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    http_ = new testing::HttpServer();
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d =
        DaemonProcess::Start({"--workers", "2"},
                             "[io]\n"
                             "data_dir = \"@DIR@/data\"\n"
                             "http_allow = [\"127.0.0.1\"]\n"
                             "[limits]\n"
                             "max_payload_bytes = 2097152\n"
                             "max_output_bytes = 4194304\n");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = d->release();
  }
  static void TearDownTestSuite() {
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->Stop(), 0) << daemon_->Log();
    }
    delete daemon_;
    delete http_;
  }
  void SetUp() override {
    ASSERT_NE(daemon_, nullptr);
    stub_ = daemon_->NewStub();
  }

  // Runs and expects success; returns the output.
  std::string Ok(const std::string& kind, const std::map<std::string, std::string>& params,
                 const std::string& payload = "") {
    crunch::v1::TaskResult r;
    grpc::Status s = RunTask(*stub_, kind, params, payload, &r);
    EXPECT_TRUE(s.ok()) << kind << ": " << s.error_code() << " " << s.error_message();
    EXPECT_EQ(r.code(), 0);
    return r.output();
  }
  grpc::Status Fail(const std::string& kind, const std::map<std::string, std::string>& params,
                    const std::string& payload = "", int timeout_ms = 0) {
    crunch::v1::TaskResult r;
    return RunTask(*stub_, kind, params, payload, &r, timeout_ms);
  }

  static DaemonProcess* daemon_;
  static testing::HttpServer* http_;
  std::unique_ptr<crunch::v1::Crunch::Stub> stub_;
};

DaemonProcess* KindsTest::daemon_ = nullptr;
testing::HttpServer* KindsTest::http_ = nullptr;

TEST_F(KindsTest, NoopEchoesThePayload) {
  EXPECT_EQ(Ok("noop", {}, "hello"), "hello");
  const std::string big(1 << 20, 'x');
  EXPECT_EQ(Ok("noop", {}, big), big);
  EXPECT_EQ(Ok("noop", {}, ""), "");
}

TEST_F(KindsTest, FibMatchesKnownValues) {
  EXPECT_EQ(Ok("fib", {{"n", "0"}}), "0");
  EXPECT_EQ(Ok("fib", {{"n", "30"}}), "832040");
}

TEST_F(KindsTest, Sha256OfAbc) {
  EXPECT_EQ(Ok("sha256", {}, "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(KindsTest, PrimesUpToAMillion) { EXPECT_EQ(Ok("primes", {{"n", "1000000"}}), "78498"); }

TEST_F(KindsTest, ZstdRoundTrip) {
  std::string text;
  for (int i = 0; i < 10000; ++i)
    text += "crunchd compresses this line " + std::to_string(i) + "\n";
  const std::string packed = Ok("zstd.compress", {{"level", "5"}}, text);
  EXPECT_LT(packed.size(), text.size() / 4);
  EXPECT_EQ(Ok("zstd.decompress", {}, packed), text);
}

TEST_F(KindsTest, ZstdBombFailsCleanly) {
  const std::string zeros(64 << 20, '\0');
  std::string bomb(ZSTD_compressBound(zeros.size()), '\0');
  bomb.resize(ZSTD_compress(bomb.data(), bomb.size(), zeros.data(), zeros.size(), 3));
  grpc::Status s = Fail("zstd.decompress", {}, bomb);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("max_output_bytes"));
}

TEST_F(KindsTest, SpinRunsInAWorkerProcess) {
  crunch::v1::TaskResult r;
  ASSERT_TRUE(RunTask(*stub_, "spin", {{"ms", "20"}}, "", &r).ok());
  EXPECT_EQ(r.pool(), "cpu");
  EXPECT_GE(r.run_us(), 20000u);
  const std::vector<pid_t> workers = daemon_->WorkerPids();
  EXPECT_THAT(workers, ::testing::Contains(static_cast<pid_t>(r.worker_pid())));
}

TEST_F(KindsTest, SleepRunsOnTheIoPool) {
  crunch::v1::TaskResult r;
  ASSERT_TRUE(RunTask(*stub_, "sleep", {{"ms", "30"}}, "", &r).ok());
  EXPECT_EQ(r.pool(), "io");
  EXPECT_GE(r.run_us(), 30000u);
}

TEST_F(KindsTest, HttpGetFetchesFromAnAllowedHost) {
  EXPECT_EQ(Ok("http.get", {{"url", http_->Url("/ok")}}), "hello");
}

TEST_F(KindsTest, HttpGetStatesANon2xxStatus) {
  grpc::Status s = Fail("http.get", {{"url", http_->Url("/status/404")}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("404"));
}

TEST_F(KindsTest, HttpGetRefusesHostsOutsideTheAllowList) {
  grpc::Status s = Fail("http.get", {{"url", "http://192.0.2.1/"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("http_allow"));
}

TEST_F(KindsTest, HttpGetFollowsARedirectWithinTheAllowList) {
  EXPECT_EQ(Ok("http.get", {{"url", http_->Url("/redirect")}}), "hello");
}

TEST_F(KindsTest, HttpGetRefusesARedirectToAHostNotInTheAllowList) {
  const std::string url = http_->Url("/to/http://192.0.2.1/secret");
  grpc::Status s = Fail("http.get", {{"url", url}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_EQ(s.error_message(),
            "http.get " + url +
                ": redirect 1 (HTTP 302) to 'http://192.0.2.1/secret': host '192.0.2.1:80' is not "
                "in io.http_allow (allowed: 127.0.0.1)");
}

TEST_F(KindsTest, HttpGetStopsARedirectLoopAtTheLimit) {
  grpc::Status s = Fail("http.get", {{"url", http_->Url("/loop")}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("too many redirects: io.http_max_redirects = 5"));
}

TEST_F(KindsTest, FileWriteThenRead) {
  EXPECT_EQ(Ok("file.write", {{"path", "notes.txt"}}, "0123456789"), "10");
  EXPECT_EQ(Ok("file.read", {{"path", "notes.txt"}}), "0123456789");
  EXPECT_EQ(Ok("file.read", {{"path", "notes.txt"}, {"offset", "2"}, {"length", "3"}}), "234");
}

TEST_F(KindsTest, FilePathsOutsideTheDataDirAreDenied) {
  const std::filesystem::path data = std::filesystem::path(daemon_->dir()) / "data";
  std::error_code ignored;
  std::filesystem::create_symlink("/proc/self/root", data / "proc_root", ignored);
  std::filesystem::create_symlink("../crunchd.toml", data / "config_link", ignored);
  for (const std::string path :
       {"../crunchd.toml", "/etc/passwd", "./../crunchd.toml", "config_link",
        "proc_root/etc/passwd", "/proc/self/root/etc/passwd", "/proc/self/environ"}) {
    grpc::Status s = Fail("file.read", {{"path", path}});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << path;
    EXPECT_THAT(s.error_message(), HasSubstr("resolves outside io.data_dir")) << path;
  }
  grpc::Status s = Fail("file.write", {{"path", "proc_root/tmp/crunch-escaped"}}, "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_FALSE(std::filesystem::exists("/tmp/crunch-escaped"));
}

TEST_F(KindsTest, OverLongFilePathsAreInvalidArgument) {
  grpc::Status s = Fail("file.read", {{"path", std::string(256, 'n')}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("at most 255 are allowed in each part of a path"));
  s = Fail("file.write", {{"path", std::string(5000, 'p')}}, "x");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("at most 4095 are allowed (PATH_MAX)"));
}

TEST_F(KindsTest, MissingFileIsNotFound) {
  EXPECT_EQ(Fail("file.read", {{"path", "nope.txt"}}).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(KindsTest, DnsResolvesLocalhost) {
  EXPECT_THAT(Ok("dns.resolve", {{"host", "localhost"}}),
              AnyOf(HasSubstr("127.0.0.1"), HasSubstr("::1")));
}

TEST_F(KindsTest, UnknownKindIsNotFoundAndListsTheKnownOnes) {
  grpc::Status s = Fail("fibonacci", {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown kind 'fibonacci'"));
  EXPECT_THAT(s.error_message(), HasSubstr("fib"));
}

TEST_F(KindsTest, BadParameterNamesItAndItsRange) {
  grpc::Status s = Fail("fib", {{"n", "46"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "param 'n' must be an integer in 0..45, got '46'");
  EXPECT_EQ(Fail("fib", {{"n", "abc"}}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Fail("noop", {{"x", "1"}}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(KindsTest, PayloadOverTheLimitIsResourceExhausted) {
  for (const size_t size : {(2u << 20) + 1, 3u << 20}) {
    grpc::Status s = Fail("noop", {}, std::string(size, 'x'));
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << size;
    EXPECT_THAT(s.error_message(), HasSubstr("max_payload_bytes")) << size;
  }
}

TEST_F(KindsTest, CpuTaskPastItsTimeoutIsDeadlineExceeded) {
  grpc::Status s = Fail("spin", {{"ms", "10000"}}, "", /*timeout_ms=*/200);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(s.error_message(), HasSubstr("timeout of 200 ms"));
  EXPECT_EQ(Ok("fib", {{"n", "10"}}), "55");  // The pool recovered.
}

TEST_F(KindsTest, IoTaskPastItsTimeoutIsDeadlineExceeded) {
  grpc::Status s = Fail("sleep", {{"ms", "10000"}}, "", /*timeout_ms=*/100);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

TEST_F(KindsTest, ListKindsDescribesParameters) {
  grpc::ClientContext context;
  crunch::v1::ListKindsReply reply;
  ASSERT_TRUE(stub_->ListKinds(&context, {}, &reply).ok());
  bool found = false;
  for (const auto& k : reply.kinds()) {
    if (k.name() != "fib") continue;
    found = true;
    EXPECT_EQ(k.pool(), "cpu");
    ASSERT_EQ(k.params_size(), 1);
    EXPECT_EQ(k.params(0).name(), "n");
    EXPECT_EQ(k.params(0).min(), 0);
    EXPECT_EQ(k.params(0).max(), 45);
  }
  EXPECT_TRUE(found);
  EXPECT_GE(reply.kinds_size(), 12);
}

TEST_F(KindsTest, StatusDescribesWorkersAndPools) {
  absl::StatusOr<crunch::v1::DaemonStatus> s = daemon_->Status();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->pid(), static_cast<uint32_t>(daemon_->pid()));
  EXPECT_EQ(s->workers_size(), 2);
  ASSERT_EQ(s->pools_size(), 2);
  EXPECT_EQ(s->pools(0).name(), "cpu");
  EXPECT_EQ(s->pools(1).name(), "io");
  EXPECT_EQ(s->pools(1).size(), 16u);
  EXPECT_FALSE(s->version().empty());
}

// http.get's address rules through a daemon whose allow list is "*": the
// wildcard reaches neither this machine nor link-local and metadata addresses,
// whether asked directly, through a redirect or through a name.
class HttpAddressRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d =
        DaemonProcess::Start({"--workers", "1"},
                             "[io]\n"
                             "http_allow = [\"*\", \"127.0.0.1:" +
                                 std::to_string(http_.port()) +
                                 "\"]\n"
                                 "http_max_redirects = 2\n"
                                 "http_connect_timeout_ms = 2000\n");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = *std::move(d);
    stub_ = daemon_->NewStub();
  }
  void TearDown() override {
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->Stop(), 0) << daemon_->Log();
    }
  }
  grpc::Status Get(const std::string& url) {
    crunch::v1::TaskResult r;
    return RunTask(*stub_, "http.get", {{"url", url}}, "", &r, /*timeout_ms=*/10000);
  }

  testing::HttpServer http_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<crunch::v1::Crunch::Stub> stub_;
};

TEST_F(HttpAddressRulesTest, TheListedLoopbackServerWorksAndRedirectsAreLimited) {
  crunch::v1::TaskResult r;
  ASSERT_TRUE(RunTask(*stub_, "http.get", {{"url", http_.Url("/redirect")}}, "", &r).ok());
  EXPECT_EQ(r.output(), "hello");
  grpc::Status s = Get(http_.Url("/loop"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("io.http_max_redirects = 2"));
}

TEST_F(HttpAddressRulesTest, MetadataAndLinkLocalAreRefusedDirectlyAndAfterARedirect) {
  for (const std::string& url :
       {std::string("http://169.254.169.254/latest/meta-data/"), std::string("http://[fe80::1]/"),
        std::string("http://[fd00:ec2::254]/latest/meta-data/"),
        http_.Url("/to/http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        http_.Url("/to/http://[fe80::1]:8080/")}) {
    grpc::Status s = Get(url);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << url;
    EXPECT_THAT(s.error_message(), HasSubstr("only an io.http_allow entry naming the address"))
        << url;
  }
  EXPECT_THAT(Get(http_.Url("/to/http://169.254.169.254/")).error_message(),
              HasSubstr("redirect 1 (HTTP 302) to 'http://169.254.169.254/': refused to "
                        "connect to 169.254.169.254:80"));
}

TEST_F(HttpAddressRulesTest, TheWildcardDoesNotReachThisMachine) {
  testing::HttpServer other;  // Listening on loopback, not listed.
  for (const std::string& url :
       {other.Url("/ok"), "http://localhost:" + std::to_string(other.port()) + "/ok",
        "http://0.0.0.0:" + std::to_string(other.port()) + "/ok",
        http_.Url("/to/" + other.Url("/ok"))}) {
    grpc::Status s = Get(url);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << url;
    EXPECT_THAT(s.error_message(), HasSubstr("\"*\" in io.http_allow does not cover it")) << url;
  }
  EXPECT_EQ(other.max_open(), 0);
}

}  // namespace
}  // namespace crunch
