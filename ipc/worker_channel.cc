#include "ipc/worker_channel.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace crunch::ipc {

absl::StatusOr<WorkerChannel> WorkerChannel::Attach(const WorkerHandoff& handoff) {
  absl::StatusOr<Segment> segment = Segment::Attach(handoff.segment_fd);
  if (!segment.ok()) return segment.status();
  if (handoff.slot >= segment->layout().worker_slots) {
    return absl::InvalidArgumentError(absl::StrCat("worker slot ", handoff.slot,
                                                   " does not exist: the segment has slots 0..",
                                                   segment->layout().worker_slots - 1));
  }
  WorkerChannel channel(*std::move(segment), handoff.slot, handoff.request_event_fd,
                        handoff.completion_event_fd);
  channel.segment_.slot(handoff.slot)
      ->worker_pid.store(static_cast<uint32_t>(::getpid()), std::memory_order_release);
  // Unconditional: the daemon may be waiting for exactly this.
  const uint64_t one = 1;
  if (::write(handoff.completion_event_fd, &one, sizeof(one)) < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "completion eventfd ", handoff.completion_event_fd, " is not writable: not inherited?"));
  }
  return channel;
}

WorkerChannel::WorkerChannel(Segment segment, uint32_t slot, int request_fd,
                             int completion_fd) noexcept
    : segment_(std::move(segment)), slot_(slot) {
  SlotControl* control = segment_.slot(slot_);
  const uint32_t capacity = segment_.layout().ring_capacity;
  requests_ = SpscConsumer<Descriptor>(&control->request, segment_.request_slots(slot_), capacity);
  completions_ =
      SpscProducer<Descriptor>(&control->completion, segment_.completion_slots(slot_), capacity);
  request_bell_ = Doorbell(&control->request, request_fd);
  completion_bell_ = Doorbell(&control->completion, completion_fd);
}

RingResult WorkerChannel::Receive(Descriptor* request, SpinPolicy policy, int timeout_ms) noexcept {
  RingResult r = requests_.TryPop(request);
  if (r == RingResult::kEmpty) {
    r = request_bell_.Wait(requests_, policy, timeout_ms);
    if (r != RingResult::kOk) return r;
    r = requests_.TryPop(request);
  }
  if (r != RingResult::kOk) return r;
  if (!segment_.Contains(request->input) || !segment_.Contains(request->output)) {
    return RingResult::kCorrupt;
  }
  return RingResult::kOk;
}

RingResult WorkerChannel::Complete(const Descriptor& request, uint32_t status,
                                   uint64_t output_length) noexcept {
  Descriptor d = request;
  d.status = status;
  d.output.length = std::min(output_length, request.output.length);
  RingResult r = completions_.TryPush(d);
  if (r == RingResult::kOk) completion_bell_.Ring();
  return r;
}

}  // namespace crunch::ipc
