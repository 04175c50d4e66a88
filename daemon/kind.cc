#include "daemon/kind.h"

#include <cstdlib>
#include <cstring>

#include "absl/numeric/int128.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace crunch::daemon {

const char* PoolName(Pool pool) { return pool == Pool::kCpu ? "cpu" : "io"; }

int64_t TaskParams::Int(std::string_view name) const {
  auto it = values_.find(name);
  int64_t v = 0;
  if (it != values_.end()) (void)absl::SimpleAtoi(it->second, &v);
  return v;
}

const std::string& TaskParams::String(std::string_view name) const {
  static const std::string kEmpty;
  auto it = values_.find(name);
  return it == values_.end() ? kEmpty : it->second;
}

absl::Status SpanOutput::Append(std::span<const std::byte> bytes) {
  if (bytes.size() > remaining()) {
    return absl::ResourceExhaustedError(absl::StrCat("output exceeds the ", storage_.size(),
                                                     " bytes allowed (limits.max_output_bytes)"));
  }
  std::memcpy(storage_.data() + size_, bytes.data(), bytes.size());
  size_ += bytes.size();
  return absl::OkStatus();
}

absl::Status StringOutput::Append(std::span<const std::byte> bytes) {
  if (bytes.size() > remaining()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("output exceeds the ", limit_, " bytes allowed (limits.max_output_bytes)"));
  }
  data_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return absl::OkStatus();
}

uint64_t OutputCapacity(const KindSpec& spec, uint64_t input_size, const KernelLimits& limits) {
  const OutputBound& b = spec.output_bound;
  if (!b.bounded) return limits.max_output_bytes;
  // 128 bits: input_size * per_input_kib may not fit 64.
  const absl::uint128 bound =
      absl::uint128(b.fixed_bytes) + absl::uint128(input_size) * b.per_input_kib / 1024;
  return bound < limits.max_output_bytes ? absl::Uint128Low64(bound) : limits.max_output_bytes;
}

namespace {

std::string DescribeAllowed(const KindSpec& spec) {
  if (spec.params.empty()) return absl::StrCat("kind '", spec.name, "' takes no parameters");
  return absl::StrCat("kind '", spec.name, "' takes: ",
                      absl::StrJoin(spec.params, ", ", [](std::string* out, const ParamSpec& p) {
                        absl::StrAppend(out, p.name);
                      }));
}

}  // namespace

absl::StatusOr<TaskParams> ValidateParams(const KindSpec& spec,
                                          const std::map<std::string, std::string>& given) {
  for (const auto& [name, value] : given) {
    bool known = false;
    for (const ParamSpec& p : spec.params) known = known || p.name == name;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown param '", name, "'; ", DescribeAllowed(spec)));
    }
  }
  std::map<std::string, std::string, std::less<>> values;
  for (const ParamSpec& p : spec.params) {
    auto it = given.find(p.name);
    if (it == given.end()) {
      if (p.required) {
        return absl::InvalidArgumentError(absl::StrCat("param '", p.name, "' is required by kind '",
                                                       spec.name, "' (", p.description, ")"));
      }
      // An empty default is no default: the parameter stays absent (TaskParams
      // reads it as "", and a plugin sees present = 0).
      if (!p.default_value.empty()) values.emplace(p.name, p.default_value);
      continue;
    }
    if (p.type == ParamSpec::Type::kInt) {
      int64_t v = 0;
      if (!absl::SimpleAtoi(it->second, &v) || v < p.min || v > p.max) {
        return absl::InvalidArgumentError(absl::StrCat("param '", p.name,
                                                       "' must be an integer in ", p.min, "..",
                                                       p.max, ", got '", it->second, "'"));
      }
      values.emplace(p.name, absl::StrCat(v));
    } else {
      values.emplace(p.name, it->second);
    }
  }
  return TaskParams(std::move(values));
}

}  // namespace crunch::daemon
