// GrpcFrontend: crunch.v1.Crunch served with gRPC's async completion-queue API.
//
// Threads: `cq_threads` threads, each owning one completion queue (the
// asio-grpc model: no queue is shared between threads). A completion-queue
// thread never runs crunchd logic: when a request arrives it posts the work to
// the daemon's io_context, where the Scheduler lives, and the io_context's
// thread answers by calling Finish()/Write() on the call (gRPC queues the
// operation; nothing blocks). Each call is a small state machine that owns
// itself and is deleted when its last operation completes.
//
// Also served: grpc.health.v1.Health (SERVING from start until the drain
// begins; internal/health_service.h) and server reflection, so generic tools
// (grpcurl, grpc_cli) can call crunchd without the .proto.
//
// Unix sockets are bound and accepted by a UnixListener (unix_listener.h), so
// that each connection's peer credentials are known: mode 0660, in a
// directory created if missing; a stale socket left by a crashed daemon is
// replaced, a live one is an error. Shutdown() removes them. Sockets systemd
// passed (LISTEN_FDS, crunchd.socket) are served the same way; a listen
// address naming one of them is not bound again, and Shutdown() leaves those
// socket files to systemd. Unix sockets carry plaintext gRPC.
//
// TCP addresses are served by gRPC itself, always over TLS ([server]
// tls_cert_file and tls_key_file; with tls_client_ca_file, clients must
// present a certificate signed by one of those CAs).
//
// Every call passes the CallAuthorizer (internal/call_authorizer.h) first: the
// unix peer allowlist and the bearer token.
//
// Thread safety: Start() and Shutdown() on the daemon's thread.

#ifndef CRUNCH_RPC_GRPC_FRONTEND_H_
#define CRUNCH_RPC_GRPC_FRONTEND_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "boost/asio/io_context.hpp"
#include "crunch/v1/crunch.grpc.pb.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/scheduler.h"
#include "rpc/internal/call_authorizer.h"
#include "rpc/internal/crunch_service.h"
#include "rpc/internal/health_service.h"
#include "rpc/unix_listener.h"

namespace crunch::rpc {

class GrpcFrontend final : public daemon::Frontend {
 public:
  // `listen` is the final list of addresses (never empty).
  GrpcFrontend(boost::asio::io_context& io, daemon::Scheduler& scheduler,
               const daemon::Config& config, std::vector<std::string> listen,
               std::chrono::steady_clock::time_point started, int cq_threads = 2);
  ~GrpcFrontend() override;

  absl::Status Start() override;
  void Shutdown() override;
  std::string Describe() const override;
  // grpc.health.v1 turns NOT_SERVING.
  void Draining() override;

  // Shared with the call objects.
  struct Context {
    boost::asio::io_context* io;
    daemon::Scheduler* scheduler;
    internal::CrunchService* service;
    std::chrono::steady_clock::time_point started;
    const internal::CallAuthorizer* authorizer;  // Set by Start().
  };

 private:
  absl::Status PrepareUnixSocket(const std::string& path);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials() const;
  // Stops accepting on the unix sockets and removes those crunchd bound.
  void CloseUnixSockets();

  boost::asio::io_context& io_;
  daemon::Scheduler& scheduler_;
  daemon::Config config_;
  std::vector<std::string> listen_;
  int cq_thread_count_;
  Context context_;
  internal::CrunchService service_;
  internal::HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  std::vector<std::string> socket_paths_;
  std::unique_ptr<UnixListener> unix_listener_;
  std::unique_ptr<internal::CallAuthorizer> authorizer_;
};

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_GRPC_FRONTEND_H_
