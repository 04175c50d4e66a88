// Fuzz target: parameter validation (ValidateParams in daemon/kind.h) against
// every built-in kind's spec, CPU and I/O.
//
// Feeds: text whose first line picks the kind (its name, or any other line,
// which picks one by its bytes) and whose other lines are "name=value" pairs,
// the map a client sends; the last pair with a name wins.
//
// A crash means one request's params can bring the daemon down (ValidateParams
// runs on the daemon's front-end for every request). A failed check means the
// validator let through what a kernel must never see (an undeclared name, a
// missing required param, an integer outside its range or not canonical), or
// refused a valid map, or its result does not survive the trip to a worker
// (daemon/task_codec.h).

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "daemon/kind.h"
#include "daemon/kinds/cpu_kinds.h"
#include "daemon/kinds/io_kinds.h"
#include "daemon/task_codec.h"
#include "tests/fuzz/fuzz_check.h"

namespace crunch::daemon {
namespace {

const std::vector<KindSpec>& AllKinds() {
  static const std::vector<KindSpec>* const kinds = [] {
    auto* all = new std::vector<KindSpec>(CpuKinds());
    for (KindSpec& kind : IoKinds(IoSettings{})) all->push_back(std::move(kind));
    return all;
  }();
  return *kinds;
}

const KindSpec& PickKind(absl::string_view line) {
  const std::vector<KindSpec>& kinds = AllKinds();
  for (const KindSpec& kind : kinds) {
    if (kind.name == line) return kind;
  }
  size_t sum = 0;
  for (char c : line) sum += static_cast<unsigned char>(c);
  return kinds[sum % kinds.size()];
}

const ParamSpec* FindParam(const KindSpec& spec, absl::string_view name) {
  for (const ParamSpec& p : spec.params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

// What ValidateParams must decide, worked out from the spec directly.
bool ShouldAccept(const KindSpec& spec, const std::map<std::string, std::string>& given) {
  for (const auto& [name, value] : given) {
    const ParamSpec* p = FindParam(spec, name);
    if (p == nullptr) return false;
    int64_t v = 0;
    if (p->type == ParamSpec::Type::kInt &&
        (!absl::SimpleAtoi(value, &v) || v < p->min || v > p->max)) {
      return false;
    }
  }
  for (const ParamSpec& p : spec.params) {
    if (p.required && given.find(p.name) == given.end()) return false;
  }
  return true;
}

void CheckAccepted(const KindSpec& spec, const std::map<std::string, std::string>& given,
                   const TaskParams& params) {
  for (const auto& [name, value] : params.values()) {
    FUZZ_CHECK(FindParam(spec, name) != nullptr, spec.name, ": undeclared param '", name,
               "' got through");
  }
  for (const ParamSpec& p : spec.params) {
    const auto it = given.find(p.name);
    if (it == given.end()) {
      const bool defaulted = !p.default_value.empty() || p.type == ParamSpec::Type::kString;
      FUZZ_CHECK(params.Has(p.name) == defaulted, spec.name, ": param '", p.name,
                 "' left out, but Has() is ", params.Has(p.name));
      if (defaulted) {
        FUZZ_CHECK(params.String(p.name) == p.default_value, spec.name, ": param '", p.name,
                   "' defaulted to '", params.String(p.name), "', not '", p.default_value, "'");
      }
    } else if (p.type == ParamSpec::Type::kString) {
      FUZZ_CHECK(params.String(p.name) == it->second, spec.name, ": string param '", p.name,
                 "' changed from '", it->second, "' to '", params.String(p.name), "'");
    } else {
      int64_t v = 0;
      FUZZ_CHECK(absl::SimpleAtoi(it->second, &v), "accepted non-integer '", it->second, "'");
      FUZZ_CHECK(params.Int(p.name) == v && v >= p.min && v <= p.max, spec.name, ": param '",
                 p.name, "' = '", it->second, "' became ", params.Int(p.name), ", range ", p.min,
                 "..", p.max);
      FUZZ_CHECK(params.String(p.name) == absl::StrCat(v), spec.name, ": param '", p.name,
                 "' is not canonical: '", params.String(p.name), "'");
    }
  }

  // Validating the result again changes nothing.
  const std::map<std::string, std::string> again_given(params.values().begin(),
                                                       params.values().end());
  absl::StatusOr<TaskParams> again = ValidateParams(spec, again_given);
  FUZZ_CHECK(again.ok(), spec.name,
             ": validated params fail validation: ", again.status().ToString());
  FUZZ_CHECK(again->values() == params.values(), spec.name, ": validation is not idempotent");

  // The params reach a worker intact, in front of the payload (see the scheduler).
  constexpr absl::string_view kPayload = "payload";
  const std::string input = absl::StrCat(EncodeParamsHeader(params), kPayload);
  absl::StatusOr<DecodedTaskInput> decoded =
      DecodeTaskInput(std::as_bytes(std::span<const char>(input.data(), input.size())));
  FUZZ_CHECK(decoded.ok(), spec.name,
             ": encoded params do not decode: ", decoded.status().ToString());
  FUZZ_CHECK(decoded->params.values() == params.values(), spec.name,
             ": params changed on the way to the worker");
  FUZZ_CHECK(absl::string_view(reinterpret_cast<const char*>(decoded->payload.data()),
                               decoded->payload.size()) == kPayload,
             spec.name, ": the payload changed on the way to the worker");
}

void FuzzOne(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  const KindSpec& spec = PickKind(lines.front());
  std::map<std::string, std::string> given;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<std::string, std::string> pair = absl::StrSplit(lines[i], absl::MaxSplits('=', 1));
    given.insert_or_assign(std::move(pair.first), std::move(pair.second));
  }

  absl::StatusOr<TaskParams> params = ValidateParams(spec, given);
  FUZZ_CHECK(params.ok() == ShouldAccept(spec, given), spec.name, ": ValidateParams says ",
             params.status().ToString(), ", the spec says ",
             ShouldAccept(spec, given) ? "accept" : "refuse");
  if (params.ok()) {
    CheckAccepted(spec, given, *params);
  } else {
    FUZZ_CHECK(params.status().code() == absl::StatusCode::kInvalidArgument,
               "bad params must be INVALID_ARGUMENT, got ", params.status().ToString());
  }
}

}  // namespace
}  // namespace crunch::daemon

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  crunch::daemon::FuzzOne(absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
