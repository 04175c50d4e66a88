#include "rpc/grpc_frontend.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/log_format.h"
#include "rpc/default_address.h"
#include "rpc/internal/call_timeout.h"
#include "rpc/internal/run_stream_call.h"
#include "rpc/internal/unary_call.h"
#include "rpc/proto_conversion.h"
#include "rpc/status_conversion.h"

namespace crunch::rpc {
namespace {

namespace v1 = crunch::v1;
using internal::UnaryCall;
using Clock = std::chrono::steady_clock;

// Run and Submit decode their requests themselves (internal/crunch_service.h).
using RunCall = UnaryCall<v1::TaskRequest, v1::TaskResult, /*kRaw=*/true>;
using SubmitCall = UnaryCall<v1::TaskRequest, v1::TaskRef, /*kRaw=*/true>;
using WaitCall = UnaryCall<v1::TaskRef, v1::TaskResult>;
using CancelCall = UnaryCall<v1::TaskRef, v1::CancelReply>;
using ListKindsCall = UnaryCall<v1::ListKindsRequest, v1::ListKindsReply>;
using StatusCall = UnaryCall<v1::StatusRequest, v1::DaemonStatus>;

// The call's deadline as a steady-clock time (max if the client set none).
Clock::time_point CallDeadline(const grpc::ServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return Clock::time_point::max();
  }
  return Clock::now() + (deadline - std::chrono::system_clock::now());
}

// Answers a unary call with a task's result: a failed task is a failed call.
template <typename Call>
void AnswerWithResult(Call* call, const daemon::TaskResult& result) {
  if (result.code != absl::StatusCode::kOk) {
    call->Fail(ToGrpcStatus(result.code, result.error));
    return;
  }
  v1::TaskResult out;
  ToProto(result, &out);
  call->Reply(out);
}

// `handler`, after the authorizer's checks (when there are any).
template <typename Call>
typename Call::Handler Authorized(const internal::CallAuthorizer* authorizer,
                                  typename Call::Handler handler) {
  if (!authorizer->enabled()) return handler;
  return [authorizer, handler = std::move(handler)](Call* call) {
    if (grpc::Status s = authorizer->Check(call->context(), /*needs_token=*/true); !s.ok()) {
      call->Fail(s);
      return;
    }
    handler(call);
  };
}

// The handlers, run on the io_context's thread.
struct Handlers {
  RunCall::Handler run;
  SubmitCall::Handler submit;
  WaitCall::Handler wait;
  CancelCall::Handler cancel;
  ListKindsCall::Handler list_kinds;
  StatusCall::Handler status;
};

// A raw call's request, with what its decoding left out for being over a
// limit (the scheduler refuses that task naming the limit).
template <typename Call>
daemon::TaskRequest TaskFrom(Call* call) {
  return FromProto(std::move(*call->mutable_request()), call->left_out());
}

Handlers MakeHandlers(const GrpcFrontend::Context& ctx) {
  daemon::Scheduler* scheduler = ctx.scheduler;
  Handlers h;
  h.run = [scheduler](RunCall* call) {
    daemon::TaskRequest request = TaskFrom(call);
    // A client that stops waiting at its deadline has no use for the result:
    // bound the task by the call's deadline too.
    const Clock::time_point deadline = CallDeadline(call->context());
    if (deadline != Clock::time_point::max()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      request.call_timeout_ms = CallTimeoutMs(left);
    }
    absl::StatusOr<uint64_t> id = scheduler->Submit(
        std::move(request), [call](const daemon::TaskResult& r) { AnswerWithResult(call, r); });
    if (!id.ok()) {
      call->Fail(ToGrpcStatus(id.status()));
      return;
    }
    // Nobody will read the result of an abandoned call: free its worker.
    call->set_on_cancel([scheduler, task_id = *id] { (void)scheduler->Cancel(task_id); });
  };
  h.submit = [scheduler](SubmitCall* call) {
    absl::StatusOr<uint64_t> id = scheduler->Submit(
        TaskFrom(call), [](const daemon::TaskResult&) {}, /*keep_result=*/true);
    if (!id.ok()) {
      call->Fail(ToGrpcStatus(id.status()));
      return;
    }
    v1::TaskRef ref;
    ref.set_task_id(*id);
    call->Reply(ref);
  };
  h.wait = [scheduler](WaitCall* call) {
    absl::Status s =
        scheduler->Wait(call->request().task_id(), CallDeadline(call->context()),
                        [call](const daemon::TaskResult& r) { AnswerWithResult(call, r); });
    if (!s.ok()) call->Fail(ToGrpcStatus(s));
  };
  h.cancel = [scheduler](CancelCall* call) {
    absl::StatusOr<daemon::CancelOutcome> outcome = scheduler->Cancel(call->request().task_id());
    if (!outcome.ok()) {
      call->Fail(ToGrpcStatus(outcome.status()));
      return;
    }
    v1::CancelReply reply;
    reply.set_cancelled(outcome->cancelled);
    reply.set_state(outcome->state);
    call->Reply(reply);
  };
  h.list_kinds = [scheduler](ListKindsCall* call) {
    v1::ListKindsReply reply;
    ToProto(scheduler->kinds(), &reply);
    call->Reply(reply);
  };
  h.status = [scheduler, started = ctx.started](StatusCall* call) {
    v1::DaemonStatus reply;
    ToProto(scheduler->Snapshot(), started, &reply);
    call->Reply(reply);
  };
  const internal::CallAuthorizer* a = ctx.authorizer;
  h.run = Authorized<RunCall>(a, std::move(h.run));
  h.submit = Authorized<SubmitCall>(a, std::move(h.submit));
  h.wait = Authorized<WaitCall>(a, std::move(h.wait));
  h.cancel = Authorized<CancelCall>(a, std::move(h.cancel));
  h.list_kinds = Authorized<ListKindsCall>(a, std::move(h.list_kinds));
  h.status = Authorized<StatusCall>(a, std::move(h.status));
  return h;
}

// Handlers live as long as the process may still run a call.
Handlers* g_handlers = nullptr;

}  // namespace

