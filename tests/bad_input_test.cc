// Bad input through the real daemon: the input classes of docs/limits.md
// ("Bad input: every class tried") that no other test sends through a real
// crunchd and a real gRPC client. Each test asserts the exact code and the
// key words of the message, and that the daemon goes on serving afterwards.
// The table in docs/limits.md names the test for every class.

#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/testing/daemon_process.h"

namespace crunch {
namespace {

using testing::DaemonProcess;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunTask;

class BadInputTest : public ::testing::Test {
 protected:
  // [limits] max_params and max_param_bytes stay at their defaults (64, 8192):
  // the tests check the defaults too.
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<DaemonProcess>> d =
        DaemonProcess::Start({"--workers", "2"},
                             "[io]\n"
                             "data_dir = \"@DIR@/data\"\n"
                             "http_allow = [\"127.0.0.1\"]\n"
                             "[limits]\n"
                             "max_payload_bytes = 1048576\n");
    ASSERT_TRUE(d.ok()) << d.status();
    daemon_ = d->release();
  }
  static void TearDownTestSuite() {
    if (daemon_ != nullptr) {
      EXPECT_EQ(daemon_->Stop(), 0) << daemon_->Log();
    }
    delete daemon_;
  }
  void SetUp() override {
    ASSERT_NE(daemon_, nullptr);
    stub_ = daemon_->NewStub();
  }
  // After each test: the daemon still runs a task.
  void TearDown() override {
    if (daemon_ == nullptr) return;
    crunch::v1::TaskResult r;
    grpc::Status s = RunTask(*stub_, "fib", {{"n", "10"}}, "", &r);
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    EXPECT_EQ(r.output(), "55");
  }

  grpc::Status Run(const std::string& kind, const std::map<std::string, std::string>& params,
                   const std::string& payload = "", int timeout_ms = 0) {
    crunch::v1::TaskResult r;
    return RunTask(*stub_, kind, params, payload, &r, timeout_ms);
  }

  // A unary call to `method` whose request message is `bytes`, whatever they are.
  grpc::Status RawCall(const std::string& method, const std::string& bytes,
                       std::string* reply = nullptr) {
    grpc::GenericStub generic(
        grpc::CreateChannel(daemon_->address(), grpc::InsecureChannelCredentials()));
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    grpc::Status status;
    generic.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                      [&](grpc::Status s) {
                        std::lock_guard lock(mu);
                        status = std::move(s);
                        done = true;
                        cv.notify_one();
                      });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
    if (status.ok() && reply != nullptr) {
      if (std::optional<std::string> got = BytesOf(response)) *reply = std::move(*got);
    }
    return status;
  }

  // The bytes of a message gRPC received; none if its slices cannot be read.
  static std::optional<std::string> BytesOf(const grpc::ByteBuffer& buffer) {
    std::vector<grpc::Slice> slices;
    if (!buffer.Dump(&slices).ok()) return std::nullopt;
    std::string bytes;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    return bytes;
  }

