#include "ipc/worker_handoff.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace crunch::ipc {
namespace {

constexpr absl::string_view kVersionTag = "v1";
constexpr absl::string_view kForm =
    "expected \"v1 segment=FD request=FD completion=FD slot=N parent=PID\"";

}  // namespace

std::string WorkerHandoff::Encode() const {
  return absl::StrCat(kVersionTag, " segment=", segment_fd, " request=", request_event_fd,
                      " completion=", completion_event_fd, " slot=", slot, " parent=", parent_pid);
}

absl::StatusOr<WorkerHandoff> WorkerHandoff::Parse(absl::string_view text) {
  std::vector<absl::string_view> words = absl::StrSplit(text, ' ', absl::SkipEmpty());
  if (words.empty() || words[0] != kVersionTag) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker handoff \"", text, "\" has no version tag: ", kForm));
  }
  WorkerHandoff h;
  int slot = 0;
  int parent = 0;
  struct Field {
    absl::string_view name;
    int* value;
    bool seen = false;
  } fields[] = {{"segment", &h.segment_fd},
                {"request", &h.request_event_fd},
                {"completion", &h.completion_event_fd},
                {"slot", &slot},
                {"parent", &parent}};
  for (size_t i = 1; i < words.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(words[i], '=');
    auto field = std::find_if(std::begin(fields), std::end(fields),
                              [&](const Field& f) { return f.name == kv.first; });
    if (field == std::end(fields)) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker handoff has unknown field \"", kv.first, "\": ", kForm));
    }
    int64_t value;
    if (!absl::SimpleAtoi(kv.second, &value) || value < 0 || value > INT32_MAX) {
      return absl::InvalidArgumentError(absl::StrCat("worker handoff field \"", words[i],
                                                     "\" needs a non-negative integer: ", kForm));
    }
    *field->value = static_cast<int>(value);
    field->seen = true;
  }
  for (const Field& f : fields) {
    if (!f.seen) {
      return absl::InvalidArgumentError(
          absl::StrCat("worker handoff lacks field \"", f.name, "\": ", kForm));
    }
  }
  h.slot = static_cast<uint32_t>(slot);
  h.parent_pid = parent;
  return h;
}

absl::StatusOr<WorkerHandoff> WorkerHandoff::FromEnvironment() {
  const char* text = std::getenv(kHandoffEnvironmentVariable);
  if (text == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("$", kHandoffEnvironmentVariable,
                     " is not set: a worker is started by crunchd, not by hand"));
  }
  return Parse(text);
}

}  // namespace crunch::ipc
