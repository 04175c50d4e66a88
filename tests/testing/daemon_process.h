// DaemonProcess: a real crunchd for tests. Starts build/bin/crunchd on a unix
// socket in a fresh temporary directory, waits until it answers Status, and
// hands out gRPC stubs. Stop() sends SIGTERM and returns the exit status; the
// destructor kills whatever is left and removes the directory.
//
// Thread safety: one test thread owns it; stubs may be used from any thread.

#ifndef CRUNCH_TESTS_TESTING_DAEMON_PROCESS_H_
#define CRUNCH_TESTS_TESTING_DAEMON_PROCESS_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "crunch/v1/crunch.grpc.pb.h"

namespace crunch::testing {

class DaemonProcess {
 public:
  // Extra flags for crunchd (beyond --listen); `config_toml`, if not empty, is
  // written to a file passed with --config, with every "@DIR@" replaced by the
  // daemon's temporary directory.
  // `socket_path`, if not empty, replaces the socket in the temporary directory.
  // `token`, if not empty, is the bearer token Status() sends ([server] token_file).
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(std::vector<std::string> flags,
                                                              const std::string& config_toml = "",
                                                              const std::string& socket_path = "",
                                                              const std::string& token = "");
  ~DaemonProcess();

  const std::string& address() const { return address_; }
  const std::string& socket_path() const { return socket_path_; }
  const std::string& dir() const { return dir_; }
  pid_t pid() const { return pid_; }
  std::unique_ptr<crunch::v1::Crunch::Stub> NewStub() const;

  // Status through a fresh call (5 s deadline).
  absl::StatusOr<crunch::v1::DaemonStatus> Status() const;
  // Polls Status() until `pred` holds for it; false if it did not within `timeout`.
  bool WaitForStatus(absl::FunctionRef<bool(const crunch::v1::DaemonStatus&)> pred,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  // The pids of its crunch_worker children, from /proc.
  std::vector<pid_t> WorkerPids() const;

  // Sends `signo`.
  void Signal(int signo) const;
  // SIGTERM, then waits up to `timeout_s`; returns the wait status, or -1 on timeout.
  int Stop(int timeout_s = 30);
  // Everything crunchd wrote to stderr so far.
  std::string Log() const;
  // Polls Log() until it contains `text`; false if it did not within `timeout`.
  bool WaitForLog(std::string_view text,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

 private:
  DaemonProcess() = default;

  std::string dir_;
  std::string address_;
  std::string socket_path_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
};

// For a test body: DaemonProcess::Start, or null after a (non-fatal) test
// failure that says why, so a test goes on with `ASSERT_TRUE(d)`.
std::unique_ptr<DaemonProcess> StartDaemon(std::vector<std::string> flags,
                                           const std::string& config_toml = "");

// Runs a task with a 60 s deadline; returns the call's status and fills `result`.
grpc::Status RunTask(crunch::v1::Crunch::Stub& stub, const std::string& kind,
                     const std::map<std::string, std::string>& params, const std::string& payload,
                     crunch::v1::TaskResult* result, int timeout_ms = 0);

// A TCP port on 127.0.0.1 that nothing listened on a moment ago (for
// --metrics-listen).
uint16_t FreeLoopbackPort();

}  // namespace crunch::testing

#endif  // CRUNCH_TESTS_TESTING_DAEMON_PROCESS_H_
