// Terminal control for `crunchctl top`'s live view.
//
// RawTerminal puts the terminal in the mode a full-screen view needs and puts
// it back on destruction: keys arrive one at a time and are not echoed, the
// cursor is hidden. Ctrl-C still raises SIGINT (ISIG is kept) so that it is
// handled like SIGTERM; Ctrl-Z is disabled, since a stopped view would leave
// the shell a raw terminal.
//
// SignalPipe turns signals into bytes on a pipe (the self-pipe trick), so the
// view's poll() loop sees SIGINT or SIGTERM as an event, leaves the loop and
// restores the terminal on the normal path, instead of dying in a handler with
// the terminal still raw.
//
// Thread safety: both are owned by the thread that runs the view.

#ifndef CRUNCH_CLIENTS_CLI_TERMINAL_H_
#define CRUNCH_CLIENTS_CLI_TERMINAL_H_

#include <signal.h>
#include <termios.h>

#include <initializer_list>
#include <memory>
#include <string_view>
#include <vector>

namespace crunch::cli {

class RawTerminal {
 public:
  // nullptr when `out_fd` is not a terminal. Keys are read only when `in_fd` is one too.
  static std::unique_ptr<RawTerminal> Enter(int in_fd, int out_fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

  // Whether keys can be read from in_fd().
  bool reads_keys() const { return raw_; }
  int in_fd() const { return in_fd_; }

  // Replaces the screen's content with `text`, cut to the terminal's size.
  void Draw(std::string_view text) const;

 private:
  RawTerminal(int in_fd, int out_fd, bool raw, const termios& saved)
      : in_fd_(in_fd), out_fd_(out_fd), raw_(raw), saved_(saved) {}
  void Write(std::string_view bytes) const;

  int in_fd_;
  int out_fd_;
  bool raw_;       // in_fd_'s mode was changed and must be restored.
  termios saved_;  // in_fd_'s mode before.
};

class SignalPipe {
 public:
  // Installs handlers for `signals` (restored on destruction). One at a time.
  static std::unique_ptr<SignalPipe> Install(std::initializer_list<int> signals);
  ~SignalPipe();
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  // Readable when a signal arrived; each byte read is a signal number.
  int fd() const { return read_fd_; }

 private:
  SignalPipe(int read_fd, int write_fd, std::vector<int> signals,
             std::vector<struct sigaction> previous)
      : read_fd_(read_fd),
        write_fd_(write_fd),
        signals_(std::move(signals)),
        previous_(std::move(previous)) {}

  int read_fd_;
  int write_fd_;
  std::vector<int> signals_;
  std::vector<struct sigaction> previous_;
};

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_TERMINAL_H_
