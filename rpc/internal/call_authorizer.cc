#include "rpc/internal/call_authorizer.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "daemon/log_format.h"

namespace crunch::rpc::internal {

namespace {

constexpr char kBearer[] = "Bearer ";

// Compares without an early exit, so the time taken says nothing about where
// a guess first differs (only, at most, the length of the token).
bool ConstantTimeEquals(absl::string_view given, absl::string_view expected) {
  unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char g = i < given.size() ? given[i] : '\0';
    diff |= static_cast<unsigned char>(g ^ expected[i]);
  }
  return diff == 0;
}

// The fd of a connection crunchd accepted itself ("fd:N"), or -1.
int PeerFd(const std::string& peer) {
  int fd = -1;
  if (!absl::StartsWith(peer, "fd:") || !absl::SimpleAtoi(peer.substr(3), &fd)) return -1;
  return fd;
}

}  // namespace

PeerCredentials ReadPeerCredentials(int fd) {
  PeerCredentials out;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    return out;
  }
  out.known = true;
  out.uid = cred.uid;
  out.gid = cred.gid;
  out.pid = cred.pid;
  // Linux 4.13+; ERANGE says how much room the list needs.
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      out.groups = std::move(groups);
      break;
    }
    if (errno != ERANGE) break;
    groups.resize(bytes / sizeof(gid_t) + 1);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<CallAuthorizer>> CallAuthorizer::Create(
    const daemon::ServerConfig& config) {
  std::string token;
  if (!config.token_file.empty()) {
    absl::StatusOr<std::string> read = daemon::ReadTokenFile(config.token_file);
    if (!read.ok()) return read.status();
    token = *std::move(read);
  }
  return std::unique_ptr<CallAuthorizer>(new CallAuthorizer(config, std::move(token)));
}

CallAuthorizer::CallAuthorizer(const daemon::ServerConfig& config, std::string token)
    : allow_uids_(config.allow_uids),
      allow_gids_(config.allow_gids),
      checks_peers_(!config.allow_uids.empty() || !config.allow_gids.empty()),
      token_(std::move(token)) {}

bool CallAuthorizer::Allowed(const PeerCredentials& c) const {
  if (!checks_peers_) return true;
  if (!c.known) return false;
  if (c.uid == 0) return true;
  const auto listed = [](const std::vector<uint32_t>& list, uint32_t id) {
    return std::find(list.begin(), list.end(), id) != list.end();
  };
  if (listed(allow_uids_, c.uid) || listed(allow_gids_, c.gid)) return true;
  return std::any_of(c.groups.begin(), c.groups.end(),
                     [&](gid_t g) { return listed(allow_gids_, g); });
}

void CallAuthorizer::RememberPeer(int fd, PeerCredentials credentials) {
  if (!checks_peers_) return;
  PeerRecord record;
  record.allowed = Allowed(credentials);
  record.credentials = std::move(credentials);
  std::lock_guard<std::mutex> lock(mu_);
  peers_[fd] = std::move(record);
}

grpc::Status CallAuthorizer::Check(const grpc::ServerContext& context, bool needs_token) const {
  if (checks_peers_) {
    const std::string peer = context.peer();
    const int fd = PeerFd(peer);
    if (fd >= 0) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = peers_.find(fd);
      if (it == peers_.end() || !it->second.allowed) {
        PeerCredentials c;
        if (it != peers_.end()) {
          c = it->second.credentials;
          if (!it->second.logged) {
            it->second.logged = true;
            if (c.known) {
              spdlog::warn(
                  "refused a unix socket peer: uid {} gid {} (groups {}) pid {} is not in [server] "
                  "allow_uids or allow_gids",
                  c.uid, c.gid, absl::StrJoin(c.groups, ","), c.pid);
            } else {
              spdlog::warn("refused a unix socket peer whose credentials the kernel did not give");
            }
          }
        }
        return grpc::Status(
            grpc::StatusCode::PERMISSION_DENIED,
            c.known ? absl::StrCat("uid ", c.uid, " (gid ", c.gid,
                                   ") may not call this crunchd: it is not in its [server] "
                                   "allow_uids, and no group of it is in allow_gids")
                    : "this crunchd allows only the uids and gids in its [server] allow_uids and "
                      "allow_gids, and the kernel did not say who this peer is");
      }
    }
  }
  if (needs_token && !token_.empty()) {
    const auto& metadata = context.client_metadata();
    auto it = metadata.find("authorization");
    if (it == metadata.end()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "this crunchd requires a bearer token: send the metadata "
                          "'authorization: Bearer TOKEN' with the token in its [server] "
                          "token_file (crunchctl --token-file, crunch.Client(token=...))");
    }
    const absl::string_view value(it->second.data(), it->second.size());
    const bool bearer = value.size() >= sizeof(kBearer) - 1 &&
                        absl::EqualsIgnoreCase(value.substr(0, sizeof(kBearer) - 1), kBearer);
    if (!bearer || !ConstantTimeEquals(value.substr(bearer ? sizeof(kBearer) - 1 : 0), token_)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the bearer token is wrong: this crunchd requires 'authorization: "
                          "Bearer TOKEN' with the token in its [server] token_file");
    }
  }
  return grpc::Status::OK;
}

}  // namespace crunch::rpc::internal
