// DecodeTaskRequest, DecodeTaskBatch: a crunch.v1.TaskRequest (or a TaskBatch
// of them) out of the slices gRPC received, measured against the [limits]
// before anything in it is copied or parsed.
//
// protobuf's parser, which gRPC runs for a typed method, allocates as it goes:
// it appends a bytes field to its string slice by slice, growing the string (a
// 64 MiB payload was copied two to three times over, into fresh allocations
// whose pages faulted in one at a time: docs/benchmarks.md, suite 6), and
// builds every params entry before anyone can count them. Here the message is
// scanned first (its top level, and each params entry), so each length is
// known before a byte is copied:
//   - a payload over max_payload_bytes is not copied at all, only measured;
//   - params over max_params, or with a name or value over max_param_bytes,
//     are not parsed, and the request's payload is not copied either;
// what was left out is in DecodedTask::left_out, and Scheduler::Submit
// refuses the task naming the limit (daemon/request_limits.h). A message
// with nothing over a limit and at most 64 KiB long then goes to protobuf's
// parser whole (from its one slice, without a copy, when it arrived in one);
// a longer one has its payload's string allocated at its size once (from
// kLargePayloadBytes in transparent huge pages, faulted in by one madvise),
// the slices copied in, and the other fields handed to protobuf.
//
// Either way protobuf parses everything but a long payload, so string fields
// are UTF-8 checked, the params map follows protobuf's rules (a repeated key:
// the last wins; the count above is of entries as sent) and unknown fields are
// kept (an unknown group too: the scan skips it whole). A message the scan
// cannot take apart (a varint that does not end, a length past the end of the
// message, a field number of 0, an end-group tag that matches no start) is
// one protobuf refuses too: it is handed whole to protobuf's parser, whose
// verdict stands, so malformed input fails exactly as it did when gRPC parsed
// it. As protobuf does for a bytes field,
// the last payload wins (an earlier one is never copied).
//
// Every length is bounded by the bytes actually received (itself bounded by
// gRPC's receive limit, rpc/grpc_frontend.cc): a length that claims more than
// the message holds allocates nothing.
//
// Thread safety: plain functions; safe on any thread.

#ifndef CRUNCH_RPC_INTERNAL_TASK_REQUEST_DECODER_H_
#define CRUNCH_RPC_INTERNAL_TASK_REQUEST_DECODER_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "crunch/v1/crunch.pb.h"
#include "daemon/request_limits.h"
#include "daemon/task.h"

namespace crunch::rpc::internal {

// How a message was decoded: scanned and measured first, or (what the scan
// cannot take apart, which protobuf refuses too) handed whole to protobuf's
// parser.
enum class DecodePath { kScanned, kWholeToProtobuf };

// One request, and what was left out of it for being over a limit.
struct DecodedTask {
  crunch::v1::TaskRequest request;
  daemon::TaskRequest::LeftOut left_out;
};

// Replaces *out with the TaskRequest in `buffer`, measured against `limits`.
// Returns false if the bytes are not a valid TaskRequest (protobuf's parser
// would refuse them). `buffer` is left as it was. If `path` is not null, says
// how (tests check that a well-formed message never takes the unmeasured way).
bool DecodeTaskRequest(const grpc::ByteBuffer& buffer, const daemon::RequestLimits& limits,
                       DecodedTask* out, DecodePath* path = nullptr);

// Replaces *out with the tasks of the crunch.v1.TaskBatch in `buffer`, each
// decoded as DecodeTaskRequest decodes a request. Returns false if the bytes
// are not a valid TaskBatch. A batch the scan does not expect at its top level
// goes whole to protobuf's parser (its tasks then arrive unmeasured); `path`
// says kScanned only if the batch and every task were scanned.
bool DecodeTaskBatch(const grpc::ByteBuffer& buffer, const daemon::RequestLimits& limits,
                     std::vector<DecodedTask>* out, DecodePath* path = nullptr);

// A payload string from this size on is asked for in transparent huge pages
// (MADV_HUGEPAGE) and faulted in by one madvise(MADV_POPULATE_WRITE) before
// the copy. That size is the mmap threshold crunchd sets (crunchd_main.cc),
// so such a string is its own fresh mapping, unmapped when freed: the advice
// never outlives it and never touches the heap that smaller strings share.
// A smaller one comes from the heap, whose freed memory crunchd keeps, so its
// pages are usually in already (pre-faulting them anyway cost 35 us per 1 MiB
// in bench/decoder_bench.cc).
inline constexpr size_t kLargePayloadBytes = 32 << 20;

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_TASK_REQUEST_DECODER_H_
