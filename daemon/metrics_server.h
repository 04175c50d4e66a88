// MetricsServer: the Prometheus endpoint, a small HTTP/1.1 server (Boost.Beast)
// on the daemon's io_context.
//
//   GET /metrics   200, the text exposition (text/plain; version=0.0.4)
//   GET /          200, a line pointing at /metrics
//   other paths    404;  other methods  405 (Allow: GET, HEAD)
//
// The body is made by a callback on the io_context's thread, so it reads the
// scheduler's state without locks. Connections may be kept alive; each one is
// closed after 30 s without a complete request, requests are limited to 8 KiB,
// and at most 64 connections are served at once (more are closed on accept).
//
// Thread safety: not thread-safe; everything runs on the io_context's thread.

#ifndef CRUNCH_DAEMON_METRICS_SERVER_H_
#define CRUNCH_DAEMON_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"

namespace crunch::daemon {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  // Listens on `address` ("host:port" or "[v6]:port", already validated).
  // Fails, naming the address and the reason, if it cannot resolve or bind.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(boost::asio::io_context& io,
                                                              const std::string& address,
                                                              Render render);
  ~MetricsServer();

  // Stops accepting and closes every open connection.
  void Stop();

  // Where it listens, for logs: "http://127.0.0.1:9464/metrics".
  std::string Describe() const;

 private:
  struct Shared;
  class Session;

  MetricsServer(boost::asio::io_context& io, Render render);
  void Accept();

  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_METRICS_SERVER_H_
