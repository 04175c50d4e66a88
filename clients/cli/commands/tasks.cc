// crunchctl submit / wait / cancel: a task's life in separate commands.
//
// Task ids are per daemon: with an address list, submit prints "ID@TARGET"
// (the entry of the list that took the task), and wait and cancel go to the
// daemon such an id names, whatever --address says. A bare id with a list is
// refused: it would reach a daemon picked at random, which may well have a
// task of that number too.

#include <cstdio>

#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/session.h"
#include "clients/cli/target_list.h"
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
  const bool several = session->connection().address_count() > 1;
  std::printf("%s\n", FormatTaskRef(ref.task_id(), several ? session->target() : "").c_str());
  return kExitOk;
}

namespace {

// The session for the daemon that has `task`: the one its @TARGET names, else
// the one --address names, which must then be a single daemon.
int StartSessionFor(const GlobalOptions& global, const TaskRef& task, int64_t default_deadline_ms,
                    std::optional<Session>* session) {
  if (!task.target.empty()) {
    GlobalOptions at = global;
    at.address = task.target;
    return Session::Start(at, default_deadline_ms, session);
  }
  if (absl::StatusOr<TargetList> list = ParseTargetList(global.address);
      list.ok() && list->targets.size() > 1) {
    return ReportUsage("task id " + std::to_string(task.id) +
                       " does not say which daemon has the task; with several addresses give "
                       "ID@ADDRESS, as crunchctl submit printed it");
  }
  return Session::Start(global, default_deadline_ms, session);
}

}  // namespace

int WaitCommand(const GlobalOptions& global, const WaitOptions& options) {
  absl::StatusOr<TaskRef> task = ParseTaskRef(options.task);
  if (!task.ok()) return ReportUsage(std::string(task.status().message()));
  std::optional<Session> session;
  if (int rc = StartSessionFor(global, *task, kNoDeadline, &session); rc != kExitOk) return rc;
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::TaskRef ref;
  ref.set_task_id(task->id);
  crunch::v1::TaskResult result;
  if (grpc::Status s = session->stub().Wait(&context, ref, &result); !s.ok()) {
    return session->Fail(s);
  }
  return EmitOutput(result.output(), options.output);
}

int CancelCommand(const GlobalOptions& global, const std::string& task_text) {
  absl::StatusOr<TaskRef> task = ParseTaskRef(task_text);
  if (!task.ok()) return ReportUsage(std::string(task.status().message()));
  std::optional<Session> session;
  if (int rc = StartSessionFor(global, *task, kQueryDeadlineMs, &session); rc != kExitOk) {
    return rc;
  }
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::TaskRef ref;
  ref.set_task_id(task->id);
  crunch::v1::CancelReply reply;
  if (grpc::Status s = session->stub().Cancel(&context, ref, &reply); !s.ok()) {
    return session->Fail(s);
  }
  std::printf("%s\n", reply.state().c_str());
  if (!reply.cancelled()) {
    std::fprintf(stderr, "crunchctl: task %s had already ended; its result stands\n",
                 task_text.c_str());
  }
  return kExitOk;
}

}  // namespace crunch::cli
