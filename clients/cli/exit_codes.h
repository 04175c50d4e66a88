// crunchctl's exit status: one number per class of failure, so scripts can
// branch on what went wrong without parsing messages.
//
//    0  ok
//    1  any other failure (including a batch whose tasks failed in different ways)
//    2  usage error: bad options or arguments, an --input file that cannot be read
//    3  cannot reach crunchd (connection refused, no socket, no connection within
//       2 s), or the connection was lost during the call
//    4  NOT_FOUND           unknown kind or task id
//    5  INVALID_ARGUMENT    a bad parameter
//    6  RESOURCE_EXHAUSTED  payload or output too large, or the queue is full
//    7  DEADLINE_EXCEEDED   the task's --timeout or the call's --deadline passed
//    8  ABORTED             the worker process running the task died
//    9  CANCELLED           the task was cancelled
//   10  PERMISSION_DENIED   a path or URL the daemon's configuration does not allow,
//                           or a caller it does not allow ([server] allow_uids/gids)
//   11  UNAVAILABLE         crunchd is draining for shutdown
//   12  UNAUTHENTICATED     the bearer token is missing or wrong (--token-file)
//
// The daemon's message goes to stderr as "crunchctl: <CODE_NAME>: <message>".

#ifndef CRUNCH_CLIENTS_CLI_EXIT_CODES_H_
#define CRUNCH_CLIENTS_CLI_EXIT_CODES_H_

#include <grpcpp/support/status.h>

namespace crunch::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,
  kExitUsage = 2,
  kExitCannotConnect = 3,
  kExitNotFound = 4,
  kExitInvalidArgument = 5,
  kExitResourceExhausted = 6,
  kExitDeadlineExceeded = 7,
  kExitAborted = 8,
  kExitCancelled = 9,
  kExitPermissionDenied = 10,
  kExitUnavailable = 11,
  kExitUnauthenticated = 12,
};

// The exit status for a task or call that ended with `code`.
ExitCode ExitCodeFor(grpc::StatusCode code);

// "DEADLINE_EXCEEDED" for grpc::DEADLINE_EXCEEDED; "UNKNOWN_CODE" for a number outside the table.
const char* CodeName(grpc::StatusCode code);

// The table above, for the footer of `crunchctl --help`.
extern const char kExitStatusHelp[];

}  // namespace crunch::cli

#endif  // CRUNCH_CLIENTS_CLI_EXIT_CODES_H_
