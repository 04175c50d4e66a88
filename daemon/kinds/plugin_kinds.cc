#include "daemon/kinds/plugin_kinds.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace crunch::daemon {
namespace {

// The longest failure message a kernel may set (longer ones are cut).
constexpr size_t kMaxMessageBytes = 4096;
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxParams = 64;

// What the host callbacks reach through crunch_task::host.
struct HostTask {
  Output* output;
  const TaskContext* context;
  std::string message;
  absl::Status write_error;  // The first failed write, if any.
};

HostTask& HostOf(const crunch_task* task) { return *static_cast<HostTask*>(task->host); }

int HostWrite(crunch_task* task, const void* bytes, size_t size) {
  HostTask& host = HostOf(task);
  if (size == 0) return CRUNCH_OK;
  if (bytes == nullptr) {
    host.message = "crunch_task_write was given NULL bytes";
    return CRUNCH_INVALID_ARGUMENT;
  }
  absl::Status s =
      host.output->Append(std::span<const std::byte>(static_cast<const std::byte*>(bytes), size));
  if (s.ok()) return CRUNCH_OK;
  host.message = std::string(s.message());
  if (host.write_error.ok()) host.write_error = std::move(s);
  return static_cast<int>(host.write_error.code());
}

uint64_t HostOutputRemaining(const crunch_task* task) { return HostOf(task).output->remaining(); }

int HostShouldStop(const crunch_task* task) {
  const TaskContext& context = *HostOf(task).context;
  if (context.Cancelled()) return CRUNCH_CANCELLED;
  return std::chrono::steady_clock::now() >= context.deadline ? CRUNCH_DEADLINE_EXCEEDED
                                                              : CRUNCH_OK;
}

void HostSetMessage(crunch_task* task, const char* message, size_t size) {
  HostTask& host = HostOf(task);
  if (message == nullptr) {
    host.message.clear();
    return;
  }
  host.message.assign(message, std::min(size, kMaxMessageBytes));
}

uint64_t DeadlineNs(const TaskContext& context) {
  if (context.deadline == std::chrono::steady_clock::time_point::max()) return 0;
  // steady_clock is CLOCK_MONOTONIC on Linux, the clock the header promises.
  const int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(context.deadline.time_since_epoch())
          .count();
  return ns > 0 ? static_cast<uint64_t>(ns) : 1;
}

absl::Status RunKernel(const crunch_kind& kind, std::span<const std::byte> input,
                       const TaskParams& params, const TaskContext& context, Output& output) {
  std::vector<crunch_param> values(kind.param_count);
  for (size_t i = 0; i < kind.param_count; ++i) {
    const crunch_param_spec& spec = kind.params[i];
    crunch_param& value = values[i];
    value.name = spec.name;
    value.present = params.Has(spec.name) ? 1 : 0;
    const std::string& text = params.String(spec.name);
    value.value = text.c_str();
    value.value_size = text.size();
    value.int_value = spec.type == CRUNCH_PARAM_INT && value.present ? params.Int(spec.name) : 0;
  }
  HostTask host{.output = &output, .context = &context, .message = {}, .write_error = {}};
  crunch_task task{
      .input = reinterpret_cast<const uint8_t*>(input.data()),
      .input_size = input.size(),
      .params = values.data(),
      .param_count = values.size(),
      .deadline_ns = DeadlineNs(context),
      .write = HostWrite,
      .output_remaining = HostOutputRemaining,
      .should_stop = HostShouldStop,
      .set_message = HostSetMessage,
      .host = &host,
  };
  const int code = kind.run(&task);
  if (code == CRUNCH_OK) return host.write_error;
  if (code < CRUNCH_OK || code > CRUNCH_UNAUTHENTICATED) {
    return absl::InternalError(absl::StrCat("kind '", kind.name, "' returned status ", code,
                                            ", which is not a crunch_status (0..16)"));
  }
  const auto status_code = static_cast<absl::StatusCode>(code);
  if (host.message.empty()) {
    return absl::Status(status_code,
                        absl::StrCat("kind '", kind.name, "' failed with ",
                                     absl::StatusCodeToString(status_code), " and no message"));
  }
  return absl::Status(status_code, host.message);
}

bool ValidName(const char* name, bool allow_dots) {
  if (name == nullptr) return false;
  const std::string_view s(name);
  if (s.empty() || s.size() > kMaxNameBytes || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(), [allow_dots](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           (allow_dots && (c == '.' || c == '-'));
  });
}

std::string Quoted(const char* text) {
  return text == nullptr ? std::string("NULL") : absl::StrCat("'", text, "'");
}

absl::StatusOr<ParamSpec> CheckParam(const crunch_param_spec& p) {
  if (!ValidName(p.name, /*allow_dots=*/false)) {
    return absl::InvalidArgumentError(
        absl::StrCat("param name ", Quoted(p.name),
                     " is not allowed; names are 1 to 64 characters of [a-z0-9_], "
                     "starting with a letter"));
  }
  ParamSpec spec;
  spec.name = p.name;
  spec.description = p.description != nullptr ? p.description : "";
  spec.required = p.required != 0;
  spec.default_value = p.default_value != nullptr ? p.default_value : "";
  // The plugin may have put any int there: read it as one. Loading a value
  // outside the enum's range as crunch_param_type is undefined behaviour
  // (UBSan stops on it).
  static_assert(sizeof(p.type) == sizeof(int));
  int type = 0;
  std::memcpy(&type, &p.type, sizeof(type));
  switch (type) {
    case CRUNCH_PARAM_INT: {
      spec.type = ParamSpec::Type::kInt;
      spec.min = p.min;
      spec.max = p.max;
      if (p.min > p.max) {
        return absl::InvalidArgumentError(
            absl::StrCat("param '", p.name, "' has min ", p.min, " above its max ", p.max));
      }
      int64_t v = 0;
      if (p.default_value != nullptr &&
          (!absl::SimpleAtoi(p.default_value, &v) || v < p.min || v > p.max)) {
        return absl::InvalidArgumentError(
            absl::StrCat("param '", p.name, "' has default '", p.default_value,
                         "', which is not an integer in ", p.min, "..", p.max));
      }
      break;
    }
    case CRUNCH_PARAM_STRING:
      spec.type = ParamSpec::Type::kString;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("param '", p.name, "' has type ", type,
                       "; allowed: CRUNCH_PARAM_INT (1), CRUNCH_PARAM_STRING (2)"));
  }
  return spec;
}

