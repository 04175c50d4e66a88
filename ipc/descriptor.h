// Descriptor: the fixed-size message that travels through the rings.
//
// A descriptor never carries bytes of its own beyond these fields; variable-size
// input and output live in the segment's payload arena and are referenced by
// Extent (an offset relative to the arena, never a pointer).

#ifndef CRUNCH_IPC_DESCRIPTOR_H_
#define CRUNCH_IPC_DESCRIPTOR_H_

#include <cstdint>
#include <type_traits>

namespace crunch::ipc {

// A byte range in the payload arena: [offset, offset + length).
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Request (daemon -> worker) and completion (worker -> daemon) share one shape.
struct Descriptor {
  uint64_t task_id = 0;
  uint32_t kind = 0;         // What to run; meaning belongs to the daemon, not to ipc.
  uint32_t status = 0;       // Completion: 0 = ok, anything else is a task-defined error code.
  Extent input;              // Request: the input bytes. Completion: echoed back, not trusted.
  Extent output;             // Request: the space lent for output (length = capacity).
                             // Completion: the bytes written (must lie inside what was lent).
  uint64_t deadline_ns = 0;  // CLOCK_MONOTONIC deadline for the worker; 0 = none.
  uint32_t ticket = 0;       // Daemon's in-flight slot for this task; echoed back.
  uint32_t sequence = 0;     // Owned by the ring (SpscRing publishes through it); not a field
                             // for the daemon or the worker.
};

static_assert(sizeof(Descriptor) == 64, "a descriptor is one cache line");
static_assert(std::is_standard_layout_v<Descriptor> && std::is_trivially_copyable_v<Descriptor>,
              "descriptors live in shared memory: plain data only");

}  // namespace crunch::ipc

#endif  // CRUNCH_IPC_DESCRIPTOR_H_
