// Fuzz target: DecodeTaskRequest and DecodeTaskBatch
// (rpc/internal/task_request_decoder.h), which the gRPC front-end runs on the
// bytes of every Run, Submit, RunStream and RunBatches message before anything
// else looks at them.
//
// Feeds: a header of 4 bytes (how to cut the message into slices, the limits
// to measure it against, request or batch), then the message's bytes.
//
// A crash or an ASan report means the scan reads outside the received slices
// or a length makes it allocate from what the sender claims. A failed check
// means the decoder and protobuf's own parser disagree: on whether the bytes
// are a valid message, on any field of one (what was left out aside), or on
// what was left out for being over a limit. One difference is by design:
// params over a limit are refused unparsed, so a request whose params are
// also malformed (a name not UTF-8, say) is refused for their size where
// protobuf's parser would have refused the whole message.

#include <grpc/grpc.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "crunch/v1/crunch.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "rpc/internal/task_request_decoder.h"
#include "tests/fuzz/fuzz_check.h"

namespace crunch::rpc::internal {
namespace {

// The message in slices of `slice_size` bytes (gRPC's receive slices vary).
grpc::ByteBuffer Sliced(const std::string& bytes, size_t slice_size) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += slice_size) {
    slices.emplace_back(bytes.data() + at, std::min(slice_size, bytes.size() - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// Checks one decoded request against protobuf's parse of the same bytes.
void CheckRequest(const DecodedTask& got, const crunch::v1::TaskRequest& want,
                  const daemon::RequestLimits& limits) {
  const auto& left_out = got.left_out;
  crunch::v1::TaskRequest compared = want;
  if (!left_out.params.ok()) {
    FUZZ_CHECK(left_out.params.code() == absl::StatusCode::kResourceExhausted,
               "params refused with ", left_out.params.ToString());
    FUZZ_CHECK(got.request.params().empty() && got.request.payload().empty(),
               "a refused request kept its params or payload");
    // The count is of entries as sent, which protobuf's map may fold.
    FUZZ_CHECK(left_out.params.message().find("max_param") != std::string::npos,
               "the refusal does not name the limit: ", left_out.params.message());
    compared.clear_params();
    compared.clear_payload();
  } else {
    FUZZ_CHECK(static_cast<uint64_t>(want.params_size()) <= limits.max_params, "protobuf found ",
               want.params_size(), " params, limit ", limits.max_params);
    for (const auto& [key, value] : want.params()) {
      FUZZ_CHECK(key.size() <= limits.max_param_bytes && value.size() <= limits.max_param_bytes,
                 "a param over ", limits.max_param_bytes, " bytes went through");
    }
  }
  if (left_out.payload_bytes != 0) {
    FUZZ_CHECK(left_out.payload_bytes == want.payload().size() &&
                   left_out.payload_bytes > limits.max_payload_bytes &&
                   left_out.payload_limit == limits.max_payload_bytes,
               "left out a payload of ", left_out.payload_bytes, " against ",
               want.payload().size());
    FUZZ_CHECK(got.request.payload().empty(), "a left-out payload was copied");
    compared.clear_payload();
  } else if (left_out.params.ok()) {
    FUZZ_CHECK(want.payload().size() <= limits.max_payload_bytes,
               "a payload over the limit went through");
  }
  // (Compared field by field: a map serializes in no fixed order.)
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(got.request, compared),
             "decoded: ", got.request.ShortDebugString().substr(0, 300),
             "\nprotobuf: ", compared.ShortDebugString().substr(0, 300));
}

void FuzzOne(const uint8_t* data, size_t size) {
  if (size < 4) return;
  const size_t slice_size = 1 + data[0] % 64;
  // Small limits, so that the fuzzer's short inputs reach them.
  const daemon::RequestLimits limits{.max_payload_bytes = data[1] % 32u,
                                     .max_params = data[2] % 8u,
                                     .max_param_bytes = data[3] % 16u + 1};
  const bool batch = (data[1] & 0x80) != 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 4, size - 4);
  const grpc::ByteBuffer buffer = Sliced(bytes, slice_size);
  if (!batch) {
    crunch::v1::TaskRequest want;
    const bool want_ok = want.ParseFromString(bytes);
    DecodedTask got;
    DecodePath path = DecodePath::kWholeToProtobuf;
    const bool ok = DecodeTaskRequest(buffer, limits, &got, &path);
    // Whatever protobuf accepts, the scan measures first.
    FUZZ_CHECK(!ok || path == DecodePath::kScanned, "a valid request was not scanned");
    if (ok && !want_ok) {
      FUZZ_CHECK(!got.left_out.params.ok(), "the decoder accepts what protobuf refuses");
      return;
    }
    FUZZ_CHECK(ok == want_ok, "decoder says ", ok, ", protobuf ", want_ok);
    if (ok) CheckRequest(got, want, limits);
    return;
  }
  crunch::v1::TaskBatch want;
  const bool want_ok = want.ParseFromString(bytes);
  std::vector<DecodedTask> got;
  DecodePath path = DecodePath::kWholeToProtobuf;
  const bool ok = DecodeTaskBatch(buffer, limits, &got, &path);
  FUZZ_CHECK(!ok || path == DecodePath::kScanned, "a valid batch was not scanned");
  if (ok && !want_ok) {
    FUZZ_CHECK(std::any_of(got.begin(), got.end(),
                           [](const DecodedTask& t) { return !t.left_out.params.ok(); }),
               "batch: the decoder accepts what protobuf refuses");
    return;
  }
  FUZZ_CHECK(ok == want_ok, "batch: decoder says ", ok, ", protobuf ", want_ok);
  if (!ok) return;
  FUZZ_CHECK(got.size() == static_cast<size_t>(want.tasks_size()), "batch: ", got.size(),
             " tasks decoded, protobuf ", want.tasks_size());
  for (size_t i = 0; i < got.size(); ++i) {
    CheckRequest(got[i], want.tasks(static_cast<int>(i)), limits);
  }
}

}  // namespace
}  // namespace crunch::rpc::internal

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  grpc_init();  // grpc::Slice and ByteBuffer need the library up.
  // protobuf logs every string that is not UTF-8; the verdict is what counts.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crunch::rpc::internal::FuzzOne(data, size);
  return 0;
}