absl::StatusOr<KindSpec> CheckKind(const crunch_kind& k, absl::string_view source) {
  if (!ValidName(k.name, /*allow_dots=*/true)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kind name ", Quoted(k.name),
                     " is not allowed; names are 1 to 64 characters of [a-z0-9_.-], "
                     "starting with a letter"));
  }
  const auto in_kind = [&k](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("kind '", k.name, "': ", s.message()));
  };
  if (k.run == nullptr) return in_kind(absl::InvalidArgumentError("run is NULL"));
  if (k.param_count > kMaxParams) {
    return in_kind(absl::InvalidArgumentError(
        absl::StrCat("declares ", k.param_count, " params; at most ", kMaxParams)));
  }
  if (k.param_count > 0 && k.params == nullptr) {
    return in_kind(absl::InvalidArgumentError(
        absl::StrCat("params is NULL but param_count is ", k.param_count)));
  }
  KindSpec spec;
  spec.name = k.name;
  spec.pool = Pool::kCpu;
  spec.description = k.description != nullptr ? k.description : "";
  spec.source = std::string(source);
  std::set<std::string, std::less<>> seen;
  for (size_t i = 0; i < k.param_count; ++i) {
    absl::StatusOr<ParamSpec> param = CheckParam(k.params[i]);
    if (!param.ok()) return in_kind(param.status());
    if (!seen.insert(param->name).second) {
      return in_kind(
          absl::InvalidArgumentError(absl::StrCat("param '", param->name, "' is declared twice")));
    }
    spec.params.push_back(*std::move(param));
  }
  spec.output_bound = OutputBound{.bounded = k.output.bounded != 0,
                                  .fixed_bytes = k.output.fixed_bytes,
                                  .per_input_kib = k.output.per_input_kib};
  const crunch_kind* kind = &k;
  spec.run = [kind](std::span<const std::byte> input, const TaskParams& params,
                    const TaskContext& context,
                    Output& output) { return RunKernel(*kind, input, params, context, output); };
  return spec;
}

}  // namespace

absl::StatusOr<std::vector<KindSpec>> KindsFromPlugin(const crunch_plugin& plugin,
                                                      absl::string_view source) {
  const auto from_plugin = [source](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(source, ": ", s.message()));
  };
  if (plugin.abi_version != CRUNCH_PLUGIN_ABI_VERSION) {
    return from_plugin(absl::FailedPreconditionError(
        absl::StrCat("built for crunch plugin ABI version ", plugin.abi_version,
                     "; this crunchd loads version ", CRUNCH_PLUGIN_ABI_VERSION,
                     " only (rebuild the plugin against this crunchd's crunch/plugin.h)")));
  }
  if (plugin.kind_count > 0 && plugin.kinds == nullptr) {
    return from_plugin(absl::InvalidArgumentError(
        absl::StrCat("kinds is NULL but kind_count is ", plugin.kind_count)));
  }
  std::vector<KindSpec> specs;
  std::set<std::string, std::less<>> seen;
  for (size_t i = 0; i < plugin.kind_count; ++i) {
    absl::StatusOr<KindSpec> spec = CheckKind(plugin.kinds[i], source);
    if (!spec.ok()) return from_plugin(spec.status());
    if (!seen.insert(spec->name).second) {
      return from_plugin(
          absl::InvalidArgumentError(absl::StrCat("kind '", spec->name, "' is declared twice")));
    }
    specs.push_back(*std::move(spec));
  }
  return specs;
}

}  // namespace crunch::daemon
