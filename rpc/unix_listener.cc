#include "rpc/unix_listener.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
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

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Create(boost::asio::io_context& io) {
  // Also sets FD_CLOEXEC on the sockets: workers never inherit them.
  const int n = sd_listen_fds(/*unset_environment=*/1);
  if (n < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot take the sockets systemd passed (LISTEN_FDS): ", std::strerror(-n)));
  }
  std::unique_ptr<UnixListener> listener(new UnixListener(io));
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
    listener->activated_paths_.push_back(SocketPath(fd));
    listener->sockets_.push_back(std::move(socket));
  }
  return listener;
}

UnixListener::~UnixListener() { Stop(); }

absl::Status UnixListener::Bind(const std::string& path) {
  auto socket = std::make_unique<Socket>(io_);
  boost::asio::local::stream_protocol::acceptor& acceptor = socket->acceptor;
  boost::system::error_code ec;
  const char* step = "create";
  acceptor.open(boost::asio::local::stream_protocol(), ec);
  if (!ec) ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);  // Workers never inherit it.
  if (!ec) {
    step = "bind";
    acceptor.bind(boost::asio::local::stream_protocol::endpoint(path), ec);
  }
  // Not listening yet: nobody can connect before the mode is right.
  if (!ec && ::chmod(path.c_str(), 0660) != 0) {
    step = "chmod 0660";
    ec.assign(errno, boost::system::system_category());
  }
  if (!ec) {
    step = "listen on";
    acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot ", step, " the unix socket ", path, ": ", ec.message()));
  }
  sockets_.push_back(std::move(socket));
  return absl::OkStatus();
}

void UnixListener::Start(grpc::Server* server, OnAccept on_accept) {
  server_ = server;
  on_accept_ = std::move(on_accept);
  for (auto& socket : sockets_) Accept(socket.get());
}

void UnixListener::Accept(Socket* socket) {
  socket->acceptor.async_accept([this, socket](boost::system::error_code ec,
                                               boost::asio::local::stream_protocol::socket peer) {
    if (ec == boost::asio::error::operation_aborted || server_ == nullptr) return;
    if (ec) {
      // Out of fds or memory: try again shortly rather than spin.
      spdlog::warn("accept on a unix socket failed: {}; retrying in 100 ms", ec.message());
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
      // gRPC's endpoint expects a non-blocking socket; workers started later
      // must not inherit it.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
      if (on_accept_) on_accept_(fd);
      grpc::AddInsecureChannelFromFd(server_, fd);
    }
    Accept(socket);
  });
}

void UnixListener::Stop() {
  server_ = nullptr;
  for (auto& socket : sockets_) {
    boost::system::error_code ec;
    socket->retry.cancel();
    socket->acceptor.close(ec);
  }
}

}  // namespace crunch::rpc
