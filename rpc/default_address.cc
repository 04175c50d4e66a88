#include "rpc/default_address.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace crunch::rpc {

std::string DefaultAddressFor(uid_t euid, const char* xdg_runtime_dir) {
  if (euid == 0) return "unix:/run/crunchd/crunchd.sock";
  if (xdg_runtime_dir != nullptr && xdg_runtime_dir[0] == '/') {
    return absl::StrCat("unix:", xdg_runtime_dir, "/crunchd.sock");
  }
  return absl::StrCat("unix:/tmp/crunchd-", euid, "/crunchd.sock");
}

std::string DefaultAddress() {
  return DefaultAddressFor(::geteuid(), std::getenv("XDG_RUNTIME_DIR"));
}

std::optional<std::string> UnixSocketPath(const std::string& address) {
  if (absl::StartsWith(address, "unix://")) return address.substr(7);
  if (absl::StartsWith(address, "unix:")) return address.substr(5);
  return std::nullopt;
}

}  // namespace crunch::rpc
