// StreamCall: one RunStream or RunBatches RPC, many tasks on one bidirectional
// stream. RunStreamCall carries one task per message each way; RunBatchesCall
// several (a TaskBatch in, a ResultBatch out holding every result ready when
// it is written, up to about 1 MiB of outputs). Everything else is the same.
//
// Reads and writes are independent: the completion-queue thread keeps one
// Read() outstanding, decodes each message itself (the methods are raw:
// task_request_decoder.h, so what is over the [limits] is measured, never
// copied) and posts its tasks to the io_context, where the Scheduler accepts
// (or refuses) them; each result comes back through Enqueue() and is written
// in completion order, one Write() outstanding at a time (a gRPC rule), the
// rest waiting in a queue. A refused or failed task is just a result with a
// non-zero code: the stream goes on.
//
// The call ends (Finish) once the client has half-closed, every task it sent
// has ended and every result is written. A message that does not decode ends
// the reading as a half-close would, and the call then finishes with gRPC's
// own INTERNAL "Unable to parse request" (the tasks before it still end and
// their results are written first). If the client goes away early (gRPC's
// done report says the call was cancelled), its tasks still queued or running
// are cancelled, their results dropped as they arrive, and the call still
// waits for them, so no callback can outlive the object. It is deleted after
// both the finish and the done report have come back.
//
// Thread safety: Proceed() runs on the completion-queue thread, Enqueue() and
// the task bookkeeping on the io_context's thread; the write queue and
// counters are under mu_.

#ifndef CRUNCH_RPC_INTERNAL_RUN_STREAM_CALL_H_
#define CRUNCH_RPC_INTERNAL_RUN_STREAM_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "boost/asio/io_context.hpp"
#include "crunch/v1/crunch.grpc.pb.h"
#include "daemon/scheduler.h"
#include "rpc/internal/call.h"
#include "rpc/internal/call_authorizer.h"
#include "rpc/internal/crunch_service.h"
#include "rpc/internal/task_request_decoder.h"

namespace crunch::rpc::internal {

// One task per message: RunStream.
struct SingleTaskMessages {
  using In = crunch::v1::TaskRequest;
  using Out = crunch::v1::TaskResult;
};
// Several tasks per message: RunBatches.
struct TaskBatchMessages {
  using In = crunch::v1::TaskBatch;
  using Out = crunch::v1::ResultBatch;
};

template <typename Messages>
class StreamCall {
 public:
  // `authorizer` checks each call before its first read (call_authorizer.h).
  static void Listen(CrunchService* service, grpc::ServerCompletionQueue* cq,
                     boost::asio::io_context* io, daemon::Scheduler* scheduler,
                     const CallAuthorizer* authorizer) {
    new StreamCall(service, cq, io, scheduler, authorizer);
  }

 private:
  enum class Op { kAccept, kRead, kWrite, kFinish, kDone };
  class OpTag final : public Tag {
   public:
    OpTag(StreamCall* call, Op op) : call_(call), op_(op) {}
    void Proceed(bool ok) override { call_->OnEvent(op_, ok); }

   private:
    StreamCall* call_;
    Op op_;
  };

  using In = typename Messages::In;
  using Out = typename Messages::Out;

  StreamCall(CrunchService* service, grpc::ServerCompletionQueue* cq, boost::asio::io_context* io,
             daemon::Scheduler* scheduler, const CallAuthorizer* authorizer);
  ~StreamCall() = default;

  void OnEvent(Op op, bool ok);
  void SubmitOnIoThread(DecodedTask task);
  void Enqueue(crunch::v1::TaskResult result);
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelTasksOnIoThread();
  void Unref();

  CrunchService* service_;
  grpc::ServerCompletionQueue* cq_;
  boost::asio::io_context* io_;
  daemon::Scheduler* scheduler_;
  const CallAuthorizer* authorizer_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> stream_;
  grpc::ByteBuffer incoming_;  // Owned by the outstanding Read().
  OpTag accept_tag_{this, Op::kAccept};
  OpTag read_tag_{this, Op::kRead};
  OpTag write_tag_{this, Op::kWrite};
  OpTag finish_tag_{this, Op::kFinish};
  OpTag done_tag_{this, Op::kDone};
  std::atomic<int> refs_{2};                  // The finish and the done report still to come.
  absl::flat_hash_set<uint64_t> live_tasks_;  // io_context thread only.

  std::mutex mu_;
  std::deque<crunch::v1::TaskResult> pending_writes_ ABSL_GUARDED_BY(mu_);
  Out writing_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer writing_bytes_ ABSL_GUARDED_BY(mu_);  // writing_, serialized.
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);      // OK, or why reading stopped.
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // A write failed: the client is gone.
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;  // Tasks read whose result is not queued yet.
};

using RunStreamCall = StreamCall<SingleTaskMessages>;
using RunBatchesCall = StreamCall<TaskBatchMessages>;

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_RUN_STREAM_CALL_H_
