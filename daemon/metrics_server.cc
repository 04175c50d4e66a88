#include "daemon/metrics_server.h"

#include <chrono>
#include <list>
#include <optional>

#include "absl/strings/str_cat.h"
#include "boost/asio/ip/address.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "daemon/log_format.h"
#include "spdlog/spdlog.h"

namespace crunch::daemon {

namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(30);
constexpr size_t kMaxRequestBytes = 8 * 1024;
constexpr size_t kMaxConnections = 64;
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Splits "host:port" / "[v6]:port" (validated by the config) into its parts.
std::pair<std::string, std::string> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  return {host, address.substr(colon + 1)};
}

}  // namespace

// What sessions share with the server; it outlives the server while a session's
// handler is pending.
struct MetricsServer::Shared {
  Render render;
  std::list<std::weak_ptr<Session>> sessions;
  bool stopped = false;
};

class MetricsServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {}

  void Start(std::list<std::weak_ptr<Session>>::iterator self) {
    self_ = self;
    Read();
  }

  void Close() {
    boost::beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](boost::beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(boost::beast::error_code ec) {
    if (ec) {
      // A client that closes, times out or sends what is not HTTP just goes.
      if (ec == http::error::header_limit || ec == http::error::body_limit) {
        Reply(http::status::payload_too_large, "request larger than 8 KiB\n", false);
        return;
      }
      Done();
      return;
    }
    const http::request<http::string_body>& request = parser_->get();
    const bool keep_alive = request.keep_alive();
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      Reply(http::status::method_not_allowed, "only GET and HEAD are served\n", keep_alive);
      return;
    }
    const boost::beast::string_view target = request.target();
    const boost::beast::string_view path = target.substr(0, target.find('?'));
    if (path == "/metrics") {
      Reply(http::status::ok, shared_->render(), keep_alive, kContentType);
    } else if (path == "/") {
      Reply(http::status::ok, "crunchd: Prometheus metrics are at /metrics\n", keep_alive);
    } else {
      Reply(http::status::not_found,
            absl::StrCat("no such page: ", absl::string_view(path.data(), path.size()),
                         "; metrics are at /metrics\n"),
            keep_alive);
    }
  }

  void Reply(http::status status, std::string body, bool keep_alive,
             const char* content_type = "text/plain; charset=utf-8") {
    const bool head = parser_->get().method() == http::verb::head;
    response_ = {};
    const unsigned version = parser_->get().version();
    response_.version(version != 0 ? version : 11);
    response_.result(status);
    response_.set(http::field::server, "crunchd");
    response_.set(http::field::content_type, content_type);
    if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET, HEAD");
    response_.keep_alive(keep_alive);
    response_.body() = std::move(body);
    response_.prepare_payload();
    if (head) response_.body().clear();  // Content-Length stays the GET's.
    http::async_write(stream_, response_,
                      [self = shared_from_this(), keep_alive](boost::beast::error_code ec, size_t) {
                        if (ec || !keep_alive || self->shared_->stopped) {
                          self->Close();
                          self->Done();
                        } else {
                          self->Read();
                        }
                      });
  }

  // Forgets this session; the last handler's reference then frees it.
  void Done() {
    if (!done_) shared_->sessions.erase(self_);
    done_ = true;
  }

  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::shared_ptr<Shared> shared_;
  std::list<std::weak_ptr<Session>>::iterator self_;
  bool done_ = false;
};

MetricsServer::MetricsServer(boost::asio::io_context& io, Render render)
    : acceptor_(io), shared_(std::make_shared<Shared>()) {
  shared_->render = std::move(render);
}

MetricsServer::~MetricsServer() { Stop(); }

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(boost::asio::io_context& io,
                                                                    const std::string& address,
                                                                    Render render) {
  std::unique_ptr<MetricsServer> server(new MetricsServer(io, std::move(render)));
  const auto [host, port] = SplitHostPort(address);
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const tcp::resolver::results_type endpoints =
      resolver.resolve(host, port, tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("[metrics] listen '", address,
                                                   "': cannot resolve '", host,
                                                   "': ", ec ? ec.message() : "no addresses"));
  }
  const tcp::endpoint endpoint = *endpoints.begin();
  tcp::acceptor& acceptor = server->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(boost::asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "[metrics] listen '", address, "': cannot listen on ", endpoint.address().to_string(),
        " port ", endpoint.port(), ": ", ec.message()));
  }
  server->Accept();
  return server;
}

void MetricsServer::Accept() {
  acceptor_.async_accept(
      [this, shared = shared_](boost::system::error_code ec, tcp::socket socket) {
        if (shared->stopped) return;  // `this` may be gone.
        if (ec) {
          if (ec != boost::asio::error::operation_aborted) {
            spdlog::warn("metrics: accept failed: {}", ec.message());
            Accept();
          }
          return;
        }
        if (shared->sessions.size() >= kMaxConnections) {
          boost::system::error_code ignored;
          socket.close(ignored);  // Refused: a scraper needs one or two.
        } else {
          auto session = std::make_shared<Session>(std::move(socket), shared);
          shared->sessions.push_front(session);
          session->Start(shared->sessions.begin());
        }
        Accept();
      });
}

void MetricsServer::Stop() {
  if (shared_->stopped) return;
  shared_->stopped = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (const std::weak_ptr<Session>& weak : shared_->sessions) {
    if (std::shared_ptr<Session> session = weak.lock()) session->Close();
  }
}

std::string MetricsServer::Describe() const {
  boost::system::error_code ec;
  const tcp::endpoint endpoint = acceptor_.local_endpoint(ec);
  if (ec) return "(closed)";
  const std::string host = endpoint.address().is_v6()
                               ? absl::StrCat("[", endpoint.address().to_string(), "]")
                               : endpoint.address().to_string();
  return absl::StrCat("http://", host, ":", endpoint.port(), "/metrics");
}

}  // namespace crunch::daemon
