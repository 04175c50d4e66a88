// UnixListener: serves gRPC on crunchd's unix sockets, both those it binds
// itself and those systemd passed (socket activation: crunchd.socket,
// LISTEN_FDS).
//
// gRPC 1.51 cannot adopt a listening socket, nor tell a handler who is at the
// other end of a unix socket, but it can take a connection that is already
// accepted (grpc::AddInsecureChannelFromFd). So crunchd accepts on its unix
// sockets itself, with an Asio acceptor on the daemon's io_context, shows each
// accepted connection to an `on_accept` hook (which reads the peer's
// credentials, rpc/internal/call_authorizer.h) and then hands it to the gRPC
// server. Accepting is cheap and rare next to the calls, so doing it on the
// io_context thread costs nothing worth a thread of its own.
//
// Sockets crunchd binds are made mode 0660 before they listen, so no one else
// can connect in between; Stop() closes them and the caller removes the files.
// Sockets systemd passed belong to systemd: Stop() closes crunchd's copies but
// never removes the socket files, so the next start (or the next activation)
// finds them in place.
//
// Thread safety: Bind(), Start() and Stop() on the io_context's thread (or
// when it does not run yet or any more); the accept handlers run there too.

#ifndef CRUNCH_RPC_UNIX_LISTENER_H_
#define CRUNCH_RPC_UNIX_LISTENER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/steady_timer.hpp"

namespace crunch::rpc {

class UnixListener {
 public:
  // Runs on the io_context with each accepted connection's fd, before gRPC
  // owns it; must not close it.
  using OnAccept = std::function<void(int fd)>;

  // Takes the sockets systemd passed to this process, if any, and unsets
  // LISTEN_FDS and LISTEN_PID, so worker processes do not see them. An error
  // if one is not a listening unix stream socket (the only kind crunchd.socket
  // declares).
  static absl::StatusOr<std::unique_ptr<UnixListener>> Create(boost::asio::io_context& io);

  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;
  ~UnixListener();

  // The socket paths systemd passed, in its order.
  const std::vector<std::string>& activated_paths() const { return activated_paths_; }

  // Binds a new socket at `path` (which must not exist), mode 0660, and
  // listens on it. FAILED_PRECONDITION naming the path and the reason.
  absl::Status Bind(const std::string& path);

  // Accepts connections on every socket and hands them to `server`, which
  // must outlive Stop().
  void Start(grpc::Server* server, OnAccept on_accept);
  // Stops accepting and closes the listening sockets.
  void Stop();

 private:
  struct Socket {
    explicit Socket(boost::asio::io_context& io) : acceptor(io), retry(io) {}
    boost::asio::local::stream_protocol::acceptor acceptor;
    boost::asio::steady_timer retry;  // Backs off after an accept error (EMFILE).
  };

  explicit UnixListener(boost::asio::io_context& io) : io_(io) {}
  void Accept(Socket* socket);

  boost::asio::io_context& io_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::vector<std::string> activated_paths_;
  grpc::Server* server_ = nullptr;
  OnAccept on_accept_;
};

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_UNIX_LISTENER_H_
