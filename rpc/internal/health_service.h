// HealthService: grpc.health.v1.Health (Check and Watch) served with the async
// API on the front-end's own completion queues.
//
// gRPC's built-in health service (EnableDefaultHealthCheckService) uses the
// callback API, which in gRPC 1.51 starts two more threads polling the same
// sockets as the completion-queue threads; a request read by one of them must
// then be handed over, costing wake-ups on every call (docs/benchmarks.md).
// This one answers on the completion-queue thread that got the request.
//
// Known services: "" (the server as a whole) and "crunch.v1.Crunch". Check of
// another name is NOT_FOUND; Watch of another name reports SERVICE_UNKNOWN. The
// status is NOT_SERVING until SetServing(true) and again after
// SetServing(false); open Watch streams get each change and end when the
// server shuts down.
//
// Thread safety: SetServing() from any thread; Proceed() of the calls on the
// completion-queue threads. A mutex guards the status and the open watches.

#ifndef CRUNCH_RPC_INTERNAL_HEALTH_SERVICE_H_
#define CRUNCH_RPC_INTERNAL_HEALTH_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "rpc/internal/call_authorizer.h"

namespace crunch::rpc::internal {

class HealthService {
 public:
  using AsyncService = grpc::health::v1::Health::AsyncService;
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  grpc::Service* service() { return &service_; }

  // Checks every call's peer (no token: see call_authorizer.h). Before Listen().
  void set_authorizer(const CallAuthorizer* authorizer) { authorizer_ = authorizer; }

  // Starts waiting for Check and Watch requests on `cq` (after the server started).
  void Listen(grpc::ServerCompletionQueue* cq);

  // Serving or not; open Watch streams are told. SetServing(false) before the
  // server shuts down also ends them.
  void SetServing(bool serving);

 private:
  class CheckCall;
  class WatchCall;

  // OK, or how to end a call from a refused peer.
  grpc::Status CheckPeer(const grpc::ServerContext& context) const;

  // The status of `service`, or nothing if it is not one served here.
  // REQUIRES: mu_ held.
  std::optional<ServingStatus> StatusOfLocked(const std::string& service) const;

  AsyncService service_;
  const CallAuthorizer* authorizer_ = nullptr;
  mutable std::mutex mu_;
  bool serving_ = false;          // Guarded by mu_.
  bool ending_ = false;           // Guarded by mu_: SetServing(false) came.
  std::set<WatchCall*> watches_;  // Guarded by mu_.
};

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_HEALTH_SERVICE_H_
