// DaemonChannel: the daemon's end of one worker slot.
//
// Owns the slot's two eventfds and the daemon-side views of its rings, and
// records every task in flight on the slot under a ticket (an index into a
// fixed table as large as the ring). Tickets bound the work in flight by the
// ring capacity, so neither ring can ever be full when the protocol is kept.
//
// Trust: the worker is assumed buggy, not malicious, but nothing it writes can
// make the daemon touch memory outside the segment. Completions are copied out
// of the ring before use; the ticket, task id and output extent must match what
// the daemon recorded, and the output span handed to the caller is built from
// the daemon's record, bounded by the length the worker reports. A mismatch is a
// protocol error: the caller kills the worker and calls Reset().
//
// Crash recovery: once the worker process is reaped, DrainCompletions() collects
// what it finished, and Reset() frees the arena space of everything else it
// held, returns those task ids, and clears the rings for a replacement.
//
// Wake-ups: completions are waited for on wakeup_fd() (an Asio
// posix::stream_descriptor works), with PrepareToSleep()/Woken() around the
// wait; WaitForCompletions() is the blocking form for tests and benchmarks,
// which sleeps on the ring's futex instead (see Doorbell).
//
// Thread safety: not thread-safe; owned by the daemon's dispatch thread. The
// Segment and ArenaAllocator must outlive the channel.

#ifndef CRUNCH_IPC_DAEMON_CHANNEL_H_
#define CRUNCH_IPC_DAEMON_CHANNEL_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ipc/arena_allocator.h"
#include "ipc/descriptor.h"
#include "ipc/doorbell.h"
#include "ipc/segment.h"
#include "ipc/spsc_ring.h"
#include "ipc/unique_fd.h"
#include "ipc/worker_handoff.h"

namespace crunch::ipc {

enum class SubmitResult : uint8_t {
  kOk,
  kSlotBusy,   // As many tasks in flight as the ring holds; wait for completions.
  kArenaFull,  // No room for the input plus the output capacity; retry later.
  kCorrupt,    // The worker broke the ring; kill it and Reset().
};

struct Completion {
  uint64_t task_id;
  uint32_t kind;
  uint32_t status;
  std::span<const std::byte> output;  // Valid only during the callback.
};

class DaemonChannel {
 public:
  static absl::StatusOr<DaemonChannel> Create(const Segment* segment, uint32_t slot,
                                              ArenaAllocator* arena);

  DaemonChannel(DaemonChannel&&) noexcept = default;
  DaemonChannel& operator=(DaemonChannel&&) noexcept = default;
  DaemonChannel(const DaemonChannel&) = delete;
  DaemonChannel& operator=(const DaemonChannel&) = delete;

  // The fds and slot a worker needs, numbered as in this process; the spawner
  // maps them to the child's numbers and rewrites the handoff to match.
  WorkerHandoff Handoff() const;

  // Copies `input` into the arena, lends `output_capacity` bytes for the
  // output and publishes the request. With `ring` false the worker is not woken
  // (publish a batch, then call RingWorker() once).
  SubmitResult Submit(uint64_t task_id, uint32_t kind, std::span<const std::byte> input,
                      uint64_t output_capacity, uint64_t deadline_ns = 0,
                      bool ring = true) noexcept;
  // The same, with the input gathered from several parts (a header and a
  // payload, say) into one contiguous extent.
  SubmitResult SubmitGather(uint64_t task_id, uint32_t kind,
                            std::span<const std::span<const std::byte>> input_parts,
                            uint64_t output_capacity, uint64_t deadline_ns = 0,
                            bool ring = true) noexcept;
  void RingWorker() noexcept { request_bell_.Ring(); }

  // Asks the worker to stop `task_id` (see SlotControl::cancel_request). A
  // request, not a guarantee: a kernel that never polls runs to its end.
  void RequestCancel(uint64_t task_id) noexcept;

  // Calls on_completion(const Completion&) for every completion available, in
  // the order the worker sent them, then frees each task's arena space.
  // Returns how many, or FailedPrecondition naming the protocol violation.
  template <typename OnCompletion>
  absl::StatusOr<size_t> DrainCompletions(OnCompletion&& on_completion);

  // Spins up to `policy.spin`, then sleeps (in FUTEX_WAIT, one system call),
  // until a completion is available (kOk), the ring is corrupt (kCorrupt), or
  // `timeout_ms` passes (kEmpty).
  RingResult WaitForCompletions(SpinPolicy policy, int timeout_ms) noexcept {
    return completion_bell_.Wait(completions_, policy, timeout_ms);
  }

  // Event-loop form of the wait: if PrepareToSleep() returns true, wait until
  // wakeup_fd() (non-blocking) is readable, then call Woken() and drain.
  int wakeup_fd() const noexcept { return completion_event_fd_.get(); }
  bool PrepareToSleep() noexcept { return completion_bell_.PrepareToSleep(completions_); }
  void Woken() noexcept { completion_bell_.Woken(); }

  // REQUIRES: the worker on this slot has exited and been reaped.
  // Frees the arena space of every task still in flight, returns their ids in
  // submission order, and resets the slot for a new worker.
  std::vector<uint64_t> Reset();

  // True once a worker has attached to this slot since the last Reset().
  bool worker_attached() const noexcept;
  uint32_t slot() const noexcept { return slot_; }
  uint32_t in_flight() const noexcept { return capacity_ - free_tickets_.size(); }
  uint32_t capacity() const noexcept { return capacity_; }

 private:
  struct InFlight {
    uint64_t task_id = 0;
    uint64_t sequence = 0;  // Submission order, for Reset().
    uint32_t kind = 0;
    bool active = false;
    Extent input;
    Extent output;
  };

  DaemonChannel(const Segment* segment, uint32_t slot, ArenaAllocator* arena, UniqueFd request_fd,
                UniqueFd completion_fd);
  void AttachRings() noexcept;
  absl::Status CheckCompletion(const Descriptor& d) const;
  void Retire(uint32_t ticket) noexcept;

  const Segment* segment_;
  uint32_t slot_;
  ArenaAllocator* arena_;
  UniqueFd request_event_fd_;
  UniqueFd completion_event_fd_;
  uint32_t capacity_;
  SpscProducer<Descriptor> requests_;
  SpscConsumer<Descriptor> completions_;
  Doorbell request_bell_;
  Doorbell completion_bell_;
  std::vector<InFlight> in_flight_;     // Indexed by ticket.
  std::vector<uint32_t> free_tickets_;  // A stack.
  uint64_t next_sequence_ = 0;
};

template <typename OnCompletion>
absl::StatusOr<size_t> DaemonChannel::DrainCompletions(OnCompletion&& on_completion) {
  size_t count = 0;
  Descriptor d;
  for (;;) {
    switch (completions_.TryPop(&d)) {
      case RingResult::kOk:
        break;
      case RingResult::kEmpty:
      case RingResult::kFull:
        return count;
      case RingResult::kCorrupt:
        return absl::FailedPreconditionError(
            absl::StrCat("worker on slot ", slot_, " corrupted its completion ring"));
    }
    if (absl::Status s = CheckCompletion(d); !s.ok()) return s;
    const InFlight& task = in_flight_[d.ticket];
    on_completion(Completion{task.task_id, task.kind, d.status,
                             segment_->Bytes({task.output.offset, d.output.length})});
    Retire(d.ticket);
    ++count;
  }
}

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_DAEMON_CHANNEL_H_
