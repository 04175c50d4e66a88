#include "daemon/kinds/io_kinds.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr uint64_t kOutputLimit = 64 * 1024;

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "io_kinds_test.XXXXXX";
    path_ = ::mkdtemp(pattern.data());
    EXPECT_FALSE(path_.empty());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void WriteFile(const std::filesystem::path& path, absl::string_view content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ostringstream content;
  content << std::ifstream(path, std::ios::binary).rdbuf();
  return content.str();
}

// Runs the kind the way the scheduler does: validate, then call the kernel.
absl::StatusOr<std::string> RunKind(const IoSettings& settings, absl::string_view kind,
                                    const std::map<std::string, std::string>& params,
                                    absl::string_view input = "", const TaskContext& context = {},
                                    uint64_t output_limit = kOutputLimit) {
  for (const KindSpec& spec : IoKinds(settings)) {
    if (spec.name != kind) continue;
    absl::StatusOr<TaskParams> valid = ValidateParams(spec, params);
    if (!valid.ok()) return valid.status();
    StringOutput output(output_limit);
    absl::Status status =
        spec.run(std::as_bytes(std::span(input.data(), input.size())), *valid, context, output);
    if (!status.ok()) return status;
    return output.Take();
  }
  return absl::NotFoundError(absl::StrCat("no kind ", kind));
}

TaskContext WithDeadline(milliseconds from_now) {
  return TaskContext{.deadline = steady_clock::now() + from_now};
}

// Sets `flag` after `delay`, on its own thread.
class CancelLater {
 public:
  CancelLater(std::atomic<bool>& flag, milliseconds delay)
      : thread_([&flag, delay] {
          std::this_thread::sleep_for(delay);
          flag = true;
        }) {}
  ~CancelLater() { thread_.join(); }

 private:
  std::thread thread_;
};

// An HTTP/1.1 server on 127.0.0.1 and an ephemeral port, on its own thread:
//   /ok       200 "hello"              /missing  404
//   /big      200, 2 x kOutputLimit bytes with Content-Length
//   /chunked  the same body, chunked (no length known in advance)
//   /redirect 302 to /ok               /slow     200 after 2 s
//   /loop     302 to itself            /chain/N  302 to /chain/N-1; /chain/0 is 200 "end"
//   /to/URL   302 to URL (anything after "/to/", as it is)
class TestHttpServer {
 public:
  TestHttpServer() {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestHttpServer() {
    io_.stop();
    thread_.join();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string Url(absl::string_view target) const {
    return absl::StrCat("http://127.0.0.1:", port(), target);
  }
  int requests() const { return requests_.load(); }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(asio::ip::tcp::socket s, TestHttpServer& o)
        : socket(std::move(s)), timer(socket.get_executor()), owner(o) {}

    void Start() {
      http::async_read(socket, buffer, request,
                       [self = shared_from_this()](boost::beast::error_code ec, size_t) {
                         if (!ec) self->OnRequest();
                       });
    }
    void OnRequest() {
      ++owner.requests_;
      const std::string target(request.target());
      response.version(11);
      response.keep_alive(false);
      response.result(http::status::ok);
      if (target == "/ok") {
        response.body() = "hello";
      } else if (target == "/big" || target == "/chunked") {
        response.body() = std::string(2 * kOutputLimit, 'x');
        if (target == "/chunked") response.chunked(true);
      } else if (target == "/redirect") {
        response.result(http::status::found);
        response.set(http::field::location, "/ok");
      } else if (target == "/loop") {
        response.result(http::status::found);
        response.set(http::field::location, "/loop");
        response.body() = "a redirect body is never output";
      } else if (target.rfind("/chain/", 0) == 0) {
        const int n = std::stoi(target.substr(7));
        if (n == 0) {
          response.body() = "end";
        } else {
          response.result(http::status::moved_permanently);
          response.set(http::field::location, absl::StrCat("/chain/", n - 1));
        }
      } else if (target.rfind("/to/", 0) == 0) {
        response.result(http::status::found);
        response.set(http::field::location, target.substr(4));
      } else if (target == "/slow") {
        response.body() = "late";
        timer.expires_after(std::chrono::seconds(2));
        timer.async_wait([self = shared_from_this()](boost::beast::error_code) { self->Send(); });
        return;
      } else {
        response.result(http::status::not_found);
        response.body() = "no such page";
      }
      Send();
    }
    void Send() {
      if (!response.chunked()) response.prepare_payload();
      http::async_write(socket, response,
                        [self = shared_from_this()](boost::beast::error_code, size_t) {
                          boost::beast::error_code ignored;
                          self->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                        });
    }

    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    TestHttpServer& owner;
    boost::beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::beast::error_code ec, asio::ip::tcp::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket), *this)->Start();
      Accept();
    });
  }

  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_{io_, {asio::ip::make_address("127.0.0.1"), 0}};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

