// crunchctl status: the daemon's status as a readable summary or JSON.

#include <cstdio>

#include "clients/cli/commands.h"
#include "clients/cli/exit_codes.h"
#include "clients/cli/format.h"
#include "clients/cli/session.h"

namespace crunch::cli {

int StatusCommand(const GlobalOptions& global, const ShowOptions& options) {
  std::optional<Session> session;
  if (int rc = Session::Start(global, kQueryDeadlineMs, &session); rc != kExitOk) return rc;
  grpc::ClientContext context;
  session->SetDeadline(&context);
  crunch::v1::DaemonStatus status;
  if (grpc::Status s = session->stub().Status(&context, {}, &status); !s.ok()) {
    return session->Fail(s);
  }
  const std::string text = options.json ? ToJson(status) : FormatStatus(status);
  std::fputs(text.c_str(), stdout);
  if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
  return kExitOk;
}

}  // namespace crunch::cli