  // A streaming call (RunStream, RunBatches) with `messages` written as they
  // are, then a half-close; the replies as they came, and the call's status.
  grpc::Status RawStream(const std::string& method, const std::vector<std::string>& messages,
                         std::vector<std::string>* replies) {
    grpc::GenericStub generic(
        grpc::CreateChannel(daemon_->address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::CompletionQueue cq;
    auto wait = [&cq] {
      void* tag = nullptr;
      bool ok = false;
      return cq.Next(&tag, &ok) && ok;
    };
    std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
        generic.PrepareCall(&context, method, &cq);
    call->StartCall(nullptr);
    bool open = wait();
    for (const std::string& bytes : messages) {
      if (!open) break;
      grpc::Slice slice(bytes);
      grpc::ByteBuffer message(&slice, 1);
      call->Write(message, nullptr);
      open = wait();
    }
    if (open) {
      call->WritesDone(nullptr);
      (void)wait();
    }
    for (;;) {
      grpc::ByteBuffer reply;
      call->Read(&reply, nullptr);
      if (!wait()) break;
      replies->push_back(BytesOf(reply).value_or(""));
    }
    grpc::Status status;
    call->Finish(&status, nullptr);
    (void)wait();
    return status;
  }

  static DaemonProcess* daemon_;
  std::unique_ptr<crunch::v1::Crunch::Stub> stub_;
};

DaemonProcess* BadInputTest::daemon_ = nullptr;

TEST_F(BadInputTest, MalformedProtobufIsInternalFromGrpcItself) {
  // 0xff...: a field tag whose varint never ends; "\x0a\x64": field 1 (kind)
  // announcing 100 bytes that are not there; "\x0a\x02\xc3\x28": a kind that
  // is not UTF-8, which proto3 string fields refuse; "\x12\x64": a payload
  // announcing 100 bytes that are not there.
  for (const char* method : {"/crunch.v1.Crunch/Run", "/crunch.v1.Crunch/Submit"}) {
    for (const std::string& bytes :
         {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11),
          std::string("\x0a\x64kind", 6), std::string("\x0a\x02\xc3\x28", 4),
          std::string("\x0a\x06sha256\x12\x64payload", 17)}) {
      grpc::Status s = RawCall(method, bytes);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << method << " " << s.error_message();
      // Run and Submit decode their requests themselves
      // (rpc/internal/task_request_decoder.h) and answer bytes that are not a
      // TaskRequest as gRPC's server does, before the call reaches the scheduler.
      EXPECT_EQ(s.error_message(), "Unable to parse request");
    }
  }
  // An empty message is a valid TaskRequest with every field at its default.
  grpc::Status s = RawCall("/crunch.v1.Crunch/Run", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown kind ''"));
  // A method that does not exist.
  s = RawCall("/crunch.v1.Crunch/Explode", "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(BadInputTest, AMalformedStreamMessageEndsTheStreamAfterTheTasksBeforeIt) {
  // RunStream and RunBatches decode their messages themselves too: a message
  // that is not one ends the reading, the tasks read before it end as usual
  // and their results are written, then the call ends as gRPC ends it for a
  // message it cannot parse.
  crunch::v1::TaskRequest good;
  good.set_kind("sha256");
  good.set_payload("abc");
  good.set_tag(7);
  crunch::v1::TaskBatch batch;
  *batch.add_tasks() = good;
  const std::string not_utf8_kind("\x0a\x02\xc3\x28", 4);
  for (const auto& [method, first, bad] :
       {std::tuple<std::string, std::string, std::string>{"/crunch.v1.Crunch/RunStream",
                                                          good.SerializeAsString(), not_utf8_kind},
        {"/crunch.v1.Crunch/RunBatches", batch.SerializeAsString(),
         absl::StrCat("\x0a\x04", not_utf8_kind)}}) {
    std::vector<std::string> replies;
    grpc::Status s = RawStream(method, {first, bad, first}, &replies);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INTERNAL) << method;
    EXPECT_EQ(s.error_message(), "Unable to parse request") << method;
    ASSERT_EQ(replies.size(), 1u) << method;
    crunch::v1::TaskResult result;
    if (method.ends_with("RunStream")) {
      ASSERT_TRUE(result.ParseFromString(replies[0]));
    } else {
      crunch::v1::ResultBatch results;
      ASSERT_TRUE(results.ParseFromString(replies[0]));
      ASSERT_EQ(results.results_size(), 1);
      result = results.results(0);
    }
    EXPECT_EQ(result.tag(), 7u) << method;
    EXPECT_EQ(result.code(), 0) << method << ": " << result.error();
  }
}

TEST_F(BadInputTest, RequestsOverALimitOnAStreamAreRefusedAndTheStreamGoesOn) {
  // Each over a limit that the front-end measures before copying or parsing
  // (rpc/internal/task_request_decoder.h), between two that run.
  crunch::v1::TaskRequest big;
  big.set_kind("sha256");
  big.set_payload(std::string(2 << 20, 'x'));
  big.set_tag(1);
  crunch::v1::TaskRequest many_params;
  many_params.set_kind("fib");
  auto* params = many_params.mutable_params();
  for (int i = 0; i < 1000; ++i) params->insert({absl::StrCat("p", i), std::string(1, '1')});
  many_params.set_tag(3);
  crunch::v1::TaskRequest long_param;
  long_param.set_kind("http.get");
  (*long_param.mutable_params())["url"] = std::string(9000, 'u');
  long_param.set_payload("not wanted");
  long_param.set_tag(4);
  crunch::v1::TaskRequest small;
  small.set_kind("sha256");
  small.set_payload("abc");
  small.set_tag(2);
  crunch::v1::TaskBatch batch;
  for (const auto* request : {&small, &big, &many_params, &long_param, &small}) {
    *batch.add_tasks() = *request;
  }
  std::vector<std::string> one_by_one;
  for (const auto& request : batch.tasks()) one_by_one.push_back(request.SerializeAsString());
  for (const auto& [method, messages] :
       {std::pair<std::string, std::vector<std::string>>{"/crunch.v1.Crunch/RunStream", one_by_one},
        {"/crunch.v1.Crunch/RunBatches", {batch.SerializeAsString()}}}) {
    std::vector<std::string> replies;
    grpc::Status s = RawStream(method, messages, &replies);
    ASSERT_TRUE(s.ok()) << method << ": " << s.error_message();
    std::multimap<uint64_t, crunch::v1::TaskResult> by_tag;
    for (const std::string& reply : replies) {
      if (method.ends_with("RunStream")) {
        crunch::v1::TaskResult result;
        ASSERT_TRUE(result.ParseFromString(reply));
        by_tag.emplace(result.tag(), result);
      } else {
        crunch::v1::ResultBatch results;
        ASSERT_TRUE(results.ParseFromString(reply));
        for (const auto& result : results.results()) by_tag.emplace(result.tag(), result);
      }
    }
    ASSERT_EQ(by_tag.size(), 5u) << method;  // Every task ends once.
    const auto result = [&](uint64_t tag) { return by_tag.find(tag)->second; };
    constexpr int kExhausted = static_cast<int>(grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(result(1).code(), kExhausted) << method;
    EXPECT_EQ(result(1).error(),
              "payload is 2097152 bytes; the limit is 1048576 ([limits] max_payload_bytes)");
    EXPECT_EQ(result(3).code(), kExhausted) << method;
    EXPECT_EQ(result(3).error(),
              "the request has 1000 params; the limit is 64 ([limits] max_params)");
    EXPECT_EQ(result(4).code(), kExhausted) << method;
    EXPECT_EQ(
        result(4).error(),
        "param 'url' has a value of 9000 bytes; the limit is 8192 ([limits] max_param_bytes)");
    ASSERT_EQ(by_tag.count(2), 2u) << method;
    for (auto [it, end] = by_tag.equal_range(2); it != end; ++it) {
      EXPECT_EQ(it->second.code(), 0) << method;
      EXPECT_EQ(it->second.output(),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
  }
}

TEST_F(BadInputTest, ThePayloadSentLastIsTheOneThatRuns) {
  // Protobuf's rule for a bytes field given twice: the last one wins. Between
  // them, a field crunch.v1 does not know (99, varint), which is skipped.
  const std::string bytes =
      absl::StrCat("\x12\x05", "first", "\x0a\x06", "sha256", "\x98\x06\x2a", "\x12\x03", "abc");
  std::string reply;
  grpc::Status s = RawCall("/crunch.v1.Crunch/Run", bytes, &reply);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  crunch::v1::TaskResult result;
  ASSERT_TRUE(result.ParseFromString(reply));
  EXPECT_EQ(result.output(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(BadInputTest, MissingExtraNonNumericAndOutOfRangeParamsNameTheParam) {
  grpc::Status s = Run("fib", {});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("param 'n' is required by kind 'fib'"));
  s = Run("fib", {{"n", "10"}, {"x", "1"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "unknown param 'x'; kind 'fib' takes: n");
  s = Run("fib", {{"n", "abc"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "param 'n' must be an integer in 0..45, got 'abc'");
  s = Run("sleep", {{"ms", "-1"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "param 'ms' must be an integer in 0..3600000, got '-1'");
  s = Run("fib", {{"n", "99999999999999999999999"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("must be an integer in 0..45"));
}

TEST_F(BadInputTest, TooManyParamsAreRefusedBeforeTheKindLooksAtThem) {
  std::map<std::string, std::string> params;
  for (int i = 0; i < 64; ++i) params.try_emplace(absl::StrCat("p", i), "1");
  // 64 is allowed by [limits] max_params: the kind itself then refuses them.
  grpc::Status s = Run("noop", params);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown param"));
  params.try_emplace("p64", "1");
  s = Run("noop", params);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "the request has 65 params; the limit is 64 ([limits] max_params)");
  // A huge map: the same answer, at once.
  for (int i = 65; i < 100000; ++i) params.try_emplace(absl::StrCat("p", i), "1");
  s = Run("fib", params);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "the request has 100000 params; the limit is 64 ([limits] max_params)");
}

TEST_F(BadInputTest, OverlongParamNamesAndValuesAreRefused) {
  grpc::Status s =
      Run("http.get", {{"url", absl::StrCat("http://127.0.0.1/", std::string(8176, 'u'))}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "param 'url' has a value of 8193 bytes; the limit is 8192 ([limits] max_param_bytes)");
  s = Run("noop", {{std::string(9000, 'n'), "1"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "param 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...' has a name of 9000 bytes; the limit is "
            "8192 ([limits] max_param_bytes)");
  // 8192 bytes pass the limit and reach the kind, which has its own (PATH_MAX).
  s = Run("file.read", {{"path", std::string(8192, 'p')}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("at most 4095 are allowed (PATH_MAX)"));
}

TEST_F(BadInputTest, ZeroTimeoutMeansThePoolsDefault) {
  // 0 is not "no time at all": the task gets [cpu]/[io] task_timeout_ms (60 s).
  EXPECT_TRUE(Run("sleep", {{"ms", "200"}}, "", /*timeout_ms=*/0).ok());
  EXPECT_TRUE(Run("spin", {{"ms", "200"}}, "", /*timeout_ms=*/0).ok());
}

TEST_F(BadInputTest, HugeTimeoutsDoNotOverflowTheDeadline) {
  constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();  // About 49.7 days.
  grpc::Status s = Run("sleep", {{"ms", "100"}}, "", static_cast<int>(kMax));
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  // Submit has no call deadline to cap it.
  crunch::v1::TaskRequest request;
  request.set_kind("spin");
  (*request.mutable_params())["ms"] = "100";
  request.set_timeout_ms(kMax);
  crunch::v1::TaskRef ref;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Submit(&context, request, &ref).ok());
  }
  crunch::v1::TaskResult result;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ASSERT_TRUE(stub_->Wait(&context, ref, &result).ok());
  EXPECT_EQ(result.code(), 0) << result.error();
}

TEST_F(BadInputTest, ACallDeadlineBeyondFortyNineDaysIsNotCutShort) {
  // A call deadline 2^32 ms (49.7 days) and more from now: its length in
  // milliseconds does not fit in 32 bits and is clamped, not wrapped around to
  // a short timeout. (gRPC rounds such a timeout up to coarse units on the
  // wire, so the wrapped value happened to stay above the 1.5 s slept here:
  // this guards the path end to end rather than reproducing the wrap.)
  for (const int64_t extra_ms : {0, 500, 60'000, 600'000, 3'600'000}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::milliseconds((int64_t{1} << 32) + extra_ms));
    crunch::v1::TaskRequest request;
    request.set_kind("sleep");
    (*request.mutable_params())["ms"] = "1500";
    crunch::v1::TaskResult result;
    grpc::Status s = stub_->Run(&context, request, &result);
    EXPECT_TRUE(s.ok()) << extra_ms << ": " << s.error_code() << " " << s.error_message();
  }
}

TEST_F(BadInputTest, EmptyPayloadsGetEachKindsAnswer) {
  // Kinds that read the payload, given none.
  grpc::Status s = Run("zstd.decompress", {}, "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "zstd.decompress: input is empty; expected one or more zstd frames");
  crunch::v1::TaskResult r;
  s = RunTask(*stub_, "noop", {}, "", &r);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(r.output(), "");
  s = RunTask(*stub_, "sha256", {}, "", &r);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(r.output(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  s = RunTask(*stub_, "zstd.compress", {}, "", &r);
  ASSERT_TRUE(s.ok());
  EXPECT_GT(r.output().size(), 0u);
  s = RunTask(*stub_, "file.write", {{"path", "empty.txt"}}, "", &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(r.output(), "0");
}

TEST_F(BadInputTest, CorruptZstdIsInvalidArgument) {
  grpc::Status s = Run("zstd.decompress", {}, "definitely not a zstd frame");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("Unknown frame descriptor"));
  // A real frame's magic number followed by garbage.
  s = Run("zstd.decompress", {},
          absl::StrCat(std::string("\x28\xb5\x2f\xfd", 4), std::string(64, '\x5a')));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "zstd.decompress: input is not valid zstd data: Unsupported frame parameter");
}

TEST_F(BadInputTest, InvalidUrlsAreRefusedBeforeConnecting) {
  grpc::Status s = Run("http.get", {{"url", "ftp://127.0.0.1/x"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("has scheme 'ftp', which is not allowed"));
  for (const char* url : {"not a url", "http://", "http://[::1"}) {
    s = Run("http.get", {{"url", url}});
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << url << ": " << s.error_message();
    EXPECT_THAT(s.error_message(),
                HasSubstr(absl::StrCat("http.get: '", url, "' is not a valid URL (")));
    EXPECT_THAT(s.error_message(), HasSubstr("give an absolute http:// or https:// URL"));
  }
}

TEST_F(BadInputTest, PriorityExtremesAreAccepted) {
  for (const int32_t priority :
       {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), -1}) {
    crunch::v1::TaskRequest request;
    request.set_kind("fib");
    (*request.mutable_params())["n"] = "20";
    request.set_priority(priority);
    crunch::v1::TaskResult result;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    grpc::Status s = stub_->Run(&context, request, &result);
    ASSERT_TRUE(s.ok()) << priority << ": " << s.error_message();
    EXPECT_EQ(result.output(), "6765");
  }
}

TEST_F(BadInputTest, AMessageOverGrpcsOwnLimitIsResourceExhausted) {
  // max_payload_bytes = 1 MiB: gRPC receives up to 1 MiB + 4 MiB; 6 MiB is
  // cut off by gRPC itself, before crunchd sees it.
  grpc::Status s = Run("noop", {}, std::string(6 << 20, 'x'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("Received message larger than max ("));
  EXPECT_THAT(s.error_message(), HasSubstr(" vs. 5242880)"));
  // Between the two limits, crunchd's own message.
  s = Run("noop", {}, std::string(2 << 20, 'x'));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "payload is 2097152 bytes; the limit is 1048576 ([limits] max_payload_bytes)");
}

// Connects to the daemon's socket, writes `bytes`, reads whatever comes back
// for up to a second, and closes.
std::string Scribble(const std::string& socket_path, const std::string& bytes) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    (void)!::write(fd, bytes.data(), bytes.size());
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof(buf))) > 0) got.append(buf, static_cast<size_t>(n));
  } else {
    got = absl::StrCat("connect failed: ", std::strerror(errno));
  }
  ::close(fd);
  return got;
}

TEST_F(BadInputTest, GarbageOnTheSocketIsDroppedAndTheDaemonKeepsServing) {
  const std::string log_before = daemon_->Log();
  std::mt19937 rng(6);
  std::string noise(64 << 10, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  EXPECT_THAT(Scribble(daemon_->socket_path(), noise), Not(HasSubstr("connect failed")));
  Scribble(daemon_->socket_path(), "GET / HTTP/1.1\r\nHost: crunchd\r\n\r\n");
  // A valid HTTP/2 preface, then a frame that is not.
  Scribble(daemon_->socket_path(),
           absl::StrCat("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", std::string(100, '\xff')));
  Scribble(daemon_->socket_path(), "");  // Connect and hang up.
  ASSERT_TRUE(daemon_->Status().ok());
  // gRPC drops each connection after its settings frame; nobody needs a log
  // line for that.
  EXPECT_EQ(daemon_->Log().substr(log_before.size()), "");
}

}  // namespace
}  // namespace crunch