class IoKindsFiles : public testing::Test {
 protected:
  IoKindsFiles() : data_(dir_.path() / "data") {
    std::filesystem::create_directory(data_);
    settings_.data_dir = data_.string();
  }

  TempDir dir_;
  std::filesystem::path data_;  // io.data_dir, inside dir_ so there is an "outside" to test.
  IoSettings settings_;
};

// --- the list -------------------------------------------------------------

TEST(IoKinds, ListsEveryKindInOrderOnTheIoPool) {
  std::vector<std::string> names;
  for (const KindSpec& spec : IoKinds(IoSettings{})) {
    names.push_back(spec.name);
    EXPECT_EQ(spec.pool, Pool::kIo) << spec.name;
    EXPECT_FALSE(spec.description.empty()) << spec.name;
    EXPECT_TRUE(spec.run != nullptr) << spec.name;
    for (const ParamSpec& param : spec.params) {
      EXPECT_FALSE(param.description.empty()) << spec.name << "." << param.name;
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"sleep", "http.get", "file.read", "file.write",
                                             "dns.resolve"}));
}

TEST(IoKinds, ValidationRejectsOutOfRangeParams) {
  EXPECT_EQ(RunKind(IoSettings{}, "sleep", {{"ms", "3600001"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKind(IoSettings{}, "file.read", {{"path", "a"}, {"offset", "-1"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKind(IoSettings{}, "http.get", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- file.read / file.write ----------------------------------------------

TEST_F(IoKindsFiles, FileWriteThenReadRoundTrips) {
  absl::StatusOr<std::string> wrote =
      RunKind(settings_, "file.write", {{"path", "a.txt"}}, "hello");
  ASSERT_TRUE(wrote.ok()) << wrote.status();
  EXPECT_EQ(*wrote, "5");
  EXPECT_EQ(ReadFile(data_ / "a.txt"), "hello");

  absl::StatusOr<std::string> read = RunKind(settings_, "file.read", {{"path", "a.txt"}});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "hello");
}

TEST_F(IoKindsFiles, FileWriteReplacesKeepingModeAndLeavesNoTemporaryFile) {
  std::filesystem::create_directory(data_ / "sub");
  WriteFile(data_ / "sub" / "f", "old content");
  ASSERT_EQ(::chmod((data_ / "sub" / "f").c_str(), 0600), 0);

  absl::StatusOr<std::string> wrote = RunKind(settings_, "file.write", {{"path", "sub/f"}}, "new");
  ASSERT_TRUE(wrote.ok()) << wrote.status();
  EXPECT_EQ(*wrote, "3");
  EXPECT_EQ(ReadFile(data_ / "sub" / "f"), "new");
  struct stat info {};
  ASSERT_EQ(::stat((data_ / "sub" / "f").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  int entries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(data_ / "sub")) {
    EXPECT_EQ(entry.path().filename(), "f");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(IoKindsFiles, FileWriteAcceptsAnEmptyPayload) {
  absl::StatusOr<std::string> wrote = RunKind(settings_, "file.write", {{"path", "empty"}}, "");
  ASSERT_TRUE(wrote.ok()) << wrote.status();
  EXPECT_EQ(*wrote, "0");
  EXPECT_TRUE(std::filesystem::is_regular_file(data_ / "empty"));
}

TEST_F(IoKindsFiles, FileWriteIntoMissingDirectoryIsNotFound) {
  absl::StatusOr<std::string> wrote = RunKind(settings_, "file.write", {{"path", "nodir/f"}}, "x");
  EXPECT_EQ(wrote.status().code(), absl::StatusCode::kNotFound) << wrote.status();
}

TEST_F(IoKindsFiles, FileWriteRefusesDirectoryTargets) {
  std::filesystem::create_directory(data_ / "d");
  EXPECT_EQ(RunKind(settings_, "file.write", {{"path", "d"}}, "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RunKind(settings_, "file.write", {{"path", "d/"}}, "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(IoKindsFiles, FileReadHonoursOffsetAndLength) {
  WriteFile(data_ / "digits", "0123456789");
  EXPECT_EQ(*RunKind(settings_, "file.read", {{"path", "digits"}, {"offset", "3"}}), "3456789");
  EXPECT_EQ(
      *RunKind(settings_, "file.read", {{"path", "digits"}, {"offset", "3"}, {"length", "4"}}),
      "3456");
  EXPECT_EQ(*RunKind(settings_, "file.read", {{"path", "digits"}, {"length", "100"}}),
            "0123456789");
  EXPECT_EQ(*RunKind(settings_, "file.read", {{"path", "digits"}, {"offset", "10"}}), "");
  EXPECT_EQ(*RunKind(settings_, "file.read", {{"path", "digits"}, {"length", "0"}}), "");
}

TEST_F(IoKindsFiles, FileReadOffsetPastTheEndIsOutOfRange) {
  WriteFile(data_ / "digits", "0123456789");
  absl::StatusOr<std::string> read =
      RunKind(settings_, "file.read", {{"path", "digits"}, {"offset", "11"}});
  EXPECT_EQ(read.status().code(), absl::StatusCode::kOutOfRange) << read.status();
}

TEST_F(IoKindsFiles, FileReadMissingFileIsNotFound) {
  absl::StatusOr<std::string> read = RunKind(settings_, "file.read", {{"path", "nope.txt"}});
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound) << read.status();
  EXPECT_NE(read.status().message().find("nope.txt"), std::string::npos);
}

TEST_F(IoKindsFiles, FileReadRefusesDirectories) {
  std::filesystem::create_directory(data_ / "d");
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", "d"}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(IoKindsFiles, FileReadLargerThanTheOutputIsResourceExhausted) {
  WriteFile(data_ / "big", std::string(kOutputLimit + 1, 'x'));
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", "big"}}).status().code(),
            absl::StatusCode::kResourceExhausted);
  // The part that fits is fine.
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", "big"}, {"offset", "1"}})->size(),
            kOutputLimit);
}

TEST_F(IoKindsFiles, FileKindsApplyLimitsEvenToALargerOutput) {
  settings_.limits.max_output_bytes = 4;
  WriteFile(data_ / "f", "12345");
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", "f"}}).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(*RunKind(settings_, "file.read", {{"path", "f"}, {"length", "4"}}), "1234");
}

TEST_F(IoKindsFiles, FileKindsRejectAnEmptyPath) {
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", ""}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunKind(settings_, "file.write", {{"path", ""}}, "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(IoKindsFiles, FileReadRefusesPathsOutsideDataDir) {
  WriteFile(dir_.path() / "secret", "outside");
  std::filesystem::create_directory(data_ / "sub");
  std::filesystem::create_symlink("/etc/passwd", data_ / "abs_link");
  std::filesystem::create_symlink("../secret", data_ / "rel_link");
  std::filesystem::create_symlink("/etc", data_ / "etc_dir");
  for (const char* path : {"../etc/passwd", "/etc/passwd", "../secret", "abs_link", "rel_link",
                           "etc_dir/passwd", "sub/../../secret"}) {
    absl::StatusOr<std::string> read = RunKind(settings_, "file.read", {{"path", path}});
    EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied)
        << path << ": " << read.status();
  }
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", "../secret"}}).status().message(),
            "file.read: path '../secret' resolves outside io.data_dir (paths must stay inside it: "
            "no '..' above it, no absolute paths, no symlinks leading out)");
}

TEST_F(IoKindsFiles, FileReadFollowsSymlinksThatStayInside) {
  std::filesystem::create_directory(data_ / "sub");
  WriteFile(data_ / "target", "inside");
  std::filesystem::create_symlink("../target", data_ / "sub" / "link");
  absl::StatusOr<std::string> read = RunKind(settings_, "file.read", {{"path", "sub/link"}});
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "inside");
}

TEST_F(IoKindsFiles, FileWriteRefusesPathsOutsideDataDir) {
  std::filesystem::create_directory(dir_.path() / "outdir");
  std::filesystem::create_symlink(dir_.path() / "outdir", data_ / "abs_dir_link");
  std::filesystem::create_symlink("../outdir", data_ / "rel_dir_link");
  for (const char* path :
       {"../escaped", "/tmp/escaped", "abs_dir_link/escaped", "rel_dir_link/escaped"}) {
    absl::StatusOr<std::string> wrote = RunKind(settings_, "file.write", {{"path", path}}, "x");
    EXPECT_EQ(wrote.status().code(), absl::StatusCode::kPermissionDenied)
        << path << ": " << wrote.status();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "escaped"));
  EXPECT_TRUE(std::filesystem::is_empty(dir_.path() / "outdir"));
}

TEST_F(IoKindsFiles, FileWriteReplacesASymlinkInsteadOfWritingThroughIt) {
  WriteFile(dir_.path() / "secret", "outside");
  std::filesystem::create_symlink(dir_.path() / "secret", data_ / "link");
  ASSERT_TRUE(RunKind(settings_, "file.write", {{"path", "link"}}, "new").ok());
  EXPECT_EQ(ReadFile(dir_.path() / "secret"), "outside");
  EXPECT_FALSE(std::filesystem::is_symlink(data_ / "link"));
  EXPECT_EQ(ReadFile(data_ / "link"), "new");
}

TEST_F(IoKindsFiles, ProcSelfTricksAreRefused) {
  // Symlinks into /proc/self (absolute, or climbing out relatively), and the
  // same paths given directly.
  std::filesystem::create_symlink("/proc/self/root", data_ / "proc_root");
  std::filesystem::create_symlink("/proc/self/cwd", data_ / "proc_cwd");
  std::filesystem::create_symlink("/proc/self/fd", data_ / "proc_fd");
  std::string up;
  for (const auto& part : data_) {
    if (part != "/") up += "../";
  }
  std::filesystem::create_symlink(up + "proc/self/root", data_ / "rel_proc_root");
  for (const std::string& path : std::vector<std::string>{
           "proc_root/etc/passwd", "proc_cwd", "proc_fd/0", "rel_proc_root/etc/passwd",
           "/proc/self/root/etc/passwd", "/proc/self/environ", up + "proc/self/root/etc/passwd",
           "../../../../../../../../proc/self/status"}) {
    absl::StatusOr<std::string> read = RunKind(settings_, "file.read", {{"path", path}});
    EXPECT_EQ(read.status().code(), absl::StatusCode::kPermissionDenied)
        << path << ": " << read.status();
  }
  for (const char* path : {"proc_root/tmp/escaped", "proc_cwd/escaped", "rel_proc_root/tmp/x",
                           "/proc/self/cwd/escaped"}) {
    absl::StatusOr<std::string> wrote = RunKind(settings_, "file.write", {{"path", path}}, "x");
    EXPECT_EQ(wrote.status().code(), absl::StatusCode::kPermissionDenied)
        << path << ": " << wrote.status();
  }
  EXPECT_FALSE(std::filesystem::exists("/tmp/escaped"));
}

TEST(IoKinds, MagicLinksAreRefusedEvenBeneathTheDataDir) {
  // With /proc/self as io.data_dir, "root" and "cwd" and "fd/N" lie beneath it
  // but are magic links: RESOLVE_NO_MAGICLINKS stops them.
  IoSettings settings;
  settings.data_dir = "/proc/self";
  for (const char* path : {"root/etc/passwd", "cwd/x", "fd/0", "exe", "root"}) {
    absl::StatusOr<std::string> read = RunKind(settings, "file.read", {{"path", path}});
    EXPECT_FALSE(read.ok()) << path;
    EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition)
        << path << ": " << read.status();
    EXPECT_NE(read.status().message().find("magic link"), std::string::npos) << read.status();
  }
  absl::StatusOr<std::string> wrote =
      RunKind(settings, "file.write", {{"path", "root/tmp/escaped"}}, "x");
  EXPECT_EQ(wrote.status().code(), absl::StatusCode::kFailedPrecondition) << wrote.status();
  EXPECT_FALSE(std::filesystem::exists("/tmp/escaped"));
}

TEST_F(IoKindsFiles, OverLongNamesAreInvalidArgumentNamingTheLimit) {
  const std::string long_name(NAME_MAX + 1, 'n');
  const std::string long_path = std::string(PATH_MAX, 'p');
  std::string deep_path;  // Short names, too many of them.
  while (deep_path.size() < PATH_MAX) deep_path += "d/";
  for (const char* kind : {"file.read", "file.write"}) {
    absl::StatusOr<std::string> result = RunKind(settings_, kind, {{"path", long_name}}, "x");
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    EXPECT_EQ(result.status().message(),
              absl::StrCat(kind,
                           ": param 'path' has a name of 256 bytes ('nnnnnnnnnnnnnnnn...'); "
                           "at most 255 are allowed in each part of a path (NAME_MAX)"));
    result = RunKind(settings_, kind, {{"path", absl::StrCat("sub/", long_name, "/f")}}, "x");
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    for (const std::string& path : {long_path, deep_path, std::string(100'000, 'x')}) {
      result = RunKind(settings_, kind, {{"path", path}}, "x");
      EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
      EXPECT_NE(result.status().message().find("at most 4095 are allowed (PATH_MAX)"),
                std::string::npos)
          << result.status().message().substr(0, 200);
      EXPECT_LT(result.status().message().size(), 200u);
    }
  }
  // The limits themselves are fine.
  const std::string longest_name(NAME_MAX, 'n');
  ASSERT_TRUE(RunKind(settings_, "file.write", {{"path", longest_name}}, "edge").ok());
  EXPECT_EQ(*RunKind(settings_, "file.read", {{"path", longest_name}}), "edge");
  std::string deepest = "";
  while (deepest.size() + 2 < PATH_MAX - 1) deepest += "./";
  deepest += longest_name.substr(0, PATH_MAX - 1 - deepest.size());
  EXPECT_EQ(RunKind(settings_, "file.read", {{"path", deepest}}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(IoKinds, FileKindsNeedADataDir) {
  EXPECT_EQ(RunKind(IoSettings{}, "file.read", {{"path", "a"}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- sleep ------------------------------------------------------------------

TEST(IoKinds, SleepWaitsAndSucceeds) {
  const steady_clock::time_point start = steady_clock::now();
  absl::StatusOr<std::string> slept = RunKind(IoSettings{}, "sleep", {{"ms", "30"}});
  ASSERT_TRUE(slept.ok()) << slept.status();
  EXPECT_EQ(*slept, "");
  EXPECT_GE(steady_clock::now() - start, milliseconds(30));
}

TEST(IoKinds, SleepStopsQuicklyWhenCancelled) {
  std::atomic<bool> cancelled{false};
  const steady_clock::time_point start = steady_clock::now();
  absl::StatusOr<std::string> slept;
  {
    CancelLater cancel(cancelled, milliseconds(50));
    slept =
        RunKind(IoSettings{}, "sleep", {{"ms", "10000"}}, "", TaskContext{.cancelled = &cancelled});
  }
  EXPECT_EQ(slept.status().code(), absl::StatusCode::kCancelled) << slept.status();
  EXPECT_LT(steady_clock::now() - start, milliseconds(500));
}

TEST(IoKinds, SleepStopsQuicklyAtTheDeadline) {
  const steady_clock::time_point start = steady_clock::now();
  absl::StatusOr<std::string> slept =
      RunKind(IoSettings{}, "sleep", {{"ms", "10000"}}, "", WithDeadline(milliseconds(50)));
  EXPECT_EQ(slept.status().code(), absl::StatusCode::kDeadlineExceeded) << slept.status();
  EXPECT_LT(steady_clock::now() - start, milliseconds(500));
}

// --- dns.resolve --------------------------------------------------------------

TEST(IoKinds, DnsResolveFindsLocalhost) {
  absl::StatusOr<std::string> addresses =
      RunKind(IoSettings{}, "dns.resolve", {{"host", "localhost"}});
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  EXPECT_TRUE(addresses->find("127.0.0.1\n") != std::string::npos ||
              addresses->find("::1\n") != std::string::npos)
      << *addresses;
}

TEST(IoKinds, DnsResolveListsEachAddressOnce) {
  absl::StatusOr<std::string> addresses =
      RunKind(IoSettings{}, "dns.resolve", {{"host", "127.0.0.1"}});
  ASSERT_TRUE(addresses.ok()) << addresses.status();
  EXPECT_EQ(*addresses, "127.0.0.1\n");
}

TEST(IoKinds, DnsResolveUnknownHostIsNotFound) {
  absl::StatusOr<std::string> addresses =
      RunKind(IoSettings{}, "dns.resolve", {{"host", "no-such-host.invalid"}});
  if (addresses.status().code() == absl::StatusCode::kUnavailable) {
    GTEST_SKIP() << "no DNS server answered: " << addresses.status();
  }
  EXPECT_EQ(addresses.status().code(), absl::StatusCode::kNotFound) << addresses.status();
  EXPECT_NE(addresses.status().message().find("'no-such-host.invalid'"), std::string::npos);
}

// --- http.get -------------------------------------------------------------------

class IoKindsHttp : public testing::Test {
 protected:
  IoKindsHttp() {
    InitIoKinds();
    settings_.http_allow = {"example.org", absl::StrCat("127.0.0.1:", server_.port())};
  }

  absl::StatusOr<std::string> Get(absl::string_view url, const TaskContext& context = {}) {
    return RunKind(settings_, "http.get", {{"url", std::string(url)}}, "", context);
  }

  TestHttpServer server_;
  IoSettings settings_;
};

TEST_F(IoKindsHttp, ReturnsTheBody) {
  absl::StatusOr<std::string> body = Get(server_.Url("/ok"));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello");
}

TEST_F(IoKindsHttp, Non2xxIsFailedPreconditionNamingTheStatus) {
  absl::StatusOr<std::string> body = Get(server_.Url("/missing"));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition) << body.status();
  EXPECT_NE(body.status().message().find("HTTP 404"), std::string::npos) << body.status();
}

TEST_F(IoKindsHttp, FollowsRedirectsWithinTheAllowList) {
  absl::StatusOr<std::string> body = Get(server_.Url("/redirect"));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello");
  EXPECT_EQ(server_.requests(), 2);
  // Exactly as many as allowed.
  settings_.http_max_redirects = 3;
  body = Get(server_.Url("/chain/3"));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "end");
}

TEST_F(IoKindsHttp, ZeroMaxRedirectsFollowsNone) {
  settings_.http_max_redirects = 0;
  absl::StatusOr<std::string> body = Get(server_.Url("/redirect"));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition) << body.status();
  EXPECT_EQ(body.status().message(),
            absl::StrCat("http.get ", server_.Url("/redirect"),
                         ": HTTP 302 (redirects are not followed: io.http_max_redirects = 0; "
                         "Location: ",
                         server_.Url("/ok"), ")"));
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(IoKindsHttp, RedirectLoopStopsAtTheLimit) {
  settings_.http_max_redirects = 3;
  absl::StatusOr<std::string> body = Get(server_.Url("/loop"));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition) << body.status();
  EXPECT_NE(body.status().message().find(
                "HTTP 302 (too many redirects: io.http_max_redirects = 3 were followed"),
            std::string::npos)
      << body.status();
  EXPECT_EQ(server_.requests(), 4);
  body = Get(server_.Url("/chain/4"));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kFailedPrecondition) << body.status();
}

TEST_F(IoKindsHttp, RedirectToAHostNotAllowedIsPermissionDeniedNamingTheHop) {
  const std::string url = server_.Url("/to/http://192.0.2.1:8080/x");
  absl::StatusOr<std::string> body = Get(url);
  EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied) << body.status();
  EXPECT_EQ(body.status().message(),
            absl::StrCat("http.get ", url,
                         ": redirect 1 (HTTP 302) to 'http://192.0.2.1:8080/x': host "
                         "'192.0.2.1:8080' is not in io.http_allow (allowed: example.org, "
                         "127.0.0.1:",
                         server_.port(), ")"));
  EXPECT_EQ(server_.requests(), 1);
}

TEST_F(IoKindsHttp, RedirectToAnotherSchemeIsPermissionDenied) {
  settings_.http_allow.push_back("*");
  for (const char* location : {"file:///etc/passwd", "ftp://127.0.0.1/", "gopher://x/"}) {
    absl::StatusOr<std::string> body = Get(server_.Url(absl::StrCat("/to/", location)));
    EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied) << body.status();
    EXPECT_NE(body.status().message().find("allowed schemes: http, https"), std::string::npos)
        << body.status();
  }
}

TEST_F(IoKindsHttp, RedirectToMetadataOrLinkLocalIsRefusedEvenUnderTheWildcard) {
  settings_.http_allow = {"*", absl::StrCat("127.0.0.1:", server_.port())};
  for (const char* location : {"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
                               "http://169.254.1.2/", "http://100.100.100.200/latest/meta-data/",
                               "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/"}) {
    const steady_clock::time_point start = steady_clock::now();
    absl::StatusOr<std::string> body = Get(server_.Url(absl::StrCat("/to/", location)));
    EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied)
        << location << ": " << body.status();
    EXPECT_NE(body.status().message().find("redirect 1 (HTTP 302)"), std::string::npos)
        << body.status();
    EXPECT_NE(body.status().message().find("only an io.http_allow entry naming the address"),
              std::string::npos)
        << body.status();
    // Refused before connecting: no timeout was waited for.
    EXPECT_LT(steady_clock::now() - start, milliseconds(2000)) << location;
  }
}

TEST_F(IoKindsHttp, WildcardRefusesMetadataAndLinkLocalAddressesBeforeConnecting) {
  settings_.http_allow = {"*"};
  const struct {
    const char* url;
    const char* shown;
    const char* what;
  } cases[] = {
      {"http://169.254.169.254/latest/meta-data/", "169.254.169.254:80", "a cloud metadata"},
      {"http://[fe80::1]/", "[fe80::1]:80", "a link-local"},
      {"http://[fe80::1%25lo]:8080/", "[fe80::1]:8080", "a link-local"},
      {"http://169.254.10.10/", "169.254.10.10:80", "a link-local"},
      {"http://100.100.100.200/", "100.100.100.200:80", "a cloud metadata"},
      {"http://[fd00:ec2::254]/", "[fd00:ec2::254]:80", "a cloud metadata"},
      // Numeric spellings of 169.254.169.254 that curl's URL parser understands.
      {"http://2852039166/", "169.254.169.254:80", "a cloud metadata"},
      {"http://0xa9fea9fe/", "169.254.169.254:80", "a cloud metadata"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::string> body = Get(c.url);
    EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied)
        << c.url << ": " << body.status();
    EXPECT_NE(body.status().message().find(absl::StrCat("refused to connect to ", c.shown)),
              std::string::npos)
        << body.status();
    EXPECT_NE(body.status().message().find(absl::StrCat("it is ", c.what, " address")),
              std::string::npos)
        << body.status();
  }
  // Listing the address itself opens it: the connection is attempted (it
  // fails, times out or gets an answer, depending on the machine).
  settings_.http_allow = {"169.254.169.254"};
  settings_.http_connect_timeout_ms = 200;
  absl::StatusOr<std::string> body = Get("http://169.254.169.254/");
  EXPECT_NE(body.status().code(), absl::StatusCode::kPermissionDenied) << body.status();
}

// A host name whose DNS answer is a metadata address. The name is resolved by
// the system resolver (curl's threaded resolver, getaddrinfo, /etc/hosts
// first), in a child process given its own mount namespace with a private
// /etc/hosts, so nothing outside the test sees the name. Skipped where the
// child may not create the namespace (not root and no user namespaces).
TEST(IoKindsHttpDns, ANameThatResolvesToMetadataIsRefusedEvenWhenListed) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipe_fds[0]);
    auto report = [&](int code, const std::string& text) {
      (void)!::write(pipe_fds[1], text.data(), text.size());
      ::_exit(code);
    };
    if (::unshare(CLONE_NEWNS) != 0 && ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
      report(77, absl::StrCat("unshare: ", std::strerror(errno)));
    }
    char hosts[] = "/tmp/crunch-hosts-XXXXXX";
    const int fd = ::mkstemp(hosts);
    const std::string content =
        "169.254.169.254 metadata.crunch.test\nfe80::1 linklocal.crunch.test\n";
    if (fd < 0 ||
        ::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
      report(1, "cannot write the hosts file");
    }
    ::close(fd);
    const bool mounted = ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
                         ::mount(hosts, "/etc/hosts", nullptr, MS_BIND, nullptr) == 0;
    ::unlink(hosts);
    if (!mounted) report(77, absl::StrCat("mount: ", std::strerror(errno)));
    InitIoKinds();
    std::string failures;
    for (const std::vector<std::string>& allow :
         {std::vector<std::string>{"*"},
          std::vector<std::string>{"metadata.crunch.test", "linklocal.crunch.test"}}) {
      IoSettings settings;
      settings.http_allow = allow;
      settings.http_connect_timeout_ms = 500;
      for (const char* url : {"http://metadata.crunch.test/latest/meta-data/",
                              "http://linklocal.crunch.test:8080/"}) {
        absl::StatusOr<std::string> body =
            RunKind(settings, "http.get", {{"url", url}}, "", WithDeadline(milliseconds(5000)));
        const std::string message(body.status().message());
        if (body.status().code() != absl::StatusCode::kPermissionDenied ||
            message.find("refused to connect to") == std::string::npos ||
            message.find("neither \"*\" nor a host name that resolves there") ==
                std::string::npos) {
          absl::StrAppend(&failures, url, " with http_allow [", allow[0],
                          ", ...]: ", body.status().ToString(), "\n");
        }
      }
    }
    report(failures.empty() ? 0 : 1, failures);
  }
  ::close(pipe_fds[1]);
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) output.append(buffer, n);
  ::close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child status " << status;
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "no private mount namespace: " << output;
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
}

TEST_F(IoKindsHttp, WildcardDoesNotReachLoopbackButAListedHostOrAddressDoes) {
  settings_.http_allow = {"*"};
  for (const std::string& url :
       {server_.Url("/ok"), absl::StrCat("http://localhost:", server_.port(), "/ok"),
        absl::StrCat("http://0.0.0.0:", server_.port(), "/ok"),
        absl::StrCat("http://127.1:", server_.port(), "/ok")}) {
    absl::StatusOr<std::string> body = Get(url);
    EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied)
        << url << ": " << body.status();
    EXPECT_NE(body.status().message().find("\"*\" in io.http_allow does not cover it"),
              std::string::npos)
        << body.status();
  }
  EXPECT_EQ(server_.requests(), 0);
  // "localhost" resolves to loopback: the DNS answer is what is judged.
  EXPECT_NE(Get(absl::StrCat("http://localhost:", server_.port(), "/ok"))
                .status()
                .message()
                .find("(from host 'localhost')"),
            std::string::npos);

  settings_.http_allow = {"*", "localhost"};
  EXPECT_TRUE(Get(absl::StrCat("http://localhost:", server_.port(), "/ok")).ok());
  settings_.http_allow = {"*", "127.0.0.1"};
  EXPECT_TRUE(Get(absl::StrCat("http://localhost:", server_.port(), "/ok")).ok());
}

TEST_F(IoKindsHttp, ConnectTimeoutIsUnavailableNamingTheLimit) {
  // A listener whose accept queue is full: the kernel drops further SYNs, so a
  // connection attempt hangs until the client gives up.
  asio::io_context io;
  asio::ip::tcp::acceptor full(io, {asio::ip::make_address("127.0.0.1"), 0});
  full.listen(0);
  // Non-blocking connects that fill the queue (asio's connect would wait for them).
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(full.local_endpoint().port());
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fillers;
  for (int i = 0; i < 3; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    fillers.push_back(fd);
    (void)::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  }
  const absl::Cleanup close_fillers = [&] {
    for (int fd : fillers) ::close(fd);
  };
  std::this_thread::sleep_for(milliseconds(50));
  settings_.http_allow = {"127.0.0.1"};
  settings_.http_connect_timeout_ms = 300;
  const steady_clock::time_point start = steady_clock::now();
  absl::StatusOr<std::string> body =
      Get(absl::StrCat("http://127.0.0.1:", full.local_endpoint().port(), "/"),
          WithDeadline(milliseconds(10000)));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable) << body.status();
  EXPECT_NE(body.status().message().find("within 300 ms (io.http_connect_timeout_ms)"),
            std::string::npos)
      << body.status();
  EXPECT_LT(steady_clock::now() - start, milliseconds(3000));
}

TEST_F(IoKindsHttp, BodyOverTheOutputLimitIsResourceExhaustedNamingTheLimit) {
  for (const char* target : {"/big", "/chunked"}) {
    absl::StatusOr<std::string> body = Get(server_.Url(target));
    EXPECT_EQ(body.status().code(), absl::StatusCode::kResourceExhausted)
        << target << ": " << body.status();
    EXPECT_NE(body.status().message().find(
                  absl::StrCat(kOutputLimit, " bytes allowed (limits.max_output_bytes)")),
              std::string::npos)
        << body.status();
  }
}

TEST_F(IoKindsHttp, StopsQuicklyAtTheDeadline) {
  const steady_clock::time_point start = steady_clock::now();
  absl::StatusOr<std::string> body = Get(server_.Url("/slow"), WithDeadline(milliseconds(200)));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kDeadlineExceeded) << body.status();
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
}

TEST_F(IoKindsHttp, StopsWhenCancelled) {
  std::atomic<bool> cancelled{false};
  const steady_clock::time_point start = steady_clock::now();
  absl::StatusOr<std::string> body;
  {
    CancelLater cancel(cancelled, milliseconds(100));
    body = Get(server_.Url("/slow"), TaskContext{.cancelled = &cancelled});
  }
  EXPECT_EQ(body.status().code(), absl::StatusCode::kCancelled) << body.status();
  // curl calls the progress callback at least once a second while it waits.
  EXPECT_LT(steady_clock::now() - start, milliseconds(1900));
}

TEST_F(IoKindsHttp, RefusesHostsNotAllowedWithoutConnecting) {
  settings_.http_allow = {"example.org", "127.0.0.1:1"};
  absl::StatusOr<std::string> body = Get(server_.Url("/ok"));
  EXPECT_EQ(body.status().code(), absl::StatusCode::kPermissionDenied) << body.status();
  EXPECT_EQ(body.status().message(),
            absl::StrCat("http.get: '", server_.Url("/ok"), "': host '127.0.0.1:", server_.port(),
                         "' is not in io.http_allow (allowed: example.org, 127.0.0.1:1)"));
  // Names are compared as written, not resolved.
  EXPECT_EQ(Get(absl::StrCat("http://localhost:", server_.port(), "/ok")).status().code(),
            absl::StatusCode::kPermissionDenied);
  settings_.http_allow = {};
  EXPECT_EQ(Get(server_.Url("/ok")).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(IoKindsHttp, AllowListMatchesHostWithoutPortAndWildcard) {
  settings_.http_allow = {"127.0.0.1"};
  EXPECT_TRUE(Get(server_.Url("/ok")).ok());
  settings_.http_allow = {"[::1]", absl::StrCat("LOCALHOST:", server_.port())};
  EXPECT_EQ(Get(server_.Url("/ok")).status().code(), absl::StatusCode::kPermissionDenied);
  absl::StatusOr<std::string> body = Get(absl::StrCat("http://localhost:", server_.port(), "/ok"));
  // localhost may resolve to ::1 first, where nothing listens; curl then tries 127.0.0.1.
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello");
}

TEST_F(IoKindsHttp, RefusesOtherSchemes) {
  settings_.http_allow = {"*"};
  for (const char* url : {"ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/"}) {
    absl::StatusOr<std::string> body = Get(url);
    EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_NE(body.status().message().find("http, https"), std::string::npos) << body.status();
  }
  EXPECT_EQ(Get("not a url").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_.requests(), 0);
}

TEST_F(IoKindsHttp, ConnectionFailureIsUnavailable) {
  settings_.http_allow = {"127.0.0.1"};
  // Port 1 on loopback: nothing listens, so the connection is refused at once.
  absl::StatusOr<std::string> body = Get("http://127.0.0.1:1/");
  EXPECT_EQ(body.status().code(), absl::StatusCode::kUnavailable) << body.status();
}

}  // namespace
}  // namespace crunch::daemon
