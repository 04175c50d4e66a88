// WorkerChannel: a worker process's end of its slot.
//
// A worker attaches once (Attach() maps the segment it inherited and checks its
// header), then loops: Receive() a request, read Input(), write up to
// output_capacity bytes into Output(), Complete(). It never allocates arena
// space and never frees any: the daemon lends it the extents of each task and
// takes them back when the completion arrives (or when the worker dies).
//
// A worker killed at any instruction leaves at worst a partly written output
// extent and an unpublished completion, both of which the daemon reclaims.
//
// Thread safety: not thread-safe; one thread of the worker owns it.

#ifndef CRUNCH_IPC_WORKER_CHANNEL_H_
#define CRUNCH_IPC_WORKER_CHANNEL_H_

#include <atomic>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "ipc/descriptor.h"
#include "ipc/doorbell.h"
#include "ipc/segment.h"
#include "ipc/spsc_ring.h"
#include "ipc/worker_handoff.h"

namespace crunch::ipc {

class WorkerChannel {
 public:
  // Maps the segment, checks its header (see Segment::Attach for the errors)
  // and the slot, then announces this process on the slot and wakes the daemon.
  static absl::StatusOr<WorkerChannel> Attach(const WorkerHandoff& handoff);

  WorkerChannel(WorkerChannel&&) noexcept = default;
  WorkerChannel& operator=(WorkerChannel&&) noexcept = default;

  // Spins up to `policy.spin`, then sleeps, until a request arrives (kOk, with
  // `*request` filled in), `timeout_ms` passes (kEmpty; -1 waits forever), or
  // the daemon's ring or extents are impossible (kCorrupt).
  RingResult Receive(Descriptor* request, SpinPolicy policy, int timeout_ms = -1) noexcept;

  // The request's bytes. REQUIRES: `request` came from Receive().
  std::span<const std::byte> Input(const Descriptor& request) const noexcept {
    return segment_.Bytes(request.input);
  }
  std::span<std::byte> Output(const Descriptor& request) const noexcept {
    return segment_.Bytes(request.output);
  }

  // Publishes the completion of `request` with `output_length` bytes of output
  // (at most request.output.length) and wakes the daemon if it sleeps.
  RingResult Complete(const Descriptor& request, uint32_t status, uint64_t output_length) noexcept;

  // The daemon's request to stop a task: the id of the task to stop, 0 for
  // none (SlotControl::cancel_request), so task id 0 cannot be cancelled.
  // Poll it with relaxed loads.
  const std::atomic<uint64_t>& cancel_request() const noexcept {
    return segment_.slot(slot_)->cancel_request;
  }
  bool CancelRequested(uint64_t task_id) const noexcept {
    return task_id != 0 && cancel_request().load(std::memory_order_acquire) == task_id;
  }

  const Segment& segment() const noexcept { return segment_; }
  uint32_t slot() const noexcept { return slot_; }

 private:
  WorkerChannel(Segment segment, uint32_t slot, int request_fd, int completion_fd) noexcept;

  Segment segment_;
  uint32_t slot_;
  SpscConsumer<Descriptor> requests_;
  SpscProducer<Descriptor> completions_;
  Doorbell request_bell_;
  Doorbell completion_bell_;
};

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_WORKER_CHANNEL_H_
