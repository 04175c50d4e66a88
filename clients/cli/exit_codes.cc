#include "clients/cli/exit_codes.h"

namespace crunch::cli {

ExitCode ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::NOT_FOUND:
      return kExitNotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
      return kExitInvalidArgument;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kExitResourceExhausted;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitDeadlineExceeded;
    case grpc::StatusCode::ABORTED:
      return kExitAborted;
    case grpc::StatusCode::CANCELLED:
      return kExitCancelled;
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitPermissionDenied;
    case grpc::StatusCode::UNAVAILABLE:
      return kExitUnavailable;
    case grpc::StatusCode::UNAUTHENTICATED:
      return kExitUnauthenticated;
    default:
      return kExitFailure;
  }
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

const char kExitStatusHelp[] =
    "Exit status:\n"
    "   0  ok\n"
    "   1  any other failure (also a batch whose tasks failed in different ways)\n"
    "   2  usage error (bad options or arguments, unreadable --input file)\n"
    "   3  cannot reach crunchd, or lost the connection to it\n"
    "   4  NOT_FOUND           unknown kind or task id\n"
    "   5  INVALID_ARGUMENT    bad parameter\n"
    "   6  RESOURCE_EXHAUSTED  payload or output too large, or queue full\n"
    "   7  DEADLINE_EXCEEDED   --timeout or --deadline passed\n"
    "   8  ABORTED             the worker process died\n"
    "   9  CANCELLED           the task was cancelled\n"
    "  10  PERMISSION_DENIED   path, URL or caller not allowed by crunchd's configuration\n"
    "  11  UNAVAILABLE         crunchd is draining for shutdown\n"
    "  12  UNAUTHENTICATED     bearer token missing or wrong (--token-file)\n"
    "Errors go to stderr as \"crunchctl: <CODE_NAME>: <message>\".";

}  // namespace crunch::cli
