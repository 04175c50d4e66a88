#include "ipc/daemon_channel.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "ipc/internal/posix_error.h"

namespace crunch::ipc {

absl::StatusOr<DaemonChannel> DaemonChannel::Create(const Segment* segment, uint32_t slot,
                                                    ArenaAllocator* arena) {
  if (slot >= segment->layout().worker_slots) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot must be in 0..", segment->layout().worker_slots - 1, ", got ", slot));
  }
  // Blocking, for a worker that waits in read() or an event loop. The worker's
  // Receive() sleeps on the ring's futex instead and never rings it up. The
  // daemon only writes it, which cannot block (the count would need 2^64-2 rings).
  UniqueFd request_fd(::eventfd(0, EFD_CLOEXEC));
  if (!request_fd.valid()) return internal::ErrnoError("eventfd(request)");
  // Non-blocking: the daemon, its only reader, waits for it in an event loop.
  UniqueFd completion_fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!completion_fd.valid()) return internal::ErrnoError("eventfd(completion)");
  return DaemonChannel(segment, slot, arena, std::move(request_fd), std::move(completion_fd));
}

DaemonChannel::DaemonChannel(const Segment* segment, uint32_t slot, ArenaAllocator* arena,
                             UniqueFd request_fd, UniqueFd completion_fd)
    : segment_(segment),
      slot_(slot),
      arena_(arena),
      request_event_fd_(std::move(request_fd)),
      completion_event_fd_(std::move(completion_fd)),
      capacity_(segment->layout().ring_capacity),
      in_flight_(capacity_) {
  free_tickets_.reserve(capacity_);
  for (uint32_t t = capacity_; t > 0; --t) free_tickets_.push_back(t - 1);
  SlotControl* control = segment_->slot(slot_);
  ResetRing(&control->request, segment_->request_slots(slot_), capacity_);
  ResetRing(&control->completion, segment_->completion_slots(slot_), capacity_);
  control->worker_pid.store(0, std::memory_order_relaxed);
  control->cancel_request.store(0, std::memory_order_relaxed);
  AttachRings();
}

void DaemonChannel::RequestCancel(uint64_t task_id) noexcept {
  segment_->slot(slot_)->cancel_request.store(task_id, std::memory_order_release);
}

void DaemonChannel::AttachRings() noexcept {
  SlotControl* control = segment_->slot(slot_);
  requests_ =
      SpscProducer<Descriptor>(&control->request, segment_->request_slots(slot_), capacity_);
  completions_ =
      SpscConsumer<Descriptor>(&control->completion, segment_->completion_slots(slot_), capacity_);
  request_bell_ = Doorbell(&control->request, request_event_fd_.get());
  completion_bell_ = Doorbell(&control->completion, completion_event_fd_.get());
}

WorkerHandoff DaemonChannel::Handoff() const {
  WorkerHandoff h;
  h.segment_fd = segment_->fd();
  h.request_event_fd = request_event_fd_.get();
  h.completion_event_fd = completion_event_fd_.get();
  h.slot = slot_;
  h.parent_pid = ::getpid();
  return h;
}

SubmitResult DaemonChannel::Submit(uint64_t task_id, uint32_t kind,
                                   std::span<const std::byte> input, uint64_t output_capacity,
                                   uint64_t deadline_ns, bool ring) noexcept {
  const std::span<const std::byte> parts[] = {input};
  return SubmitGather(task_id, kind, parts, output_capacity, deadline_ns, ring);
}

