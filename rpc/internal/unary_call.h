// UnaryCall: one unary RPC, from "waiting for a request" to "answer sent".
//
//   1. Created: asks gRPC for the next request of its method on its queue.
//   2. Request arrived (completion-queue thread): creates its successor, so
//      the method is always being waited on, and posts the handler to the
//      io_context. The handler runs there and answers with Reply()/Fail(),
//      possibly much later (a task's result); gRPC queues the answer.
//   3. Answer sent: deletes itself.
//
// Thread safety: the handler and its answer run on the io_context's thread;
// Proceed() on the completion-queue thread. They never overlap: the answer is
// the last thing the io side does with the call.

#ifndef CRUNCH_RPC_INTERNAL_UNARY_CALL_H_
#define CRUNCH_RPC_INTERNAL_UNARY_CALL_H_

#include <grpcpp/grpcpp.h>

#include <functional>

#include "boost/asio/io_context.hpp"
#include "boost/asio/post.hpp"
#include "crunch/v1/crunch.grpc.pb.h"
#include "rpc/internal/call.h"

namespace crunch::rpc::internal {

template <typename RequestT, typename ReplyT>
class UnaryCall final : public Tag {
 public:
  using Service = crunch::v1::Crunch::AsyncService;
  using RequestMethod = void (Service::*)(grpc::ServerContext*, RequestT*,
                                          grpc::ServerAsyncResponseWriter<ReplyT>*,
                                          grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                                          void*);
  using Handler = std::function<void(UnaryCall*)>;

  // Starts waiting for the method's next request on `cq`.
  static void Listen(Service* service, grpc::ServerCompletionQueue* cq, RequestMethod method,
                     boost::asio::io_context* io, const Handler* handler) {
    new UnaryCall(service, cq, method, io, handler);
  }

  const RequestT& request() const { return request_; }
  // The handler may take the request apart (move its payload out).
  RequestT* mutable_request() { return &request_; }
  grpc::ServerContext& context() { return context_; }

  void Reply(const ReplyT& reply) { responder_.Finish(reply, grpc::Status::OK, this); }
  void Fail(const grpc::Status& status) { responder_.FinishWithError(status, this); }

  void Proceed(bool ok) override {
    if (!started_ && ok) {
      started_ = true;
      Listen(service_, cq_, method_, io_, handler_);
      boost::asio::post(*io_, [this] { (*handler_)(this); });
      return;
    }
    delete this;  // Answer sent, or the server is shutting down.
  }

 private:
  UnaryCall(Service* service, grpc::ServerCompletionQueue* cq, RequestMethod method,
            boost::asio::io_context* io, const Handler* handler)
      : service_(service), cq_(cq), method_(method), io_(io), handler_(handler),
        responder_(&context_) {
    (service_->*method_)(&context_, &request_, &responder_, cq_, cq_, this);
  }
  ~UnaryCall() = default;

  Service* service_;
  grpc::ServerCompletionQueue* cq_;
  RequestMethod method_;
  boost::asio::io_context* io_;
  const Handler* handler_;
  grpc::ServerContext context_;
  RequestT request_;
  grpc::ServerAsyncResponseWriter<ReplyT> responder_;
  bool started_ = false;
};

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_UNARY_CALL_H_
