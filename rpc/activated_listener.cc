#include "rpc/activated_listener.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "daemon/log_format.h"

namespace crunch::rpc {

namespace {

std::string SocketPath(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      len <= sizeof(sa_family_t)) {
    return "";
  }
  return std::string(addr.sun_path, strnlen(addr.sun_path, len - sizeof(sa_family_t)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ActivatedListener>> ActivatedListener::FromEnvironment(
    boost::asio::io_context& io) {
  // Also sets FD_CLOEXEC on the sockets: workers never inherit them.
  const int n = sd_listen_fds(/*unset_environment=*/1);
  if (n < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot take the sockets systemd passed (LISTEN_FDS): ", std::strerror(-n)));
  }
  if (n == 0) return nullptr;
  std::unique_ptr<ActivatedListener> listener(new ActivatedListener(io));
  for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
    if (sd_is_socket_unix(fd, SOCK_STREAM, /*listening=*/1, nullptr, 0) <= 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("systemd passed fd ", fd,
                       " which is not a listening unix stream socket; crunchd.socket may only have "
                       "ListenStream=/path entries"));
    }
    auto socket = std::make_unique<Socket>(io);
    boost::system::error_code ec;
    socket->acceptor.assign(boost::asio::local::stream_protocol(), fd, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot use the passed socket fd ", fd, ": ", ec.message()));
    }
    listener->paths_.push_back(SocketPath(fd));
    listener->sockets_.push_back(std::move(socket));
  }
  return listener;
}

ActivatedListener::~ActivatedListener() { Stop(); }

void ActivatedListener::Start(grpc::Server* server) {
  server_ = server;
  for (auto& socket : sockets_) Accept(socket.get());
}

void ActivatedListener::Accept(Socket* socket) {
  socket->acceptor.async_accept([this, socket](boost::system::error_code ec,
                                               boost::asio::local::stream_protocol::socket peer) {
    if (ec == boost::asio::error::operation_aborted || server_ == nullptr) return;
    if (ec) {
      // Out of fds or memory: try again shortly rather than spin.
      spdlog::warn("accept on the activated socket failed: {}; retrying in 100 ms", ec.message());
      socket->retry.expires_after(std::chrono::milliseconds(100));
      socket->retry.async_wait([this, socket](boost::system::error_code wait_ec) {
        if (!wait_ec) Accept(socket);
      });
      return;
    }
    boost::system::error_code release_ec;
    const int fd = peer.release(release_ec);
    if (release_ec) {
      spdlog::warn("cannot take an accepted connection: {}", release_ec.message());
    } else {
      // gRPC's endpoint expects a non-blocking socket.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      grpc::AddInsecureChannelFromFd(server_, fd);
    }
    Accept(socket);
  });
}

void ActivatedListener::Stop() {
  server_ = nullptr;
  for (auto& socket : sockets_) {
    boost::system::error_code ec;
    socket->retry.cancel();
    socket->acceptor.close(ec);
  }
}

}  // namespace crunch::rpc
