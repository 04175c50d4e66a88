// ActivatedListener: serves gRPC on listening sockets passed by systemd
// (socket activation: crunchd.socket, LISTEN_FDS).
//
// gRPC 1.51 cannot adopt a listening socket, but it can take a connection
// that is already accepted (grpc::AddInsecureChannelFromFd). So crunchd
// accepts on the passed sockets itself, with an Asio acceptor on the daemon's
// io_context, and hands every accepted connection to the gRPC server. Accepting
// is cheap and rare next to the calls, so doing it on the io_context thread
// costs nothing worth a thread of its own.
//
// The sockets belong to systemd: Stop() closes crunchd's copies but never
// removes the socket files, so the next start (or the next activation) finds
// them in place.
//
// Thread safety: Start() and Stop() on the io_context's thread (or when it no
// longer runs); the accept handlers run there too.

#ifndef CRUNCH_RPC_ACTIVATED_LISTENER_H_
#define CRUNCH_RPC_ACTIVATED_LISTENER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/local/stream_protocol.hpp"
#include "boost/asio/steady_timer.hpp"

namespace crunch::rpc {

class ActivatedListener {
 public:
  // Takes the sockets systemd passed to this process and unsets LISTEN_FDS
  // and LISTEN_PID, so worker processes do not see them. Returns null if none
  // were passed; an error if one is not a listening unix stream socket (the
  // only kind crunchd.socket declares).
  static absl::StatusOr<std::unique_ptr<ActivatedListener>> FromEnvironment(
      boost::asio::io_context& io);

  ActivatedListener(const ActivatedListener&) = delete;
  ActivatedListener& operator=(const ActivatedListener&) = delete;
  ~ActivatedListener();

  // The socket paths, in the order systemd passed them.
  const std::vector<std::string>& paths() const { return paths_; }

  // Accepts connections and hands them to `server`, which must outlive Stop().
  void Start(grpc::Server* server);
  // Stops accepting and closes the listening sockets.
  void Stop();

 private:
  struct Socket {
    explicit Socket(boost::asio::io_context& io) : acceptor(io), retry(io) {}
    boost::asio::local::stream_protocol::acceptor acceptor;
    boost::asio::steady_timer retry;  // Backs off after an accept error (EMFILE).
  };

  explicit ActivatedListener(boost::asio::io_context& io) : io_(io) {}
  void Accept(Socket* socket);

  boost::asio::io_context& io_;
  std::vector<std::unique_ptr<Socket>> sockets_;
  std::vector<std::string> paths_;
  grpc::Server* server_ = nullptr;
};

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_ACTIVATED_LISTENER_H_
