#include "clients/cli/terminal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

namespace crunch::cli {
namespace {

// The write end of the one installed SignalPipe, for the handler.
std::atomic<int> g_signal_fd{-1};

void OnSignal(int signal) {
  const int saved_errno = errno;
  const char byte = static_cast<char>(signal);
  const int fd = g_signal_fd.load();
  if (fd >= 0) (void)!::write(fd, &byte, 1);
  errno = saved_errno;
}

constexpr std::string_view kHideCursor = "\x1b[?25l";
constexpr std::string_view kShowCursor = "\x1b[?25h";
constexpr std::string_view kClearScreen = "\x1b[H\x1b[2J";
constexpr std::string_view kHome = "\x1b[H";
constexpr std::string_view kClearToLineEnd = "\x1b[K";
constexpr std::string_view kClearBelow = "\x1b[J";

}  // namespace

std::unique_ptr<RawTerminal> RawTerminal::Enter(int in_fd, int out_fd) {
  if (::isatty(out_fd) != 1) return nullptr;
  termios saved{};
  bool raw = false;
  // Only the foreground job may change the terminal's mode (a background one is
  // stopped by SIGTTOU); in the background, the view runs without keys.
  if (::isatty(in_fd) == 1 && ::tcgetpgrp(in_fd) == ::getpgrp() &&
      ::tcgetattr(in_fd, &saved) == 0) {
    termios mode = saved;
    mode.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    mode.c_cc[VMIN] = 1;
    mode.c_cc[VTIME] = 0;
    mode.c_cc[VSUSP] = _POSIX_VDISABLE;
    raw = ::tcsetattr(in_fd, TCSANOW, &mode) == 0;
  }
  std::unique_ptr<RawTerminal> terminal(new RawTerminal(in_fd, out_fd, raw, saved));
  terminal->Write(std::string(kHideCursor) + std::string(kClearScreen));
  return terminal;
}

RawTerminal::~RawTerminal() {
  // The last screen stays; the shell's prompt follows it.
  Write(std::string("\n") + std::string(kShowCursor));
  if (raw_) ::tcsetattr(in_fd_, TCSANOW, &saved_);
}

void RawTerminal::Draw(std::string_view text) const {
  winsize size{};
  size_t columns = 80, rows = 24;
  if (::ioctl(out_fd_, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 && size.ws_row > 0) {
    columns = size.ws_col;
    rows = size.ws_row;
  }
  std::string frame(kHome);
  size_t row = 0;
  while (!text.empty() && row < rows) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (row > 0) frame += '\n';  // Not after the last row: that would scroll the screen.
    frame += line.substr(0, columns);
    frame += kClearToLineEnd;
    ++row;
  }
  frame += kClearBelow;
  Write(frame);
}

void RawTerminal::Write(std::string_view bytes) const {
  while (!bytes.empty()) {
    const ssize_t n = ::write(out_fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

std::unique_ptr<SignalPipe> SignalPipe::Install(std::initializer_list<int> signals) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return nullptr;
  g_signal_fd.store(fds[1]);
  std::vector<struct sigaction> previous;
  for (int signal : signals) {
    struct sigaction action {};
    action.sa_handler = &OnSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    struct sigaction old {};
    ::sigaction(signal, &action, &old);
    previous.push_back(old);
  }
  return std::unique_ptr<SignalPipe>(new SignalPipe(fds[0], fds[1], signals, std::move(previous)));
}

SignalPipe::~SignalPipe() {
  for (size_t i = 0; i < signals_.size(); ++i) ::sigaction(signals_[i], &previous_[i], nullptr);
  g_signal_fd.store(-1);
  ::close(read_fd_);
  ::close(write_fd_);
}

}  // namespace crunch::cli
