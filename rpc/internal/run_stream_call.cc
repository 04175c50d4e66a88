#include "rpc/internal/run_stream_call.h"

#include <type_traits>
#include <vector>

#include "boost/asio/post.hpp"
#include "rpc/internal/task_request_decoder.h"
#include "rpc/proto_conversion.h"

namespace crunch::rpc::internal {

namespace {

// A result batch stops growing past this many bytes of outputs and errors
// (it always holds at least one result, whatever its size).
constexpr size_t kResultBatchBytes = 1 << 20;

}  // namespace

template <typename Messages>
StreamCall<Messages>::StreamCall(CrunchService* service, grpc::ServerCompletionQueue* cq,
                                 boost::asio::io_context* io, daemon::Scheduler* scheduler,
                                 const CallAuthorizer* authorizer)
    : service_(service),
      cq_(cq),
      io_(io),
      scheduler_(scheduler),
      authorizer_(authorizer),
      stream_(&context_) {
  context_.AsyncNotifyWhenDone(&done_tag_);
  if constexpr (std::is_same_v<Messages, SingleTaskMessages>) {
    service_->RequestRunStream(&context_, &stream_, cq_, cq_, &accept_tag_);
  } else {
    service_->RequestRunBatches(&context_, &stream_, cq_, cq_, &accept_tag_);
  }
}

template <typename Messages>
void StreamCall<Messages>::Unref() {
  if (refs_.fetch_sub(1) == 1) delete this;
}

template <typename Messages>
void StreamCall<Messages>::OnEvent(Op op, bool ok) {
  switch (op) {
    case Op::kAccept:
      if (!ok) {  // Shutting down: no call was started, and no done report will come.
        delete this;
        return;
      }
      Listen(service_, cq_, io_, scheduler_, authorizer_);
      if (grpc::Status s = authorizer_->Check(context_, /*needs_token=*/true); !s.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        reads_done_ = true;
        finishing_ = true;
        stream_.Finish(s, &finish_tag_);
        return;
      }
      stream_.Read(&incoming_, &read_tag_);
      return;
    case Op::kRead: {
      if (!ok) {  // Half-close, or the client went away.
        std::lock_guard<std::mutex> lock(mu_);
        reads_done_ = true;
        MaybeFinishLocked();
        return;
      }
      const daemon::RequestLimits limits = scheduler_->request_limits().Load();
      std::vector<DecodedTask> tasks;
      bool decoded = false;
      if constexpr (std::is_same_v<Messages, SingleTaskMessages>) {
        decoded = DecodeTaskRequest(incoming_, limits, &tasks.emplace_back());
      } else {
        decoded = DecodeTaskBatch(incoming_, limits, &tasks);
      }
      incoming_.Clear();  // Frees the received slices now.
      if (!decoded) {
        // gRPC's own answer to a message it cannot parse; what was read
        // before it still ends as usual.
        std::lock_guard<std::mutex> lock(mu_);
        finish_status_ = grpc::Status(grpc::StatusCode::INTERNAL, "Unable to parse request");
        reads_done_ = true;
        MaybeFinishLocked();
        return;
      }
      if (!tasks.empty()) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          outstanding_ += tasks.size();
        }
        boost::asio::post(*io_, [this, tasks = std::move(tasks)]() mutable {
          for (DecodedTask& task : tasks) SubmitOnIoThread(std::move(task));
        });
      }
      stream_.Read(&incoming_, &read_tag_);
      return;
    }
    case Op::kWrite: {
      std::lock_guard<std::mutex> lock(mu_);
      write_in_flight_ = false;
      if (!ok) {
        broken_ = true;
        pending_writes_.clear();
      }
      if (!pending_writes_.empty()) {
        WriteNextLocked();
      } else {
        MaybeFinishLocked();
      }
      return;
    }
    case Op::kFinish:
      Unref();
      return;
    case Op::kDone:
      if (!context_.IsCancelled()) {
        Unref();
        return;
      }
      // The client went away: nobody will read what its tasks produce.
      boost::asio::post(*io_, [this] {
        CancelTasksOnIoThread();
        Unref();
      });
      return;
  }
}

template <typename Messages>
void StreamCall<Messages>::CancelTasksOnIoThread() {
  // Cancel() ends each task at once, and its callback leaves live_tasks_.
  const std::vector<uint64_t> ids(live_tasks_.begin(), live_tasks_.end());
  for (uint64_t id : ids) (void)scheduler_->Cancel(id);
}

template <typename Messages>
void StreamCall<Messages>::SubmitOnIoThread(DecodedTask task) {
  const uint64_t tag = task.request.tag();
  absl::StatusOr<uint64_t> id =
      scheduler_->Submit(FromProto(std::move(task.request), std::move(task.left_out)),
                         [this](const daemon::TaskResult& result) {
                           live_tasks_.erase(result.task_id);
                           crunch::v1::TaskResult out;
                           ToProto(result, &out);
                           Enqueue(std::move(out));
                         });
  if (id.ok()) {
    live_tasks_.insert(*id);
  } else {
    crunch::v1::TaskResult out;
    RejectedToProto(tag, id.status(), &out);
    Enqueue(std::move(out));
  }
}

template <typename Messages>
void StreamCall<Messages>::Enqueue(crunch::v1::TaskResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  --outstanding_;
  if (broken_) {
    MaybeFinishLocked();
    return;
  }
  pending_writes_.push_back(std::move(result));
  if (!write_in_flight_) WriteNextLocked();
}

template <typename Messages>
void StreamCall<Messages>::WriteNextLocked() {
  if constexpr (std::is_same_v<Messages, SingleTaskMessages>) {
    writing_ = std::move(pending_writes_.front());
    pending_writes_.pop_front();
  } else {
    writing_.Clear();
    size_t bytes = 0;
    do {
      crunch::v1::TaskResult& next = pending_writes_.front();
      bytes += next.output().size() + next.error().size();
      *writing_.add_results() = std::move(next);
      pending_writes_.pop_front();
    } while (!pending_writes_.empty() &&
             bytes + pending_writes_.front().output().size() <= kResultBatchBytes);
  }
  write_in_flight_ = true;
  grpc::WriteOptions options;
  // More results are queued: let gRPC coalesce them into fewer frames.
  if (!pending_writes_.empty()) options.set_buffer_hint();
  bool own_buffer = false;
  writing_bytes_.Clear();
  if (grpc::Status s =
          grpc::SerializationTraits<Out>::Serialize(writing_, &writing_bytes_, &own_buffer);
      !s.ok()) {
    // Not expected (a result is at most max_output_bytes): end the call.
    broken_ = true;
    write_in_flight_ = false;
    pending_writes_.clear();
    finish_status_ = s;
    context_.TryCancel();
    MaybeFinishLocked();
    return;
  }
  stream_.Write(writing_bytes_, options, &write_tag_);
}

template <typename Messages>
void StreamCall<Messages>::MaybeFinishLocked() {
  if (finishing_ || !reads_done_ || outstanding_ > 0 || write_in_flight_ ||
      !pending_writes_.empty()) {
    return;
  }
  finishing_ = true;
  stream_.Finish(finish_status_, &finish_tag_);
}

template class StreamCall<SingleTaskMessages>;
template class StreamCall<TaskBatchMessages>;

}  // namespace crunch::rpc::internal
