// DecodeTaskRequest, DecodeTaskBatch: a crunch.v1.TaskRequest (or a TaskBatch
// of them) out of the slices gRPC received, each payload copied once.
//
// protobuf's parser, which gRPC runs for a typed method, appends a bytes field
// to its string slice by slice, growing the string as it goes: a 64 MiB
// payload was copied two to three times over, into fresh allocations whose
// pages faulted in one 4 KiB page at a time (docs/benchmarks.md, suite 6).
// Here the top level of the message is scanned first, so the payload's length
// is known before a byte of it is copied: its string is allocated at that size
// (a large one in huge pages, faulted in by one madvise) and the slices are
// copied in.
//
// Everything but the payload is still parsed by protobuf (the scan hands it
// the other fields' bytes, in order), so string fields are UTF-8 checked, the
// params map follows protobuf's rules and unknown fields are kept. A message
// the scan does not expect (a group, a varint that does not end, a length past
// the end of the message, a field number of 0) is handed whole to protobuf's
// parser, whose verdict stands: malformed input fails exactly as it did when
// gRPC parsed it. As protobuf does for a bytes field, the last payload wins.
//
// The payload's size is bounded by the bytes actually received (itself bounded
// by gRPC's receive limit, rpc/grpc_frontend.cc): a length that claims more
// than the message holds allocates nothing. A payload over the caller's limit
// ([limits] max_payload_bytes) is not copied at all: the decoder reports its
// size instead, and Scheduler::Submit refuses the task naming the limit.
//
// Thread safety: a plain function; safe on any thread.

#ifndef CRUNCH_RPC_INTERNAL_TASK_REQUEST_DECODER_H_
#define CRUNCH_RPC_INTERNAL_TASK_REQUEST_DECODER_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crunch/v1/crunch.pb.h"

namespace crunch::rpc::internal {

// How a message was decoded: by the scan (the payload copied once), or handed
// whole to protobuf's parser.
enum class DecodePath { kScanned, kWholeToProtobuf };

// Replaces *out with the TaskRequest in `buffer`. Returns false if the bytes
// are not a valid TaskRequest (protobuf's parser would refuse them). `buffer`
// is left as it was. If `path` is not null, says how (tests check that a
// well-formed message never takes the slow way).
//
// A payload longer than `max_payload_bytes` is left out of *out (its payload
// is empty) and its length stored in *oversized_payload_bytes, which is 0
// otherwise. (Only the scan knows the length first; a message handed to
// protobuf's parser gets its payload whatever its size.)
bool DecodeTaskRequest(const grpc::ByteBuffer& buffer, uint64_t max_payload_bytes,
                       crunch::v1::TaskRequest* out, uint64_t* oversized_payload_bytes,
                       DecodePath* path = nullptr);

// One task of a TaskBatch, as DecodeTaskRequest decodes it.
struct DecodedTask {
  crunch::v1::TaskRequest request;
  uint64_t oversized_payload_bytes = 0;  // As DecodeTaskRequest's; 0: none left out.
};

// Replaces *out with the tasks of the crunch.v1.TaskBatch in `buffer`, each
// decoded as DecodeTaskRequest decodes a request (its payload copied once, or
// left out and measured if over `max_payload_bytes`). Returns false if the
// bytes are not a valid TaskBatch. A batch the scan does not expect at its
// top level goes whole to protobuf's parser (payloads then arrive whatever
// their size); `path` says kScanned only if the batch and every task were
// scanned.
bool DecodeTaskBatch(const grpc::ByteBuffer& buffer, uint64_t max_payload_bytes,
                     std::vector<DecodedTask>* out, DecodePath* path = nullptr);

// A payload string from kPrefaultMinBytes on has its pages faulted in by one
// madvise(MADV_POPULATE_WRITE) before the copy; from kHugePagesMinBytes on it
// also asks for transparent huge pages (MADV_HUGEPAGE). That size is glibc's
// largest mmap threshold (32 MiB, unless mallopt raises it), so such a string
// is its own mapping, unmapped when freed: the advice never outlives it and
// never touches the heap that smaller strings share.
inline constexpr size_t kPrefaultMinBytes = 1 << 20;
inline constexpr size_t kHugePagesMinBytes = 32 << 20;

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_TASK_REQUEST_DECODER_H_
