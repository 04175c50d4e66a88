// Fuzz target: the daemon's checks on what a worker writes back
// (DaemonChannel::DrainCompletions, ipc/daemon_channel.h), followed by the
// crash-recovery path (Reset).
//
// Feeds: a small script, read byte by byte (zeros once it runs out):
//   [0]           how many tasks to Submit() (1..8, on a ring of 8)
//   2 bytes each  the task's input length (x16) and output capacity (x256)
//   1 byte        < 0xF0: how many completions the "worker" publishes;
//                 else it fills every slot and each gets a raw 32-bit sequence
//                 word from the script (a corrupt ring)
//   per completion: which submitted request to start from, a bit mask of
//                 fields to forge (task id, ticket, output offset and length,
//                 status, input extent), then the forged values
// The completions are written straight into the segment's completion ring, as
// a buggy worker could, bypassing WorkerChannel::Complete's own clamping.
//
// A crash (or a SEGV outside the mapping) means a worker can make the daemon
// read memory it did not lend. A failed check means a forged completion was
// accepted for the wrong task, or with an output span outside the extent lent
// to that task, or that Reset() after a bad completion loses a task or leaks
// arena space.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ipc/arena_allocator.h"
#include "ipc/daemon_channel.h"
#include "ipc/segment.h"
#include "tests/fuzz/fuzz_check.h"

