// UnaryCall: one unary RPC, from "waiting for a request" to "answer sent".
//
//   1. Created: asks gRPC for the next request of its method on its queue.
//   2. Request arrived (completion-queue thread): creates its successor, so
//      the method is always being waited on, and posts the handler to the
//      io_context. The handler runs there and answers with Reply()/Fail(),
//      possibly much later (a task's result); gRPC queues the answer.
//   3. Answer sent: deletes itself.
//
// With `watch_cancellation`, the call also asks gRPC to report when it is done
// (AsyncNotifyWhenDone). If the client cancelled or went away, the io_context
// runs the handler's on_cancel hook (Run uses it to cancel the task, so an
// abandoned call does not keep a worker busy); a call that ended answered is
// handled on the completion-queue thread, sparing the io_context a wake-up.
// The call is deleted only after both events, the answer and the done report,
// have come back.
//
// A call on a raw method (kRaw: Run and Submit, crunch_service.h) receives
// the request's bytes and decodes them on the completion-queue thread, as
// gRPC would have, with DecodeTaskRequest (task_request_decoder.h); bytes that
// do not decode get gRPC's own answer, INTERNAL "Unable to parse request", and
// the handler never sees the call. What is over the limits the call was given
// (Scheduler::request_limits) is measured, not copied: the handler finds it
// in left_out() and the scheduler refuses the task. Its reply is serialized here.
//
// Thread safety: the handler and its answer run on the io_context's thread;
// Proceed() on the completion-queue thread. They never overlap: the answer is
// the last thing the io side does with the call.

#ifndef CRUNCH_RPC_INTERNAL_UNARY_CALL_H_
#define CRUNCH_RPC_INTERNAL_UNARY_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>
#include <variant>

#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "crunch/v1/crunch.grpc.pb.h"
#include "daemon/request_limits.h"
#include "rpc/internal/call.h"
#include "rpc/internal/crunch_service.h"
#include "rpc/internal/task_request_decoder.h"

namespace crunch::rpc::internal {

template <typename RequestT, typename ReplyT, bool kRaw = false>
class UnaryCall final : public Tag {
 public:
  using Service = CrunchService;
  // What gRPC hands over and takes back: the messages, or their bytes.
  using WireRequest = std::conditional_t<kRaw, grpc::ByteBuffer, RequestT>;
  using WireReply = std::conditional_t<kRaw, grpc::ByteBuffer, ReplyT>;
  using RequestMethod = void (Service::*)(grpc::ServerContext*, WireRequest*,
                                          grpc::ServerAsyncResponseWriter<WireReply>*,
                                          grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                          void*);
  using Handler = std::function<void(UnaryCall*)>;

  // Starts waiting for the method's next request on `cq`. A raw method's
  // request is measured against `limits` (null: none; read as each request
  // arrives, so they may change while the server runs).
  static void Listen(Service* service, grpc::ServerCompletionQueue* cq, RequestMethod method,
                     boost::asio::io_context* io, const Handler* handler,
                     bool watch_cancellation = false,
                     const daemon::PublishedRequestLimits* limits = nullptr) {
    new UnaryCall(service, cq, method, io, handler, watch_cancellation, limits);
  }

  const RequestT& request() const { return request_.request; }
  // The handler may take the request apart (move its payload out).
  RequestT* mutable_request() { return &request_.request; }
  // kRaw: what was left out of request() for being over a limit.
  const daemon::TaskRequest::LeftOut& left_out() const { return request_.left_out; }
  grpc::ServerContext& context() { return context_; }

  void Reply(const ReplyT& reply) {
    if constexpr (kRaw) {
      grpc::ByteBuffer bytes;
      bool own_buffer = false;
      grpc::Status s = grpc::SerializationTraits<ReplyT>::Serialize(reply, &bytes, &own_buffer);
      if (!s.ok()) {
        responder_.FinishWithError(s, this);
        return;
      }
      responder_.Finish(bytes, grpc::Status::OK, this);
    } else {
      responder_.Finish(reply, grpc::Status::OK, this);
    }
  }
  void Fail(const grpc::Status& status) { responder_.FinishWithError(status, this); }
  // Runs on the io_context if the client cancels (only with watch_cancellation).
  void set_on_cancel(std::function<void()> on_cancel) { on_cancel_ = std::move(on_cancel); }

  void Proceed(bool ok) override {
    if (!started_) {
      if (!ok) {  // The server is shutting down; gRPC reports nothing more for this call.
        delete this;
        return;
      }
      started_ = true;
      Listen(service_, cq_, method_, io_, handler_, done_tag_.has_value(), limits_);
      if constexpr (kRaw) {
        const bool decoded = DecodeTaskRequest(
            wire_request_, limits_ != nullptr ? limits_->Load() : daemon::RequestLimits{},
            &request_);
        wire_request_.Clear();  // Frees the received slices now, not when the call ends.
        if (!decoded) {
          Fail(grpc::Status(grpc::StatusCode::INTERNAL, "Unable to parse request"));
          return;
        }
      }
      boost::asio::post(*io_, [this] { (*handler_)(this); });
      return;
    }
    Unref();  // The answer was sent (or could not be).
  }

 private:
  // The "call is done" report, a second tag of the same call.
  class DoneTag final : public Tag {
   public:
    explicit DoneTag(UnaryCall* call) : call_(call) {}
    void Proceed(bool) override {
      UnaryCall* call = call_;
      // Most calls end answered: no need to wake the io_context for them.
      if (!call->context_.IsCancelled()) {
        call->Unref();
        return;
      }
      boost::asio::post(*call->io_, [call] {
        if (call->on_cancel_) call->on_cancel_();
        call->Unref();
      });
    }

   private:
    UnaryCall* call_;
  };

  UnaryCall(Service* service, grpc::ServerCompletionQueue* cq, RequestMethod method,
            boost::asio::io_context* io, const Handler* handler, bool watch_cancellation,
            const daemon::PublishedRequestLimits* limits)
      : service_(service),
        cq_(cq),
        method_(method),
        io_(io),
        handler_(handler),
        limits_(limits),
        responder_(&context_) {
    if (watch_cancellation) {
      done_tag_.emplace(this);
      refs_.store(2);
      context_.AsyncNotifyWhenDone(&*done_tag_);
    }
    if constexpr (kRaw) {
      (service_->*method_)(&context_, &wire_request_, &responder_, cq_, cq_, this);
    } else {
      (service_->*method_)(&context_, &request_.request, &responder_, cq_, cq_, this);
    }
  }
  ~UnaryCall() = default;

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  Service* service_;
  grpc::ServerCompletionQueue* cq_;
  RequestMethod method_;
  boost::asio::io_context* io_;
  const Handler* handler_;
  const daemon::PublishedRequestLimits* limits_;
  grpc::ServerContext context_;
  // The request; for kRaw, with what its decoding left out.
  struct Request {
    RequestT request;
    daemon::TaskRequest::LeftOut left_out;
  };
  std::conditional_t<kRaw, DecodedTask, Request> request_;
  std::conditional_t<kRaw, grpc::ByteBuffer, std::monostate> wire_request_;
  grpc::ServerAsyncResponseWriter<WireReply> responder_;
  bool started_ = false;
  std::optional<DoneTag> done_tag_;
  std::atomic<int> refs_{1};         // Events still to come: the answer, and the done report.
  std::function<void()> on_cancel_;  // io_context thread only.
};

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_UNARY_CALL_H_
