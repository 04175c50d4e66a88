#include "rpc/internal/health_service.h"

#include <atomic>

#include "rpc/internal/call.h"

namespace crunch::rpc::internal {

namespace health = grpc::health::v1;

std::optional<HealthService::ServingStatus> HealthService::StatusOfLocked(
    const std::string& service) const {
  if (!service.empty() && service != "crunch.v1.Crunch") return std::nullopt;
  return serving_ ? health::HealthCheckResponse::SERVING : health::HealthCheckResponse::NOT_SERVING;
}

grpc::Status HealthService::CheckPeer(const grpc::ServerContext& context) const {
  if (authorizer_ == nullptr) return grpc::Status::OK;
  return authorizer_->Check(context, /*needs_token=*/false);
}

// One Check: answered on the completion-queue thread that received it.
class HealthService::CheckCall final : public Tag {
 public:
  CheckCall(HealthService* owner, grpc::ServerCompletionQueue* cq)
      : owner_(owner), cq_(cq), responder_(&context_) {
    owner_->service_.RequestCheck(&context_, &request_, &responder_, cq_, cq_, this);
  }

  void Proceed(bool ok) override {
    if (started_ || !ok) {  // Answer sent, or the server is shutting down.
      delete this;
      return;
    }
    started_ = true;
    new CheckCall(owner_, cq_);
    if (grpc::Status s = owner_->CheckPeer(context_); !s.ok()) {
      responder_.FinishWithError(s, this);
      return;
    }
    std::optional<ServingStatus> status;
    {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      status = owner_->StatusOfLocked(request_.service());
    }
    if (!status) {
      responder_.FinishWithError(
          grpc::Status(grpc::StatusCode::NOT_FOUND,
                       "unknown service '" + request_.service() +
                           "'; crunchd reports on \"\" (the server) and \"crunch.v1.Crunch\""),
          this);
      return;
    }
    health::HealthCheckResponse reply;
    reply.set_status(*status);
    responder_.Finish(reply, grpc::Status::OK, this);
  }

 private:
  HealthService* owner_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext context_;
  health::HealthCheckRequest request_;
  grpc::ServerAsyncResponseWriter<health::HealthCheckResponse> responder_;
  bool started_ = false;
};

// One Watch: writes the status now and after each change, one write at a
// time; ends (Finish) once the service is ending, or drops out when the client
// goes away. Two tags: itself for requests, writes and the finish, and a
// done tag (AsyncNotifyWhenDone); it is deleted after both have come back.
class HealthService::WatchCall final : public Tag {
 public:
  WatchCall(HealthService* owner, grpc::ServerCompletionQueue* cq)
      : owner_(owner), cq_(cq), writer_(&context_), done_(this) {
    context_.AsyncNotifyWhenDone(&done_);
    owner_->service_.RequestWatch(&context_, &request_, &writer_, cq_, cq_, this);
  }

  void Proceed(bool ok) override {
    std::unique_lock<std::mutex> lock(owner_->mu_);
    switch (state_) {
      case State::kRequested:
        if (!ok) {  // Shutting down before a request came: no done report either.
          lock.unlock();
          delete this;
          return;
        }
        lock.unlock();
        new WatchCall(owner_, cq_);
        if (grpc::Status s = owner_->CheckPeer(context_); !s.ok()) {
          lock.lock();
          FinishLocked(s);
          return;
        }
        lock.lock();
        owner_->watches_.insert(this);
        WriteOrFinishLocked();
        return;
      case State::kWriting:
        if (!ok) {  // The client is gone.
          FinishLocked(grpc::Status::CANCELLED);
          return;
        }
        state_ = State::kIdle;
        WriteOrFinishLocked();
        return;
      case State::kFinishing:
        state_ = State::kFinished;
        owner_->watches_.erase(this);
        break;
      case State::kIdle:
      case State::kFinished:
        break;
    }
    lock.unlock();
    Unref();
  }

  // SetServing changed the status. REQUIRES: owner_->mu_ held.
  void NotifyLocked() {
    if (state_ == State::kIdle) WriteOrFinishLocked();
  }

 private:
  enum class State { kRequested, kWriting, kIdle, kFinishing, kFinished };

  class DoneTag final : public Tag {
   public:
    explicit DoneTag(WatchCall* call) : call_(call) {}
    void Proceed(bool) override { call_->OnDone(); }

   private:
    WatchCall* call_;
  };

  // Writes the status if the client has not seen it, else finishes if the
  // service is ending, else waits. REQUIRES: owner_->mu_ held, state_ kIdle or
  // just requested.
  void WriteOrFinishLocked() {
    const ServingStatus status = owner_->StatusOfLocked(request_.service())
                                     .value_or(health::HealthCheckResponse::SERVICE_UNKNOWN);
    if (!sent_ || status != last_sent_) {
      sent_ = true;
      last_sent_ = status;
      reply_.set_status(status);
      state_ = State::kWriting;
      writer_.Write(reply_, this);
      return;
    }
    if (owner_->ending_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    state_ = State::kIdle;
  }

  void FinishLocked(const grpc::Status& status) {
    state_ = State::kFinishing;
    writer_.Finish(status, this);
  }

  // The call is over (finished, or the client went away).
  void OnDone() {
    {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      if (state_ == State::kIdle) {  // Nothing pending: no tag will come back.
        state_ = State::kFinished;
        owner_->watches_.erase(this);
        refs_.fetch_sub(1);
      }
    }
    Unref();
  }

  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

  HealthService* owner_;
  grpc::ServerCompletionQueue* cq_;
  grpc::ServerContext context_;
  health::HealthCheckRequest request_;
  health::HealthCheckResponse reply_;
  grpc::ServerAsyncWriter<health::HealthCheckResponse> writer_;
  DoneTag done_;
  State state_ = State::kRequested;  // Guarded by owner_->mu_.
  bool sent_ = false;
  ServingStatus last_sent_ = health::HealthCheckResponse::UNKNOWN;
  // The main tag's last event and the done report.
  std::atomic<int> refs_{2};
};

void HealthService::Listen(grpc::ServerCompletionQueue* cq) {
  new CheckCall(this, cq);
  new WatchCall(this, cq);
}

void HealthService::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  serving_ = serving;
  if (!serving) ending_ = true;
  for (WatchCall* watch : watches_) watch->NotifyLocked();
}

}  // namespace crunch::rpc::internal
