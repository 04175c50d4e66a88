// HttpAllowList: the rules of io.http_allow, which decide where http.get may
// connect. Two questions are asked of it, at two moments:
//
//   1. Before a request (and before each redirect hop): may the URL's host and
//      port be fetched at all? MatchHost() answers kNone, kWildcard (only "*"
//      admits it) or kListed (an entry names the host).
//   2. When curl opens each connection, with the address the host resolved to:
//      may crunchd connect there? CheckAddress() answers, from the address's
//      class and how the host was admitted:
//
//        public                      any match (kWildcard or kListed)
//        loopback, unspecified,      kListed (the host itself is listed), or an
//          private (RFC 1918,          entry names the address; "*" is not
//          100.64/10, fc00::/7)        enough
//        link-local, cloud metadata  only an entry that names the address
//          (169.254/16, fe80::/10,     itself ("169.254.169.254",
//          100.100.100.200, ...)       "[fe80::1]:80"); neither "*" nor a host
//                                      name is enough, whatever it resolves to
//
// So a DNS answer or a redirect that points at the metadata service is refused
// even when the name it came from is listed, and "*" reaches the internet but
// not this machine or its private network.
//
// IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) IPv6 addresses are
// judged by the IPv4 address inside them.
//
// Thread safety: immutable after construction; any number of threads may call
// the const methods at once.

#ifndef CRUNCH_DAEMON_KINDS_INTERNAL_HTTP_ALLOW_LIST_H_
#define CRUNCH_DAEMON_KINDS_INTERNAL_HTTP_ALLOW_LIST_H_

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace crunch::daemon {

// An IPv4 or IPv6 address; IPv4 is kept as the IPv4-mapped IPv6 address, so
// the two spellings compare equal.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};

  // "1.2.3.4", "::1", "fe80::1" (a "%zone" suffix is ignored); nullopt if not an address.
  static std::optional<IpAddress> Parse(absl::string_view text);
  // From a sockaddr_in or sockaddr_in6; nullopt for other families.
  static std::optional<IpAddress> FromSockaddr(const sockaddr* address, socklen_t length);

  // The IPv4 address inside (mapped or NAT64), if there is one.
  std::optional<std::array<uint8_t, 4>> Ipv4() const;
  // "169.254.169.254", "fe80::1".
  std::string ToString() const;

  bool operator==(const IpAddress&) const = default;
};

enum class AddressClass {
  kPublic,
  kPrivate,        // 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fec0::/10
  kLoopback,       // 127/8, ::1
  kUnspecified,    // 0/8, :: (0.0.0.0 reaches this machine on Linux)
  kLinkLocal,      // 169.254/16, fe80::/10
  kCloudMetadata,  // 169.254.169.254 and friends, 100.100.100.200, fd00:ec2::254, fd00:ec2::23
};

AddressClass ClassifyAddress(const IpAddress& address);
// "a cloud metadata address", "a loopback address", ...
absl::string_view AddressClassName(AddressClass address_class);

class HttpAllowList {
 public:
  enum class HostMatch { kNone, kWildcard, kListed };

  // `entries` as io.http_allow has them (checked by the config): "host",
  // "host:port", "[v6]", "[v6]:port" or "*". An entry that is malformed anyway
  // matches nothing.
  explicit HttpAllowList(std::vector<std::string> entries);

  // How `host` (as curl's URL API gives it: IPv6 in brackets) on `port` is
  // admitted. Host names compare case-insensitively, as written: no DNS.
  HostMatch MatchHost(absl::string_view host, uint16_t port) const;

  // Whether an entry names `address` itself (an IP literal entry) with `port`
  // or no port.
  bool ListsAddress(const IpAddress& address, uint16_t port) const;

  // OK if http.get may connect to `address`:`port` for a host admitted as
  // `match`; else PERMISSION_DENIED saying what the address is, which rule
  // refused it and what entry would allow it. `host` is only for the message.
  absl::Status CheckAddress(HostMatch match, absl::string_view host, const IpAddress& address,
                            uint16_t port) const;

  // "a, b, c", or "none, the list is empty".
  std::string Describe() const;

 private:
  struct Entry {
    std::string host;  // Without brackets; "*" for the wildcard.
    std::optional<uint16_t> port;
    std::optional<IpAddress> address;  // Set when `host` is an IP literal.
  };
  std::vector<std::string> text_;
  std::vector<Entry> entries_;
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_INTERNAL_HTTP_ALLOW_LIST_H_