namespace crunch::ipc {
namespace {

constexpr uint32_t kRingCapacity = 8;
constexpr uint64_t kFirstTaskId = 1000;

// Reads the script; past its end every value is zero.
class Script {
 public:
  explicit Script(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  uint8_t Byte() { return pos_ < bytes_.size() ? bytes_[pos_++] : 0; }
  uint64_t Le(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{Byte()} << (8 * i);
    return v;
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

struct Submitted {
  uint64_t task_id;
  uint32_t kind;
  Descriptor request;  // As the daemon published it: the extents it lent.
  bool completed = false;
};

Descriptor Forge(Script& script, const std::vector<Submitted>& tasks) {
  Descriptor d = tasks[script.Byte() % tasks.size()].request;
  const uint8_t forge = script.Byte();
  if (forge & 0x01) d.task_id ^= script.Le(8);
  if (forge & 0x02) d.ticket = static_cast<uint32_t>(script.Le(4));
  if (forge & 0x04) d.output.offset += static_cast<uint64_t>(static_cast<int16_t>(script.Le(2)));
  if (forge & 0x08) d.output.offset = script.Le(8);
  if (forge & 0x10) d.output.length -= std::min<uint64_t>(d.output.length, script.Byte());
  if (forge & 0x20) d.output.length = script.Le(8);
  if (forge & 0x40) d.status = static_cast<uint32_t>(script.Le(4));
  if (forge & 0x80) d.input = Extent{script.Le(8), script.Le(8)};
  return d;
}

void FuzzOne(std::span<const uint8_t> bytes) {
  Script script(bytes);
  absl::StatusOr<Segment> segment =
      Segment::Create({.worker_slots = 1, .ring_capacity = kRingCapacity, .arena_bytes = 64 << 10});
  FUZZ_CHECK(segment.ok(), segment.status().ToString());
  ArenaAllocator arena(segment->layout().arena_bytes);
  absl::StatusOr<DaemonChannel> channel = DaemonChannel::Create(&*segment, 0, &arena);
  FUZZ_CHECK(channel.ok(), channel.status().ToString());

  // The daemon's side: a few tasks in flight, their extents recorded.
  std::vector<Submitted> tasks;
  const int submits = 1 + script.Byte() % kRingCapacity;
  const std::vector<std::byte> input(16 * 255, std::byte{0x5a});
  for (int i = 0; i < submits; ++i) {
    const size_t input_bytes = 16 * size_t{script.Byte()};
    const uint64_t capacity = 256 * uint64_t{script.Byte()};
    const uint64_t id = kFirstTaskId + i;
    const SubmitResult r =
        channel->Submit(id, static_cast<uint32_t>(i), std::span(input).first(input_bytes), capacity,
                        /*deadline_ns=*/0, /*ring=*/false);
    if (r == SubmitResult::kArenaFull) continue;
    FUZZ_CHECK(r == SubmitResult::kOk, "Submit returned ", static_cast<int>(r));
    // The ring was empty, so the n-th accepted request sits in slot n.
    const Descriptor request = segment->request_slots(0)[tasks.size()];
    tasks.push_back(Submitted{id, static_cast<uint32_t>(i), request, false});
  }
  if (tasks.empty()) return;

  // The worker's side, forged in the segment.
  Descriptor* slots = segment->completion_slots(0);
  const uint8_t count = script.Byte();
  const bool raw = count >= 0xF0;
  const uint64_t published = raw ? kRingCapacity : count % (kRingCapacity + 1);
  for (uint64_t i = 0; i < published; ++i) {
    Descriptor d = Forge(script, tasks);
    // The ring publishes item i by writing sequence i + 1 into its slot.
    d.sequence = raw ? static_cast<uint32_t>(script.Le(4)) : static_cast<uint32_t>(i + 1);
    slots[i] = d;
  }

  size_t delivered = 0;
  absl::StatusOr<size_t> drained = channel->DrainCompletions([&](const Completion& c) {
    Submitted* task = nullptr;
    for (Submitted& t : tasks) {
      if (t.task_id == c.task_id && !t.completed) task = &t;
    }
    FUZZ_CHECK(task != nullptr, "completion delivered for task ", c.task_id,
               ", which is not in flight");
    FUZZ_CHECK(c.kind == task->kind, "task ", c.task_id, " completed as kind ", c.kind);
    const std::span<const std::byte> lent = segment->Bytes(task->request.output);
    FUZZ_CHECK(c.output.data() >= lent.data() &&
                   c.output.data() + c.output.size() <= lent.data() + lent.size(),
               "task ", c.task_id, ": output of ", c.output.size(), " bytes at arena offset ",
               c.output.data() - segment->Bytes({0, 0}).data(), " is outside the ", lent.size(),
               " bytes lent at ", task->request.output.offset);
    uint8_t sum = 0;  // Reads every byte handed over, as the scheduler copies them.
    for (std::byte b : c.output) sum += static_cast<uint8_t>(b);
    volatile uint8_t sink = sum;
    (void)sink;
    task->completed = true;
    ++delivered;
  });
  if (drained.ok()) {
    FUZZ_CHECK(*drained == delivered, "DrainCompletions counted ", *drained, ", delivered ",
               delivered);
  } else {
    FUZZ_CHECK(drained.status().code() == absl::StatusCode::kFailedPrecondition,
               drained.status().ToString());
  }
  FUZZ_CHECK(channel->in_flight() == tasks.size() - delivered, "in_flight() is ",
             channel->in_flight(), " after ", delivered, " of ", tasks.size(), " completed");

  // What the daemon does once the worker is dead: every task not completed
  // comes back, in submission order, and the arena is empty again.
  const std::vector<uint64_t> held = channel->Reset();
  std::vector<uint64_t> expected;
  for (const Submitted& t : tasks) {
    if (!t.completed) expected.push_back(t.task_id);
  }
  FUZZ_CHECK(held == expected, "Reset() returned ", held.size(), " tasks, expected ",
             expected.size());
  FUZZ_CHECK(arena.bytes_in_use() == 0, "Reset() left ", arena.bytes_in_use(),
             " arena bytes in use");
  FUZZ_CHECK(channel->in_flight() == 0, "Reset() left ", channel->in_flight(), " in flight");

  // The slot works again for the next worker.
  FUZZ_CHECK(channel->Submit(1, 0, {}, 64, 0, false) == SubmitResult::kOk, "Submit after Reset");
  absl::StatusOr<size_t> none = channel->DrainCompletions(
      [](const Completion&) { FUZZ_CHECK(false, "a completion survived Reset()"); });
  FUZZ_CHECK(none.ok() && *none == 0, "drain after Reset: ", none.status().ToString());
}

}  // namespace
}  // namespace crunch::ipc

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crunch::ipc::FuzzOne(std::span<const uint8_t>(data, size));
  return 0;
}
