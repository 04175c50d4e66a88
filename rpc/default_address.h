// DefaultAddress: where crunchd listens and crunchctl connects when no address
// is given. One function, so the two can never disagree.
//
//   root                      unix:/run/crunchd/crunchd.sock
//   $XDG_RUNTIME_DIR is set   unix:$XDG_RUNTIME_DIR/crunchd.sock
//   otherwise                 unix:/tmp/crunchd-$UID/crunchd.sock

#ifndef CRUNCH_RPC_DEFAULT_ADDRESS_H_
#define CRUNCH_RPC_DEFAULT_ADDRESS_H_

#include <sys/types.h>

#include <optional>
#include <string>

namespace crunch::rpc {

std::string DefaultAddress();

// The rule itself, for tests: the effective uid and $XDG_RUNTIME_DIR.
std::string DefaultAddressFor(uid_t euid, const char* xdg_runtime_dir);

// "unix:/a/b.sock" -> "/a/b.sock"; nullopt for a TCP address ("host:port").
std::optional<std::string> UnixSocketPath(const std::string& address);

}  // namespace crunch::rpc

#endif  // CRUNCH_RPC_DEFAULT_ADDRESS_H_
