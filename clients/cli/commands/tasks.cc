// crunchctl submit / wait / cancel: a task's life in separate commands.

#include <cinttypes>
#include <cstdio>

#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/session.h"
#include "clients/cli/task_io.h"

namespace crunch::cli {

int SubmitCommand(const GlobalOptions& global, const TaskOptions& options) {
  absl::StatusOr<crunch::v1::TaskRequest> request = BuildRequest(options);
  if (!request.ok()) return ReportUsage(std::string(request.status().message()));

  std::optional<Session> session;
  if (int rc = Session::Start(global, kQueryDeadlineMs, &session); rc != kExitOk) return rc;
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::TaskRef ref;
  if (grpc::Status s = session->stub().Submit(&context, *request, &ref); !s.ok()) {
    return session->Fail(s);
  }
  std::printf("%" PRIu64 "\n", ref.task_id());
  return kExitOk;
}

int WaitCommand(const GlobalOptions& global, const WaitOptions& options) {
  std::optional<Session> session;
  if (int rc = Session::Start(global, kNoDeadline, &session); rc != kExitOk) return rc;
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::TaskRef ref;
  ref.set_task_id(options.task_id);
  crunch::v1::TaskResult result;
  if (grpc::Status s = session->stub().Wait(&context, ref, &result); !s.ok()) {
    return session->Fail(s);
  }
  return EmitOutput(result.output(), options.output);
}

int CancelCommand(const GlobalOptions& global, uint64_t task_id) {
  std::optional<Session> session;
  if (int rc = Session::Start(global, kQueryDeadlineMs, &session); rc != kExitOk) return rc;
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::TaskRef ref;
  ref.set_task_id(task_id);
  crunch::v1::CancelReply reply;
  if (grpc::Status s = session->stub().Cancel(&context, ref, &reply); !s.ok()) {
    return session->Fail(s);
  }
  std::printf("%s\n", reply.state().c_str());
  if (!reply.cancelled()) {
    std::fprintf(stderr, "crunchctl: task %" PRIu64 " had already ended; its result stands\n",
                 task_id);
  }
  return kExitOk;
}

}  // namespace crunch::cli
