// Fuzz target: DecodeTaskInput (daemon/task_codec.h), which crunch_worker runs
// on every task's input extent before the kernel sees it.
//
// Feeds: arbitrary bytes as a task's input extent (params header + payload).
//
// A crash, or an ASan report of a read past the buffer, means a length field
// in the header can make the worker read outside the extent the daemon lent
// it. A failed check means a decoded payload is not the tail of the input, or
// re-encoding what was decoded does not decode to the same params and payload.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/task_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace crunch::daemon {
namespace {

void FuzzOne(std::span<const std::byte> input) {
  absl::StatusOr<DecodedTaskInput> decoded = DecodeTaskInput(input);
  if (!decoded.ok()) {
    FUZZ_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument,
               "a bad header must be INVALID_ARGUMENT, got ", decoded.status().ToString());
    return;
  }
  const std::span<const std::byte> payload = decoded->payload;
  FUZZ_CHECK(payload.data() >= input.data() &&
                 payload.data() + payload.size() == input.data() + input.size(),
             "the payload is not the tail of the input");

  const std::string header = EncodeParamsHeader(decoded->params);
  // Equal unless the input named a parameter twice (the first one wins).
  FUZZ_CHECK(header.size() <= input.size() - payload.size(), "re-encoded header is ", header.size(),
             " bytes, the input's was ", input.size() - payload.size());
  std::string again(header);
  again.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  absl::StatusOr<DecodedTaskInput> redecoded =
      DecodeTaskInput(std::as_bytes(std::span<const char>(again.data(), again.size())));
  FUZZ_CHECK(redecoded.ok(), "re-encoded input does not decode: ", redecoded.status().ToString());
  FUZZ_CHECK(redecoded->params.values() == decoded->params.values(),
             "params changed on re-encoding");
  FUZZ_CHECK(redecoded->payload.size() == payload.size() &&
                 std::equal(payload.begin(), payload.end(), redecoded->payload.begin()),
             "payload changed on re-encoding");
}

}  // namespace
}  // namespace crunch::daemon

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crunch::daemon::FuzzOne(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size));
  return 0;
}