SubmitResult DaemonChannel::SubmitGather(uint64_t task_id, uint32_t kind,
                                         std::span<const std::span<const std::byte>> input_parts,
                                         uint64_t output_capacity, uint64_t deadline_ns,
                                         bool ring) noexcept {
  if (free_tickets_.empty()) return SubmitResult::kSlotBusy;
  uint64_t input_bytes = 0;
  for (std::span<const std::byte> part : input_parts) input_bytes += part.size();
  std::optional<Extent> in = arena_->Allocate(input_bytes);
  if (!in) return SubmitResult::kArenaFull;
  std::optional<Extent> out = arena_->Allocate(output_capacity);
  if (!out) {
    arena_->Free(*in);
    return SubmitResult::kArenaFull;
  }
  std::byte* cursor = segment_->Bytes(*in).data();
  for (std::span<const std::byte> part : input_parts) {
    if (part.empty()) continue;
    std::memcpy(cursor, part.data(), part.size());
    cursor += part.size();
  }

  const uint32_t ticket = free_tickets_.back();
  Descriptor d;
  d.task_id = task_id;
  d.kind = kind;
  d.input = *in;
  d.output = *out;
  d.deadline_ns = deadline_ns;
  d.ticket = ticket;
  // Tickets bound in-flight work by the capacity, so only a worker that wrote a
  // bogus head can make the ring look full.
  if (requests_.TryPush(d) != RingResult::kOk) {
    arena_->Free(*in);
    arena_->Free(*out);
    return SubmitResult::kCorrupt;
  }
  free_tickets_.pop_back();
  in_flight_[ticket] = InFlight{task_id, next_sequence_++, kind, true, *in, *out};
  if (ring) request_bell_.Ring();
  return SubmitResult::kOk;
}

absl::Status DaemonChannel::CheckCompletion(const Descriptor& d) const {
  if (d.ticket >= capacity_ || !in_flight_[d.ticket].active) {
    return absl::FailedPreconditionError(absl::StrCat("worker on slot ", slot_, " completed task ",
                                                      d.task_id, " under ticket ", d.ticket,
                                                      ", which is not in flight"));
  }
  const InFlight& task = in_flight_[d.ticket];
  if (task.task_id != d.task_id) {
    return absl::FailedPreconditionError(absl::StrCat("worker on slot ", slot_, " completed task ",
                                                      d.task_id, " under ticket ", d.ticket,
                                                      ", which belongs to task ", task.task_id));
  }
  if (d.output.offset != task.output.offset || d.output.length > task.output.length) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker on slot ", slot_, " reported output [", d.output.offset, ", +",
                     d.output.length, ") for task ", d.task_id, ", outside the ",
                     task.output.length, " bytes lent at ", task.output.offset));
  }
  return absl::OkStatus();
}

void DaemonChannel::Retire(uint32_t ticket) noexcept {
  InFlight& task = in_flight_[ticket];
  arena_->Free(task.input);
  arena_->Free(task.output);
  task.active = false;
  free_tickets_.push_back(ticket);
}

std::vector<uint64_t> DaemonChannel::Reset() {
  std::vector<const InFlight*> held;
  for (const InFlight& task : in_flight_) {
    if (task.active) held.push_back(&task);
  }
  std::sort(held.begin(), held.end(),
            [](const InFlight* a, const InFlight* b) { return a->sequence < b->sequence; });
  std::vector<uint64_t> ids;
  ids.reserve(held.size());
  for (const InFlight* task : held) ids.push_back(task->task_id);
  for (uint32_t ticket = 0; ticket < capacity_; ++ticket) {
    if (in_flight_[ticket].active) Retire(ticket);
  }

  SlotControl* control = segment_->slot(slot_);
  ResetRing(&control->request, segment_->request_slots(slot_), capacity_);
  ResetRing(&control->completion, segment_->completion_slots(slot_), capacity_);
  control->cancel_request.store(0, std::memory_order_relaxed);
  control->worker_pid.store(0, std::memory_order_release);
  AttachRings();
  // Stale counts would only cause one spurious wake each; drop them anyway
  // (non-blocking reads, whatever the fd's mode).
  pollfd p{request_event_fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, 0) == 1) request_bell_.Woken();
  completion_bell_.Woken();
  return ids;
}

bool DaemonChannel::worker_attached() const noexcept {
  return segment_->slot(slot_)->worker_pid.load(std::memory_order_acquire) != 0;
}

}  // namespace crunch::ipc
