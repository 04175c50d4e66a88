// crunchctl against the real crunchd: one daemon (two workers, a unix socket in
// a temporary directory) for the whole program, driven through the crunchctl
// binary exactly as a shell would, checking stdout, stderr and the exit status.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

struct Outcome {
  int exit_code = -1;  // 128 + signal when killed.
  std::string out;
  std::string err;
};

std::string Describe(const std::vector<std::string>& args, const Outcome& o) {
  std::string text = "crunchctl";
  for (const std::string& a : args) text += " " + a;
  return text + "\nexit " + std::to_string(o.exit_code) + "\nstdout:\n" + o.out + "\nstderr:\n" +
         o.err;
}

pid_t Spawn(const std::vector<std::string>& argv, posix_spawn_file_actions_t* actions) {
  std::vector<char*> c_argv;
  for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, c_argv[0], actions, nullptr, c_argv.data(), environ) != 0) return -1;
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

// Runs `program args` with `input` on stdin; captures stdout and stderr. Killed after 60 s.
Outcome RunProgram(const std::string& program, const std::vector<std::string>& args,
                   const std::string& input = "") {
  int in[2], out[2], err[2];
  EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = Spawn(argv, &actions);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  Outcome o;
  if (pid < 0) {
    ADD_FAILURE() << "cannot start " << program;
    return o;
  }

  // stdin, stdout and stderr all at once, so no pipe can fill up and block the child.
  size_t written = 0;
  int in_fd = in[1];
  ::fcntl(in_fd, F_SETFL, O_NONBLOCK);
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  Clock::time_point give_up = Clock::now() + std::chrono::seconds(60);
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    pollfd fds[3] = {{out_open ? out[0] : -1, POLLIN, 0},
                     {err_open ? err[0] : -1, POLLIN, 0},
                     {in_fd, POLLOUT, 0}};
    if (::poll(fds, 3, 100) < 0 && errno != EINTR) break;
    if (Clock::now() > give_up) {
      ADD_FAILURE() << "timed out; killing it";
      ::kill(pid, SIGKILL);
      give_up = Clock::time_point::max();
    }
    char buf[65536];
    for (int i = 0; i < 2; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        (i == 0 ? o.out : o.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        (i == 0 ? out_open : err_open) = false;
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR))) {
      const ssize_t n = ::write(in_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 || written == input.size()) {
        ::close(in_fd);
        in_fd = -1;
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(out[0]);
  ::close(err[0]);
  o.exit_code = WaitExit(pid);
  return o;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The daemon, started once for all tests.
class Daemon : public ::testing::Environment {
 public:
  static std::string dir;
  static std::string address;

  void SetUp() override {
    char pattern[] = "/tmp/crunchctl_test.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir = pattern;
    address = "unix:" + dir + "/crunchd.sock";

    const std::string log = dir + "/crunchd.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    pid_ = Spawn({CRUNCHD_PATH, "--listen", address, "--workers", "2"}, &actions);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_GT(pid_, 0) << "cannot start " << CRUNCHD_PATH;

    // Ready once crunchctl status succeeds.
    const Clock::time_point give_up = Clock::now() + std::chrono::seconds(20);
    Outcome o;
    while (Clock::now() < give_up) {
      o = RunProgram(CRUNCHCTL_PATH, {"--address", address, "status"});
      if (o.exit_code == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "crunchd did not become ready:\n" << o.err << "\nlog:\n" << Log();
  }

  void TearDown() override {
    if (pid_ > 0) {
      ASSERT_EQ(::kill(pid_, SIGTERM), 0);
      EXPECT_EQ(WaitExit(pid_), 0) << "crunchd's exit status after SIGTERM; log:\n" << Log();
    }
    std::error_code ec;
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir, ec);
  }

  static std::string Log() {
    std::ifstream in(dir + "/crunchd.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  pid_t pid_ = -1;
};

std::string Daemon::dir;
std::string Daemon::address;

// crunchctl --address <the daemon> args...
Outcome Crunchctl(std::vector<std::string> args, const std::string& input = "") {
  args.insert(args.begin(), {"--address", Daemon::address});
  return RunProgram(CRUNCHCTL_PATH, args, input);
}

#define EXPECT_EXIT_CODE(outcome, code, args) \
  EXPECT_EQ((outcome).exit_code, code) << Describe(args, outcome)

TEST(Crunchctl, StatusShowsWorkersPoolsAndCounters) {
  const std::vector<std::string> args{"status"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_NE(o.out.find("crunchd "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(", pid "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find(", up "), std::string::npos) << o.out;
  for (const char* heading :
       {"Workers", "SLOT", "RESTARTS", "RECYCLES", "RSS MiB", "Pools", "BUSY/SIZE", "P99",
        "Counters", "accepted ", "rejected ", "cancelled "}) {
    EXPECT_NE(o.out.find(heading), std::string::npos) << heading << " in\n" << o.out;
  }
  EXPECT_NE(o.out.find("  cpu "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("  io "), std::string::npos) << o.out;
}

TEST(Crunchctl, StatusJsonUsesProtoFieldNames) {
  const std::vector<std::string> args{"status", "--json"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  ASSERT_FALSE(o.out.empty());
  EXPECT_EQ(o.out.front(), '{') << o.out;
  EXPECT_EQ(o.out.substr(o.out.find_last_not_of('\n'), 1), "}") << o.out;
  for (const char* field : {"\"workers\"", "\"pools\"", "\"uptime_ms\"", "\"rss_bytes\"",
                            "\"queue_capacity\"", "\"counters\""}) {
    EXPECT_NE(o.out.find(field), std::string::npos) << field << " in\n" << o.out;
  }
  EXPECT_EQ(Count(o.out, "\"slot\""), 2u) << o.out;
}

TEST(Crunchctl, KindsListsFibWithItsRange) {
  const std::vector<std::string> args{"kinds"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  const size_t fib = o.out.find("\nfib ");
  ASSERT_NE(fib, std::string::npos) << o.out;
  const size_t next_kind = o.out.find("\nsha256 ", fib);
  const std::string fib_block = o.out.substr(fib, next_kind - fib);
  EXPECT_NE(fib_block.find("cpu"), std::string::npos) << fib_block;
  EXPECT_NE(fib_block.find("0..45"), std::string::npos) << fib_block;
  EXPECT_NE(fib_block.find("required"), std::string::npos) << fib_block;
  for (const char* kind : {"noop", "spin", "zstd.compress", "sleep", "http.get", "dns.resolve"}) {
    EXPECT_NE(o.out.find(kind), std::string::npos) << kind;
  }
}

TEST(Crunchctl, KindsJson) {
  const std::vector<std::string> args{"kinds", "--json"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_NE(o.out.find("\"kinds\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\"name\": \"fib\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\"default_value\""), std::string::npos) << o.out;
}

TEST(Crunchctl, RunPrintsTheOutput) {
  const std::vector<std::string> args{"run", "fib", "-p", "n=30"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_EQ(o.out, "832040");  // Not a terminal: the bytes as they are.
  EXPECT_EQ(o.err, "");
}

TEST(Crunchctl, UnknownKindExits4AndNamesTheKnownOnes) {
  const std::vector<std::string> args{"run", "fibonacci", "-p", "n=30"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 4, args);
  EXPECT_EQ(o.err.rfind("crunchctl: NOT_FOUND: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find("fib"), std::string::npos) << o.err;
  EXPECT_NE(o.err.find("noop"), std::string::npos) << o.err;
  EXPECT_EQ(o.out, "");
}

TEST(Crunchctl, BadParameterExits5) {
  const std::vector<std::string> args{"run", "fib", "-p", "n=99"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 5, args);
  EXPECT_EQ(o.err.rfind("crunchctl: INVALID_ARGUMENT: ", 0), 0u) << o.err;
  EXPECT_NE(o.err.find("0..45"), std::string::npos) << o.err;
}

TEST(Crunchctl, BadParamSyntaxIsAUsageError) {
  for (const char* bad : {"n30", "=30"}) {
    const std::vector<std::string> args{"run", "fib", "-p", bad};
    const Outcome o = Crunchctl(args);
    EXPECT_EXIT_CODE(o, 2, args);
    EXPECT_NE(o.err.find("key=value"), std::string::npos) << o.err;
  }
  const std::vector<std::string> twice{"run", "fib", "-p", "n=1", "-p", "n=2"};
  const Outcome o = Crunchctl(twice);
  EXPECT_EXIT_CODE(o, 2, twice);
  EXPECT_NE(o.err.find("'n' is given twice"), std::string::npos) << o.err;
}

TEST(Crunchctl, UsageErrorsExit2) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{},
                                             {"frobnicate"},
                                             {"run"},
                                             {"wait", "abc"},
                                             {"run", "noop", "--input", "/nonexistent"},
                                             {"run", "noop", "--repeat", "2", "--output", "x"},
                                             {"--deadline", "-5", "status"}}) {
    const Outcome o = Crunchctl(args);
    EXPECT_EXIT_CODE(o, 2, args);
    EXPECT_FALSE(o.err.empty()) << Describe(args, o);
  }
}

TEST(Crunchctl, HelpDocumentsTheExitStatus) {
  const Outcome o = RunProgram(CRUNCHCTL_PATH, {"--help"});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_NE(o.out.find("Exit status:"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("3  cannot reach crunchd"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("7  DEADLINE_EXCEEDED"), std::string::npos) << o.out;
}

TEST(Crunchctl, TaskTimeoutExits7) {
  // A 10 s spin cut at 200 ms; the bound leaves room for a sanitized
  // crunchctl's start (about 1.5 s under TSan), far below the spin.
#ifdef CRUNCH_SANITIZED
  constexpr std::chrono::milliseconds kBound(5000);
#else
  constexpr std::chrono::milliseconds kBound(1500);
#endif
  const std::vector<std::string> args{"run", "spin", "-p", "ms=10000", "--timeout", "200"};
  const Clock::time_point start = Clock::now();
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 7, args);
  EXPECT_EQ(o.err.rfind("crunchctl: DEADLINE_EXCEEDED: ", 0), 0u) << o.err;
  EXPECT_LT(Clock::now() - start, kBound);
}

TEST(Crunchctl, CallDeadlineExits7) {
  const std::vector<std::string> args{"--deadline", "300", "run", "sleep", "-p", "ms=3000"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 7, args);
  EXPECT_EQ(o.err.rfind("crunchctl: DEADLINE_EXCEEDED: ", 0), 0u) << o.err;
}

TEST(Crunchctl, InputFromStdin) {
  const std::vector<std::string> args{"run", "sha256", "--input", "-"};
  const Outcome o = Crunchctl(args, "abc");
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_EQ(o.out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Crunchctl, OutputToAFileWritesTheBytes) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "crunch " + std::to_string(i) + "\n";
  const std::string compressed = Daemon::dir + "/out.zst";
  const std::vector<std::string> args{"run", "zstd.compress", "--input",
                                      "-",   "--output",      compressed};
  const Outcome o = Crunchctl(args, text);
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_EQ(o.out, "");
  std::ifstream in(compressed, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 4u);
  EXPECT_EQ(bytes.substr(0, 4), std::string("\x28\xb5\x2f\xfd"));  // The zstd frame magic.
  EXPECT_LT(bytes.size(), text.size());

  const std::vector<std::string> back{"run", "zstd.decompress", "--input", compressed};
  const Outcome d = Crunchctl(back);
  EXPECT_EXIT_CODE(d, 0, back);
  EXPECT_EQ(d.out, text);
}

TEST(Crunchctl, BatchPrintsASummary) {
  const std::vector<std::string> args{"run", "noop", "--repeat", "200", "--concurrency", "16"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_NE(o.out.find("tasks       200 (200 ok, 0 failed)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("wall time"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("tasks/s"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("p50 "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("p99 "), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("errors      none"), std::string::npos) << o.out;
  EXPECT_EQ(o.err, "");  // Not a terminal: no progress bar.
}

TEST(Crunchctl, BatchOfFailuresExitsWithTheirCode) {
  const std::vector<std::string> args{"run", "fib",           "-p", "n=99", "--repeat",
                                      "5",   "--concurrency", "2"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 5, args);
  EXPECT_NE(o.out.find("tasks       5 (0 ok, 5 failed)"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("INVALID_ARGUMENT  5"), std::string::npos) << o.out;
}

TEST(Crunchctl, SubmitWaitCancel) {
  const std::vector<std::string> submit{"submit", "fib", "-p", "n=25"};
  const Outcome s = Crunchctl(submit);
  EXPECT_EXIT_CODE(s, 0, submit);
  const std::string id = s.out.substr(0, s.out.find('\n'));
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(id.find_first_not_of("0123456789"), std::string::npos) << s.out;

  const std::vector<std::string> wait{"wait", id};
  const Outcome w = Crunchctl(wait);
  EXPECT_EXIT_CODE(w, 0, wait);
  EXPECT_EQ(w.out, "75025");

  const std::vector<std::string> cancel_done{"cancel", id};
  const Outcome cd = Crunchctl(cancel_done);
  EXPECT_EXIT_CODE(cd, 0, cancel_done);
  EXPECT_EQ(cd.out, "done\n");

  const std::vector<std::string> submit_long{"submit", "sleep", "-p", "ms=10000"};
  const Outcome sl = Crunchctl(submit_long);
  EXPECT_EXIT_CODE(sl, 0, submit_long);
  const std::string long_id = sl.out.substr(0, sl.out.find('\n'));
  const std::vector<std::string> cancel{"cancel", long_id};
  const Outcome c = Crunchctl(cancel);
  EXPECT_EXIT_CODE(c, 0, cancel);
  EXPECT_TRUE(c.out == "queued\n" || c.out == "running\n") << c.out;
  const std::vector<std::string> wait_cancelled{"wait", long_id};
  const Outcome wc = Crunchctl(wait_cancelled);
  EXPECT_EXIT_CODE(wc, 9, wait_cancelled);
  EXPECT_EQ(wc.err.rfind("crunchctl: CANCELLED: ", 0), 0u) << wc.err;

  const std::vector<std::string> unknown{"wait", "987654321"};
  const Outcome u = Crunchctl(unknown);
  EXPECT_EXIT_CODE(u, 4, unknown);
}

TEST(Crunchctl, WithAnAddressListTaskIdsNameTheirDaemon) {
  // Two spellings of the one test daemon make a list of two targets.
  const std::string live_path = Daemon::address.substr(5);
  const std::string list = Daemon::address + "," + live_path;
  const std::vector<std::string> submit{"--address", list, "submit", "fib", "-p", "n=20"};
  const Outcome s = RunProgram(CRUNCHCTL_PATH, submit);
  EXPECT_EXIT_CODE(s, 0, submit);
  const std::string ref = s.out.substr(0, s.out.find('\n'));
  const size_t at = ref.find('@');
  ASSERT_NE(at, std::string::npos) << s.out;
  const std::string target = ref.substr(at + 1);
  EXPECT_TRUE(target == Daemon::address || target == "unix:" + live_path) << ref;

  // ID@ADDRESS reaches its daemon, with the list or without it.
  for (const std::string& address : {list, std::string("unix:/nowhere.sock")}) {
    const std::vector<std::string> wait{"--address", address, "wait", ref};
    const Outcome w = RunProgram(CRUNCHCTL_PATH, wait);
    EXPECT_EXIT_CODE(w, 0, wait);
    EXPECT_EQ(w.out, "6765");
  }
  // A bare id with a list is ambiguous.
  const std::vector<std::string> bare{"--address", list, "wait", ref.substr(0, at)};
  const Outcome b = RunProgram(CRUNCHCTL_PATH, bare);
  EXPECT_EXIT_CODE(b, 2, bare);
  EXPECT_NE(b.err.find("does not say which daemon has the task"), std::string::npos) << b.err;
  const std::vector<std::string> cancel{"--address", list, "cancel", ref};
  const Outcome c = RunProgram(CRUNCHCTL_PATH, cancel);
  EXPECT_EXIT_CODE(c, 0, cancel);
  EXPECT_EQ(c.out, "done\n");
  const std::vector<std::string> junk{"wait", "12x"};
  const Outcome j = Crunchctl(junk);
  EXPECT_EXIT_CODE(j, 2, junk);
  EXPECT_NE(j.err.find("not a number or NUMBER@ADDRESS"), std::string::npos) << j.err;
}

TEST(Crunchctl, UnreachableDaemonExits3WithAHint) {
  const std::string nowhere = "unix:" + Daemon::dir + "/nobody-here.sock";
  for (const char* command : {"status", "kinds", "top"}) {
    const std::vector<std::string> args{"--address", nowhere, command};
    const Clock::time_point start = Clock::now();
    const Outcome o = RunProgram(CRUNCHCTL_PATH, args);
    EXPECT_EXIT_CODE(o, 3, args);
    EXPECT_EQ(o.err.rfind("crunchctl: cannot reach crunchd at " + nowhere + ": ", 0), 0u) << o.err;
    EXPECT_NE(o.err.find("is crunchd running? (systemctl status crunchd)"), std::string::npos)
        << o.err;
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  }
  const std::vector<std::string> run{"--address", nowhere, "run", "noop", "--repeat", "3"};
  EXPECT_EXIT_CODE(RunProgram(CRUNCHCTL_PATH, run), 3, run);
}

TEST(Crunchctl, AddressListSkipsADeadDaemon) {
  const std::string dead = "unix:" + Daemon::dir + "/dead.sock";
  const std::string live_path = Daemon::address.substr(5);
  // A gRPC-balanced list (all unix sockets) and a mixed one (one channel each).
  for (const std::string& list : {dead + "," + Daemon::address, Daemon::address + ",127.0.0.1:1",
                                  Daemon::address + "," + live_path}) {
    for (int i = 0; i < 3; ++i) {  // The mixed list starts at a random entry.
      const std::vector<std::string> args{"--address", list, "run", "fib", "-p", "n=10"};
      const Outcome o = RunProgram(CRUNCHCTL_PATH, args);
      EXPECT_EXIT_CODE(o, 0, args);
      EXPECT_EQ(o.out, "55");
    }
  }
  const std::vector<std::string> batch{"--address",     Daemon::address + "," + live_path,
                                       "run",           "noop",
                                       "--repeat",      "50",
                                       "--concurrency", "4"};
  const Outcome b = RunProgram(CRUNCHCTL_PATH, batch);
  EXPECT_EXIT_CODE(b, 0, batch);
  EXPECT_NE(b.out.find("tasks       50 (50 ok, 0 failed)"), std::string::npos) << b.out;
}

TEST(Crunchctl, TopWithoutATerminalPrintsASummaryPerRefresh) {
  const std::vector<std::string> args{"top", "--count", "2", "--interval", "200"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  EXPECT_EQ(Count(o.out, "--- crunchd status at "), 2u) << o.out;
  EXPECT_EQ(Count(o.out, "\nWorkers\n"), 2u) << o.out;
  EXPECT_EQ(Count(o.out, "\x1b"), 0u) << "no terminal codes in plain mode";
}

TEST(Crunchctl, CountersCountWhatCrunchctlDid) {
  const std::vector<std::string> args{"status", "--json"};
  const Outcome o = Crunchctl(args);
  EXPECT_EXIT_CODE(o, 0, args);
  // The earlier tests failed tasks with these codes (run order is declaration order).
  EXPECT_NE(o.out.find("\"DEADLINE_EXCEEDED\""), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("\"CANCELLED\""), std::string::npos) << o.out;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new Daemon);
  return RUN_ALL_TESTS();
}
