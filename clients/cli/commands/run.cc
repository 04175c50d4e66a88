// crunchctl run: one task through Run, its output to stdout or --output.

#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/session.h"
#include "clients/cli/task_io.h"

namespace crunch::cli {

int RunCommand(const GlobalOptions& global, const RunOptions& options) {
  if (options.repeat > 0) return BatchCommand(global, options);
  absl::StatusOr<crunch::v1::TaskRequest> request = BuildRequest(options.task);
  if (!request.ok()) return ReportUsage(std::string(request.status().message()));

  std::optional<Session> session;
  if (int rc = Session::Start(global, kNoDeadline, &session); rc != kExitOk) return rc;
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::TaskResult result;
  if (grpc::Status s = session->stub().Run(&context, *request, &result); !s.ok()) {
    return session->Fail(s);
  }
  return EmitOutput(result.output(), options.output);
}

}  // namespace crunch::cli