GrpcFrontend::GrpcFrontend(boost::asio::io_context& io, daemon::Scheduler& scheduler,
                           const daemon::Config& config, std::vector<std::string> listen,
                           std::chrono::steady_clock::time_point started, int cq_threads)
    : io_(io),
      scheduler_(scheduler),
      config_(config),
      listen_(std::move(listen)),
      cq_thread_count_(cq_threads),
      context_{&io_, &scheduler_, &service_, started, nullptr} {}

GrpcFrontend::~GrpcFrontend() { Shutdown(); }

std::string GrpcFrontend::Describe() const { return absl::StrJoin(listen_, ", "); }

absl::Status GrpcFrontend::PrepareUnixSocket(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create the socket directory ", dir.string(), ": ", ec.message()));
    }
    ::chmod(dir.c_str(), 0755);
  }
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; remove it or listen elsewhere"));
  }
  // A socket file: is a live daemon behind it?
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  if (live) {
    return absl::FailedPreconditionError(
        absl::StrCat("another process (crunchd?) is already listening on ", path));
  }
  spdlog::info("removing stale socket {}", path);
  ::unlink(path.c_str());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcFrontend::TlsCredentials() const {
  const daemon::ServerConfig& server = config_.server;
  absl::StatusOr<std::string> cert =
      daemon::ReadPemFile("[server] tls_cert_file", server.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      daemon::ReadPemFile("[server] tls_key_file", server.tls_key_file);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!server.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        daemon::ReadPemFile("[server] tls_client_ca_file", server.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    options.pem_root_certs = *std::move(ca);
  }
  options.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(options);
}

absl::Status GrpcFrontend::Start() {
  absl::StatusOr<std::unique_ptr<internal::CallAuthorizer>> authorizer =
      internal::CallAuthorizer::Create(config_.server);
  if (!authorizer.ok()) return authorizer.status();
  authorizer_ = *std::move(authorizer);
  context_.authorizer = authorizer_.get();
  health_.set_authorizer(authorizer_.get());
  if (g_handlers == nullptr) g_handlers = new Handlers(MakeHandlers(context_));
  // grpc.health.v1 is served by health_ on our own queues (health_service.h).
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::unique_ptr<UnixListener>> unix_listener = UnixListener::Create(io_);
  if (!unix_listener.ok()) return unix_listener.status();
  unix_listener_ = *std::move(unix_listener);
  const std::vector<std::string>& activated_paths = unix_listener_->activated_paths();
  grpc::ServerBuilder builder;
  std::vector<int> ports(listen_.size(), 0);
  std::shared_ptr<grpc::ServerCredentials> tls;
  for (size_t i = 0; i < listen_.size(); ++i) {
    if (std::optional<std::string> path = UnixSocketPath(listen_[i])) {
      // Passed by systemd: already among unix_listener_'s sockets.
      if (std::find(activated_paths.begin(), activated_paths.end(), *path) !=
          activated_paths.end()) {
        continue;
      }
      absl::Status s = PrepareUnixSocket(*path);
      if (s.ok()) s = unix_listener_->Bind(*path);
      if (!s.ok()) {
        CloseUnixSockets();
        return s;
      }
      socket_paths_.push_back(*path);
      continue;
    }
    // Finalize (daemon/config.h) refuses a TCP address without TLS.
    if (tls == nullptr) {
      absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = TlsCredentials();
      if (!credentials.ok()) {
        CloseUnixSockets();
        return credentials.status();
      }
      tls = *std::move(credentials);
    }
    builder.AddListeningPort(listen_[i], tls, &ports[i]);
  }
  // A TCP port is this daemon's alone. gRPC sets SO_REUSEPORT by default, so a
  // second crunchd on the same port would start and silently take a share of
  // the connections (another instance's certificate, tasks and results).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(&service_);
  builder.RegisterService(health_.service());
  // Accept messages well past max_payload_bytes so that an oversized payload
  // reaches the scheduler and gets its error naming the limit, not gRPC's
  // anonymous "larger than max"; only a payload over twice the limit (or
  // 4 MiB over it) is cut off by gRPC itself.
  constexpr uint64_t kSlack = 64 * 1024;
  const uint64_t receive_limit = config_.limits.max_payload_bytes +
                                 std::max<uint64_t>(config_.limits.max_payload_bytes, 4 << 20);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<uint64_t>(INT32_MAX, receive_limit)));
  builder.SetMaxSendMessageSize(
      static_cast<int>(std::min<uint64_t>(INT32_MAX, config_.limits.max_output_bytes + kSlack)));
  for (int i = 0; i < cq_thread_count_; ++i) cqs_.push_back(builder.AddCompletionQueue());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    CloseUnixSockets();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", Describe(), " (address in use, or not permitted?)"));
  }
  for (size_t i = 0; i < listen_.size(); ++i) {
    if (!UnixSocketPath(listen_[i]) && ports[i] == 0) {
      Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot listen on ", listen_[i]));
    }
  }
  health_.SetServing(true);
  internal::CallAuthorizer* checks = authorizer_.get();
  unix_listener_->Start(server_.get(), [checks](int fd) {
    internal::PeerCredentials peer = internal::ReadPeerCredentials(fd);
    spdlog::debug("unix connection fd {}: uid {} gid {} pid {}", fd, peer.uid, peer.gid, peer.pid);
    checks->RememberPeer(fd, std::move(peer));
  });
  if (!activated_paths.empty()) {
    spdlog::info("serving the socket(s) systemd passed: {}", absl::StrJoin(activated_paths, ", "));
  }
  if (checks->checks_peers()) {
    spdlog::info("unix socket peers allowed: uids [{}], gids [{}], and root",
                 absl::StrJoin(config_.server.allow_uids, ", "),
                 absl::StrJoin(config_.server.allow_gids, ", "));
  }
  if (!config_.server.token_file.empty()) {
    spdlog::info("calls need the bearer token in {}", config_.server.token_file);
  }

  for (auto& cq : cqs_) {
    grpc::ServerCompletionQueue* q = cq.get();
    // Requests for each method are awaited on every queue.
    RunCall::Listen(&service_, q, &internal::CrunchService::RequestRun, &io_, &g_handlers->run,
                    /*watch_cancellation=*/true, &scheduler_.request_limits());
    SubmitCall::Listen(&service_, q, &internal::CrunchService::RequestSubmit, &io_,
                       &g_handlers->submit, /*watch_cancellation=*/false,
                       &scheduler_.request_limits());
    WaitCall::Listen(&service_, q, &internal::CrunchService::RequestWait, &io_, &g_handlers->wait);
    CancelCall::Listen(&service_, q, &internal::CrunchService::RequestCancel, &io_,
                       &g_handlers->cancel);
    ListKindsCall::Listen(&service_, q, &internal::CrunchService::RequestListKinds, &io_,
                          &g_handlers->list_kinds);
    StatusCall::Listen(&service_, q, &internal::CrunchService::RequestStatus, &io_,
                       &g_handlers->status);
    internal::RunStreamCall::Listen(&service_, q, &io_, &scheduler_, checks);
    internal::RunBatchesCall::Listen(&service_, q, &io_, &scheduler_, checks);
    health_.Listen(q);
    threads_.emplace_back([q] {
      void* tag = nullptr;
      bool ok = false;
      while (q->Next(&tag, &ok)) static_cast<internal::Tag*>(tag)->Proceed(ok);
    });
  }
  spdlog::info("listening on {}", Describe());
  return absl::OkStatus();
}

void GrpcFrontend::Draining() { health_.SetServing(false); }

void GrpcFrontend::CloseUnixSockets() {
  if (unix_listener_) unix_listener_->Stop();
  for (const std::string& path : socket_paths_) ::unlink(path.c_str());
  socket_paths_.clear();
}

void GrpcFrontend::Shutdown() {
  if (server_ == nullptr) return;
  health_.SetServing(false);
  if (unix_listener_) unix_listener_->Stop();
  // Open calls get a second to receive what is already queued for them.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (auto& cq : cqs_) cq->Shutdown();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  server_.reset();
  cqs_.clear();
  for (const std::string& path : socket_paths_) ::unlink(path.c_str());
  socket_paths_.clear();
}

}  // namespace crunch::rpc
