// HttpServer: a small HTTP/1.1 server on 127.0.0.1 (ephemeral port, its own
// thread, Boost.Beast) for tests of http.get through the real daemon.
//
//   /ok            200 "hello"
//   /status/N      answers with HTTP status N
//   /slow/MS       200 "slow" after MS milliseconds (timers, so slow requests
//                  are served concurrently)
//   /redirect      302 to /ok
//   /loop          302 to itself
//   /to/URL        302 to URL (everything after "/to/", as it is)
// It records the most requests it ever had open at once.

#ifndef CRUNCH_TESTS_TESTING_HTTP_SERVER_H_
#define CRUNCH_TESTS_TESTING_HTTP_SERVER_H_

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <thread>

namespace crunch::testing {

class HttpServer {
 public:
  HttpServer() {
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~HttpServer() {
    io_.stop();
    thread_.join();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string Url(const std::string& target) const {
    return "http://127.0.0.1:" + std::to_string(port()) + target;
  }
  int max_open() const { return max_open_.load(); }

 private:
  using tcp = boost::asio::ip::tcp;
  struct Session : std::enable_shared_from_this<Session> {
    Session(tcp::socket s, HttpServer& o)
        : socket(std::move(s)), timer(socket.get_executor()), owner(o) {}

    void Start() {
      boost::beast::http::async_read(
          socket, buffer, request,
          [self = shared_from_this()](boost::beast::error_code ec, size_t) {
            if (!ec) self->OnRequest();
          });
    }
    void OnRequest() {
      const int open = ++owner.open_;
      int seen = owner.max_open_.load();
      while (open > seen && !owner.max_open_.compare_exchange_weak(seen, open)) {
      }
      const std::string target(request.target());
      response.version(11);
      response.keep_alive(false);
      response.result(boost::beast::http::status::ok);
      if (target.rfind("/status/", 0) == 0) {
        response.result(static_cast<unsigned>(std::stoi(target.substr(8))));
        response.body() = "status page";
      } else if (target.rfind("/slow/", 0) == 0) {
        response.body() = "slow";
        timer.expires_after(std::chrono::milliseconds(std::stoi(target.substr(6))));
        timer.async_wait([self = shared_from_this()](boost::beast::error_code) { self->Send(); });
        return;
      } else if (target == "/ok") {
        response.body() = "hello";
      } else if (target == "/redirect" || target == "/loop" || target.rfind("/to/", 0) == 0) {
        response.result(boost::beast::http::status::found);
        response.set(boost::beast::http::field::location, target == "/redirect" ? "/ok"
                                                          : target == "/loop"   ? "/loop"
                                                                                : target.substr(4));
      } else {
        response.result(boost::beast::http::status::not_found);
      }
      Send();
    }
    void Send() {
      --owner.open_;
      response.prepare_payload();
      boost::beast::http::async_write(
          socket, response, [self = shared_from_this()](boost::beast::error_code, size_t) {
            boost::beast::error_code ignored;
            self->socket.shutdown(tcp::socket::shutdown_send, ignored);
          });
    }

    tcp::socket socket;
    boost::asio::steady_timer timer;
    HttpServer& owner;
    boost::beast::flat_buffer buffer;
    boost::beast::http::request<boost::beast::http::string_body> request;
    boost::beast::http::response<boost::beast::http::string_body> response;
  };

  void Accept() {
    acceptor_.async_accept([this](boost::beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket), *this)->Start();
      Accept();
    });
  }

  boost::asio::io_context io_;
  tcp::acceptor acceptor_{io_, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};
  std::thread thread_;
};

}  // namespace crunch::testing

#endif  // CRUNCH_TESTS_TESTING_HTTP_SERVER_H_
