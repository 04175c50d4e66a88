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
// Unix sockets are created mode 0660 in a directory created if missing; a
// stale socket left by a crashed daemon is replaced, a live one is an error.
// Shutdown() removes them.
//
// Socket activation: sockets systemd passed (LISTEN_FDS, crunchd.socket) are
// served through an ActivatedListener instead of being bound here; a listen
// address naming one of them is not bound again, and Shutdown() leaves those
// socket files to systemd.
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
#include "rpc/activated_listener.h"
#include "rpc/internal/health_service.h"

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
    crunch::v1::Crunch::AsyncService* service;
    std::chrono::steady_clock::time_point started;
  };

 private:
  absl::Status PrepareUnixSocket(const std::string& path);

  boost::asio::io_context& io_;
  daemon::Scheduler& scheduler_;
  daemon::Config config_;
  std::vector<std::string> listen_;
  int cq_thread_count_;
  Context context_;
  crunch::v1::Crunch::AsyncService service_;
  internal::HealthService health_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs_;
  std::vector<std::thread> threads_;
  std::vector<std::string> socket_paths_;
  std::unique_ptr<ActivatedListener> activated_;  // Null unless socket-activated.
};

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_GRPC_FRONTEND_H_
