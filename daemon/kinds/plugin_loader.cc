#include "daemon/kinds/plugin_loader.h"

#include <crunch/plugin.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "daemon/kinds/cpu_kinds.h"
#include "daemon/kinds/plugin_kinds.h"

namespace crunch::daemon {
namespace {

std::string DlError() {
  const char* error = dlerror();
  return error != nullptr ? error : "no reason given";
}

struct LoadedPlugin {
  const crunch_plugin* table;
  std::string source;  // "plugin NAME VERSION (PATH)"
};

absl::StatusOr<LoadedPlugin> LoadPlugin(const PluginToLoad& plugin) {
  const std::string& path = plugin.name;
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("plugin path '", path,
                     "' is not absolute; [plugins] paths takes absolute "
                     "paths to shared libraries"));
  }
  // Never closed: see the header.
  void* handle = dlopen(plugin.load_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    // dlerror names what was opened; /proc/self/fd/N would mean nothing to the reader.
    std::string why = DlError();
    if (plugin.load_path != path) why = absl::StrReplaceAll(why, {{plugin.load_path, path}});
    return absl::FailedPreconditionError(absl::StrCat("cannot load plugin ", path, ": ", why));
  }
  auto init = reinterpret_cast<crunch_plugin_init_fn>(dlsym(handle, CRUNCH_PLUGIN_INIT_SYMBOL));
  if (init == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a crunch plugin: it does not export ",
                     CRUNCH_PLUGIN_INIT_SYMBOL, " (see crunch/plugin.h)"));
  }
  const crunch_plugin* table = init();
  if (table == nullptr) {
    auto load_error = reinterpret_cast<crunch_plugin_load_error_fn>(
        dlsym(handle, CRUNCH_PLUGIN_LOAD_ERROR_SYMBOL));
    const char* why = load_error != nullptr ? load_error() : nullptr;
    return absl::FailedPreconditionError(absl::StrCat(
        "plugin ", path, " refused to load: ", why != nullptr ? why : "it gave no reason"));
  }
  const char* name = table->abi_version == CRUNCH_PLUGIN_ABI_VERSION ? table->name : nullptr;
  const char* version = table->abi_version == CRUNCH_PLUGIN_ABI_VERSION ? table->version : nullptr;
  return LoadedPlugin{
      .table = table,
      .source = absl::StrCat("plugin ", name != nullptr ? name : "?", " ",
                             version != nullptr ? version : "?", " (", path, ")"),
  };
}

}  // namespace

absl::StatusOr<PluginToLoad> InheritedPlugin(int fd, const std::string& name) {
  struct stat held {};
  if (::fstat(fd, &held) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("plugin ", name, " was to be fd ", fd, ", which is not open (",
                     std::strerror(errno), "); --plugin-fd is for crunchd, use --plugin=PATH"));
  }
  struct stat at_name {};
  if (::stat(name.c_str(), &at_name) == 0 && at_name.st_dev == held.st_dev &&
      at_name.st_ino == held.st_ino) {
    return PluginToLoad{.name = name, .load_path = name};
  }
  // Without /proc mounted the held file cannot be opened by name; the file at
  // `name` may then be another, which the worker's --kinds-digest check catches.
  if (::access("/proc/self/fd", X_OK) != 0) return PluginToLoad{.name = name, .load_path = name};
  return PluginToLoad{.name = name, .load_path = absl::StrCat("/proc/self/fd/", fd)};
}

absl::StatusOr<std::vector<KindSpec>> LoadCpuKinds(const std::vector<PluginToLoad>& plugins) {
  std::vector<KindSpec> kinds = CpuKinds();
  std::map<std::string, std::string, std::less<>> source_of;  // Kind name -> source.
  for (const KindSpec& kind : kinds) source_of.emplace(kind.name, kind.source);
  for (const PluginToLoad& to_load : plugins) {
    absl::StatusOr<LoadedPlugin> plugin = LoadPlugin(to_load);
    if (!plugin.ok()) return plugin.status();
    absl::StatusOr<std::vector<KindSpec>> more = KindsFromPlugin(*plugin->table, plugin->source);
    if (!more.ok()) return more.status();
    for (KindSpec& kind : *more) {
      auto [it, added] = source_of.emplace(kind.name, kind.source);
      if (!added) {
        return absl::InvalidArgumentError(
            absl::StrCat("kind '", kind.name, "' is defined twice: by ", it->second, " and by ",
                         kind.source, "; kind names must be unique"));
      }
      kinds.push_back(std::move(kind));
    }
  }
  return kinds;
}

}  // namespace crunch::daemon
