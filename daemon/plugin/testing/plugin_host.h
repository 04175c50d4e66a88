// A minimal crunchd host for plugin unit tests: loads a plugin the way a
// worker does (dlopen, crunch_plugin_init) and runs one task through the
// crunch_task callbacks, after checking the params against the kind's schema
// and filling in defaults as the daemon does. Header-only; not thread-safe.

#ifndef CRUNCH_DAEMON_PLUGIN_TESTING_PLUGIN_HOST_H_
#define CRUNCH_DAEMON_PLUGIN_TESTING_PLUGIN_HOST_H_

#include <crunch/plugin.h>
#include <dlfcn.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace crunch::testing {

struct TaskOptions {
  std::map<std::string, std::string> params;  // By name; the rest take their defaults.
  uint64_t max_output_bytes = uint64_t{64} << 20;
  int should_stop = CRUNCH_OK;  // What crunch_task_should_stop() returns throughout.
};

struct TaskResult {
  int code = CRUNCH_OK;
  std::string output;
  std::string message;
};

// The plugin at `path`, or nullptr with `error` set. Never unloaded, as in crunchd.
inline const crunch_plugin* LoadPlugin(const std::string& path, std::string& error) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    error = absl::StrCat("dlopen(", path, "): ", dlerror());
    return nullptr;
  }
  auto init = reinterpret_cast<crunch_plugin_init_fn>(dlsym(handle, CRUNCH_PLUGIN_INIT_SYMBOL));
  if (init == nullptr) {
    error = absl::StrCat(path, " does not export ", CRUNCH_PLUGIN_INIT_SYMBOL);
    return nullptr;
  }
  const crunch_plugin* plugin = init();
  if (plugin == nullptr) error = absl::StrCat(path, ": crunch_plugin_init returned NULL");
  return plugin;
}

// The kind named `name`, or nullptr.
inline const crunch_kind* FindKind(const crunch_plugin& plugin, std::string_view name) {
  for (size_t i = 0; i < plugin.kind_count; ++i) {
    if (name == plugin.kinds[i].name) return &plugin.kinds[i];
  }
  return nullptr;
}

// The spec of `kind`'s param `name`, or nullptr.
inline const crunch_param_spec* FindParam(const crunch_kind& kind, std::string_view name) {
  for (size_t i = 0; i < kind.param_count; ++i) {
    if (name == kind.params[i].name) return &kind.params[i];
  }
  return nullptr;
}

namespace internal {

struct Host {
  TaskResult* result;
  const TaskOptions* options;
};

inline Host& HostOf(const crunch_task* task) { return *static_cast<Host*>(task->host); }

inline int Write(crunch_task* task, const void* bytes, size_t size) {
  Host& host = HostOf(task);
  if (size == 0) return CRUNCH_OK;
  if (bytes == nullptr) {
    host.result->message = "crunch_task_write was given NULL bytes";
    return CRUNCH_INVALID_ARGUMENT;
  }
  if (size > host.options->max_output_bytes - host.result->output.size()) {
    host.result->message =
        absl::StrCat("output exceeds max_output_bytes (", host.options->max_output_bytes, ")");
    return CRUNCH_RESOURCE_EXHAUSTED;
  }
  host.result->output.append(static_cast<const char*>(bytes), size);
  return CRUNCH_OK;
}

inline uint64_t OutputRemaining(const crunch_task* task) {
  const Host& host = HostOf(task);
  return host.options->max_output_bytes - host.result->output.size();
}

inline int ShouldStop(const crunch_task* task) { return HostOf(task).options->should_stop; }

inline void SetMessage(crunch_task* task, const char* message, size_t size) {
  HostOf(task).result->message.assign(message == nullptr ? "" : message,
                                      message == nullptr ? 0 : size);
}

}  // namespace internal

// Runs one task of `kind`. Params the schema refuses end it with
// INVALID_ARGUMENT before the plugin runs, as in crunchd.
inline TaskResult RunTask(const crunch_kind& kind, std::string_view input,
                          const TaskOptions& options = {}) {
  TaskResult result;
  const auto refuse = [&result](std::string message) {
    result.code = CRUNCH_INVALID_ARGUMENT;
    result.message = std::move(message);
    return result;
  };
  for (const auto& [name, value] : options.params) {
    if (FindParam(kind, name) == nullptr) {
      return refuse(absl::StrCat("kind '", kind.name, "' has no param '", name, "'"));
    }
  }
  std::vector<std::string> texts(kind.param_count);  // Keeps the values' bytes alive.
  std::vector<crunch_param> params(kind.param_count);
  for (size_t i = 0; i < kind.param_count; ++i) {
    const crunch_param_spec& spec = kind.params[i];
    crunch_param& param = params[i];
    param.name = spec.name;
    if (auto given = options.params.find(spec.name); given != options.params.end()) {
      texts[i] = given->second;
      param.present = 1;
    } else if (spec.default_value != nullptr && spec.default_value[0] != '\0') {  // "" is none
      texts[i] = spec.default_value;
      param.present = 1;
    } else if (spec.required) {
      return refuse(absl::StrCat("param '", spec.name, "' is required"));
    }
    param.value = texts[i].c_str();
    param.value_size = texts[i].size();
    if (spec.type == CRUNCH_PARAM_INT && param.present) {
      if (!absl::SimpleAtoi(texts[i], &param.int_value) || param.int_value < spec.min ||
          param.int_value > spec.max) {
        return refuse(absl::StrCat("param '", spec.name, "' must be an integer in ", spec.min, "..",
                                   spec.max, ", got '", texts[i], "'"));
      }
    }
  }
  const std::vector<uint8_t> bytes(input.begin(), input.end());  // Exactly input_size bytes.
  internal::Host host{.result = &result, .options = &options};
  crunch_task task{
      .input = bytes.data(),
      .input_size = bytes.size(),
      .params = params.data(),
      .param_count = params.size(),
      .deadline_ns = 0,
      .write = internal::Write,
      .output_remaining = internal::OutputRemaining,
      .should_stop = internal::ShouldStop,
      .set_message = internal::SetMessage,
      .host = &host,
  };
  result.code = kind.run(&task);
  return result;
}

}  // namespace crunch::testing

#endif  // CRUNCH_DAEMON_PLUGIN_TESTING_PLUGIN_HOST_H_
