#include "daemon/request_limits.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace crunch::daemon {

absl::Status PayloadTooLargeError(uint64_t bytes, uint64_t limit) {
  return absl::ResourceExhaustedError(absl::StrCat("payload is ", bytes, " bytes; the limit is ",
                                                   limit, " ([limits] max_payload_bytes)"));
}

absl::Status TooManyParamsError(uint64_t count, uint64_t limit) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the request has ", count, " params; the limit is ", limit, " ([limits] max_params)"));
}

absl::Status ParamTooLongError(std::string_view name_start, uint64_t name_bytes,
                               uint64_t value_bytes, uint64_t limit) {
  const bool name_too_long = name_bytes > limit;
  const std::string shown = absl::CHexEscape(
      name_bytes > kShownNameBytes ? std::string(name_start.substr(0, kShownNameBytes)) + "..."
                                   : std::string(name_start.substr(0, name_bytes)));
  return absl::ResourceExhaustedError(
      absl::StrCat("param '", shown, "' has a ", name_too_long ? "name" : "value", " of ",
                   name_too_long ? name_bytes : value_bytes, " bytes; the limit is ", limit,
                   " ([limits] max_param_bytes)"));
}

}  // namespace crunch::daemon
