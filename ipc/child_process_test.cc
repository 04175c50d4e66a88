#include "ipc/child_process.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

namespace crunch::ipc {
namespace {

bool ReadableWithin(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

class ChildProcessTest : public ::testing::TestWithParam<bool> {
 protected:
  absl::StatusOr<ChildProcess> Spawn(std::vector<std::string> args) {
    SpawnOptions options;
    options.path = "/bin/sh";
    options.args = std::move(args);
    options.exit_pipe = GetParam();
    return ChildProcess::Spawn(options);
  }
};

TEST_P(ChildProcessTest, ExitFdTurnsReadableWhenTheChildIsKilled) {
  absl::StatusOr<ChildProcess> child = Spawn({"-c", "exec sleep 30"});
  ASSERT_TRUE(child.ok()) << child.status();
  if (!GetParam()) {
    EXPECT_TRUE(child->has_pidfd()) << "this kernel has pidfds";
  }
  EXPECT_FALSE(ReadableWithin(child->exit_fd(), 50)) << "readable while the child runs";
  ASSERT_TRUE(child->Signal(SIGKILL).ok());
  ASSERT_TRUE(ReadableWithin(child->exit_fd(), 5000));
  absl::StatusOr<int> status = child->Wait();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << DescribeWaitStatus(*status);
}

TEST_P(ChildProcessTest, ExitFdTurnsReadableWhenTheChildExits) {
  absl::StatusOr<ChildProcess> child = Spawn({"-c", "exit 3"});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(ReadableWithin(child->exit_fd(), 5000));
  absl::StatusOr<int> status = child->Wait();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(DescribeWaitStatus(*status), "exited with status 3");
}

TEST_P(ChildProcessTest, SignalToAnExitedButUnreapedChildIsNotAnError) {
  absl::StatusOr<ChildProcess> child = Spawn({"-c", "exit 0"});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_TRUE(ReadableWithin(child->exit_fd(), 5000));
  EXPECT_TRUE(child->Signal(SIGTERM).ok());
}

INSTANTIATE_TEST_SUITE_P(ExitWatch, ChildProcessTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "ExitPipe" : "Pidfd";
                         });

}  // namespace
}  // namespace crunch::ipc
