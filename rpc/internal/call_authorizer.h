// CallAuthorizer: whether a call may go ahead, by who is calling. Both checks
// are optional ([server] keys, daemon/config.h) and apply to every call of
// crunch.v1.Crunch; grpc.health.v1 gets the peer check only (see below).
//
// Peer credentials (unix sockets). crunchd accepts unix connections itself
// (UnixListener), reads the peer's SO_PEERCRED (uid, gid, pid) and
// SO_PEERGROUPS (supplementary gids), and records them here under the
// connection's fd before handing the connection to gRPC. gRPC 1.51 names the
// peer of such a connection "fd:N" (ServerContext::peer()), which is how a call
// finds its connection's record. The number is unique among open connections,
// and gRPC closes a connection's fd only once none of its calls is left, so
// the record a call finds is its own connection's: a later connection reusing
// the number overwrote it only after the earlier one and its calls were gone.
// A peer passes if its uid is 0 (root can read the daemon's memory anyway), or
// is in allow_uids, or its primary or a supplementary gid is in allow_gids.
// Both lists empty: every peer passes (the socket's mode 0660 is the check).
// A refused peer's calls end PERMISSION_DENIED; the first refused call of each
// connection logs a warning naming its uid, gid and pid. TCP peers are not
// checked here: TCP is always TLS, optionally with client certificates.
//
// Bearer token. With a token, every crunch.v1 call must carry the metadata
// "authorization: Bearer TOKEN", compared in constant time; missing or wrong
// ends the call UNAUTHENTICATED. grpc.health.v1 needs no token, so systemd,
// Kubernetes and load balancer probes keep working (it tells only whether the
// daemon serves). Server reflection is served by gRPC's own plugin, which
// cannot be checked: it describes the public API and nothing else.
//
// Thread safety: RememberPeer() and Check() from any thread (a mutex guards
// the records); the rest is fixed at construction.

#ifndef CRUNCH_RPC_INTERNAL_CALL_AUTHORIZER_H_
#define CRUNCH_RPC_INTERNAL_CALL_AUTHORIZER_H_

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "daemon/config.h"

namespace crunch::rpc::internal {

// Who is at the other end of a unix socket connection.
struct PeerCredentials {
  bool known = false;  // False if the kernel would not say (the peer is refused).
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> groups;  // Supplementary groups.
};

// Reads SO_PEERCRED and SO_PEERGROUPS of the connected unix socket `fd`.
PeerCredentials ReadPeerCredentials(int fd);

class CallAuthorizer {
 public:
  // Reads the token file, if any (daemon::ReadTokenFile).
  static absl::StatusOr<std::unique_ptr<CallAuthorizer>> Create(const daemon::ServerConfig& config);

  // Whether any check is on; if not, Check() always says OK.
  bool enabled() const { return checks_peers_ || !token_.empty(); }
  bool checks_peers() const { return checks_peers_; }

  // Records the credentials of the unix connection on `fd`, just accepted and
  // about to be handed to gRPC.
  void RememberPeer(int fd, PeerCredentials credentials);

  // OK, or the status to end the call with: PERMISSION_DENIED for a refused
  // unix peer, UNAUTHENTICATED for a missing or wrong token (only if
  // `needs_token`).
  grpc::Status Check(const grpc::ServerContext& context, bool needs_token) const;

 private:
  struct PeerRecord {
    PeerCredentials credentials;
    bool allowed = false;
    bool logged = false;  // The refusal was logged.
  };

  CallAuthorizer(const daemon::ServerConfig& config, std::string token);
  bool Allowed(const PeerCredentials& credentials) const;

  const std::vector<uint32_t> allow_uids_;
  const std::vector<uint32_t> allow_gids_;
  const bool checks_peers_;
  const std::string token_;  // Empty: no token needed.

  mutable std::mutex mu_;
  mutable absl::flat_hash_map<int, PeerRecord> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crunch::rpc::internal

#endif  // CRUNCH_RPC_INTERNAL_CALL_AUTHORIZER_H_
