// The one place where crunchd's errors (absl::Status) become gRPC statuses.
// The code numbers are the same (both follow google.rpc.Code).

#ifndef CRUNCH_RPC_STATUS_CONVERSION_H_
#define CRUNCH_RPC_STATUS_CONVERSION_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace crunch::rpc {

inline grpc::Status ToGrpcStatus(absl::StatusCode code, const std::string& message) {
  return grpc::Status(static_cast<grpc::StatusCode>(code), message);
}

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  return ToGrpcStatus(status.code(), std::string(status.message()));
}

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_STATUS_CONVERSION_H_
