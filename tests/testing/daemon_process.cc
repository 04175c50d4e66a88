#include "tests/testing/daemon_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace crunch::testing {

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(std::vector<std::string> flags,
                                                                    const std::string& config_toml,
                                                                    const std::string& socket_path,
                                                                    const std::string& token) {
  std::unique_ptr<DaemonProcess> d(new DaemonProcess());
  d->token_ = token;
  char tmpl[] = "/tmp/crunchd-test-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  d->dir_ = tmpl;
  d->socket_path_ = socket_path.empty() ? d->dir_ + "/crunchd.sock" : socket_path;
  d->address_ = "unix:" + d->socket_path_;
  d->log_path_ = d->dir_ + "/crunchd.log";
  std::vector<std::string> args = {CRUNCHD_PATH, "--listen", d->address_};
  if (!config_toml.empty()) {
    std::string text = config_toml;
    for (size_t at; (at = text.find("@DIR@")) != std::string::npos;) text.replace(at, 5, d->dir_);
    std::ofstream(d->dir_ + "/crunchd.toml") << text;
    args.push_back("--config");
    args.push_back(d->dir_ + "/crunchd.toml");
  }
  for (std::string& f : flags) args.push_back(std::move(f));
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, d->log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  const int rc = ::posix_spawn(&d->pid_, CRUNCHD_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::InternalError(absl::StrCat("posix_spawn crunchd: ", strerror(rc)));

  // Reconnect fast: the socket appears a few hundred ms after the spawn, and
  // gRPC's default backoff would make the channel wait seconds for it.
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  channel_args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
  channel_args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < give_up) {
    int wstatus = 0;
    if (::waitpid(d->pid_, &wstatus, WNOHANG) == d->pid_) {
      d->pid_ = -1;
      return absl::InternalError(absl::StrCat("crunchd exited at start: ", d->Log()));
    }
    if (d->channel_ == nullptr) {
      if (!std::filesystem::exists(d->socket_path_)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      d->channel_ =
          grpc::CreateCustomChannel(d->address_, grpc::InsecureChannelCredentials(), channel_args);
    }
    absl::StatusOr<crunch::v1::DaemonStatus> s = d->Status();
    if (s.ok()) {
      bool all_idle = !s->workers().empty();
      for (const auto& w : s->workers()) all_idle = all_idle && w.state() == "idle";
      if (all_idle) return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("crunchd did not become ready within 30 s: ", d->Log()));
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::unique_ptr<crunch::v1::Crunch::Stub> DaemonProcess::NewStub() const {
  return crunch::v1::Crunch::NewStub(channel_);
}

absl::StatusOr<crunch::v1::DaemonStatus> DaemonProcess::Status() const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token_.empty()) context.AddMetadata("authorization", "Bearer " + token_);
  crunch::v1::DaemonStatus status;
  grpc::Status s =
      crunch::v1::Crunch::NewStub(channel_)->Status(&context, crunch::v1::StatusRequest(), &status);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return status;
}

bool DaemonProcess::WaitForStatus(absl::FunctionRef<bool(const crunch::v1::DaemonStatus&)> pred,
                                  std::chrono::milliseconds timeout) const {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < give_up) {
    absl::StatusOr<crunch::v1::DaemonStatus> s = Status();
    if (s.ok() && pred(*s)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

bool DaemonProcess::WaitForLog(std::string_view text, std::chrono::milliseconds timeout) const {
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  while (Log().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::unique_ptr<DaemonProcess> StartDaemon(std::vector<std::string> flags,
                                           const std::string& config_toml) {
  absl::StatusOr<std::unique_ptr<DaemonProcess>> d =
      DaemonProcess::Start(std::move(flags), config_toml);
  if (!d.ok()) {
    ADD_FAILURE() << d.status();
    return nullptr;
  }
  return *std::move(d);
}

std::vector<pid_t> DaemonProcess::WorkerPids() const {
  std::vector<pid_t> pids;
  if (pid_ <= 0) return pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // pid (comm) state ppid ...
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == pid_ && line.find("(crunch_worker)") != std::string::npos) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

void DaemonProcess::Signal(int signo) const {
  if (pid_ > 0) ::kill(pid_, signo);
}

int DaemonProcess::Stop(int timeout_s) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < give_up) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return wstatus;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::string DaemonProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

grpc::Status RunTask(crunch::v1::Crunch::Stub& stub, const std::string& kind,
                     const std::map<std::string, std::string>& params, const std::string& payload,
                     crunch::v1::TaskResult* result, int timeout_ms) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  crunch::v1::TaskRequest request;
  request.set_kind(kind);
  request.set_payload(payload);
  for (const auto& [k, v] : params) (*request.mutable_params())[k] = v;
  request.set_timeout_ms(static_cast<uint32_t>(timeout_ms));
  return stub.Run(&context, request, result);
}

uint16_t FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  return ok ? ntohs(addr.sin_port) : 0;
}

}  // namespace crunch::testing
