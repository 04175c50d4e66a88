// The rules of io.http_allow; see the header for the table they implement.
//
// The address ranges below are the ones that matter for a server-side fetcher
// (RFC 6890 and the clouds' documentation), not a complete special-purpose
// registry: multicast, broadcast and documentation ranges cannot reach anything
// worth protecting over TCP, so they count as public and fail on their own.

#include "daemon/kinds/internal/http_allow_list.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace crunch::daemon {
namespace {

constexpr std::array<uint8_t, 12> kMappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr std::array<uint8_t, 12> kNat64Prefix = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

bool HasPrefix(const std::array<uint8_t, 16>& bytes, const std::array<uint8_t, 12>& prefix) {
  return std::equal(prefix.begin(), prefix.end(), bytes.begin());
}

// Whether the first `bits` bits of `bytes` equal those of `prefix`.
template <size_t N>
bool InRange(const std::array<uint8_t, N>& bytes, const std::array<uint8_t, N>& prefix, int bits) {
  for (size_t i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((bytes[i] & mask) != (prefix[i] & mask)) return false;
  }
  return true;
}

using V4 = std::array<uint8_t, 4>;
using V6 = std::array<uint8_t, 16>;

constexpr V4 kV4Metadata[] = {
    {169, 254, 169, 254},  // AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, ...
    {169, 254, 170, 2},    // AWS ECS task metadata and credentials
    {169, 254, 170, 23},   // AWS EKS Pod Identity
    {169, 254, 0, 23},     // Tencent Cloud
    {100, 100, 100, 200},  // Alibaba Cloud
};
constexpr V6 kV6Metadata[] = {
    {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54},  // fd00:ec2::254, AWS
    {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x23},     // fd00:ec2::23, AWS EKS
};

AddressClass ClassifyV4(const V4& a) {
  if (std::find(std::begin(kV4Metadata), std::end(kV4Metadata), a) != std::end(kV4Metadata)) {
    return AddressClass::kCloudMetadata;
  }
  if (InRange<4>(a, {169, 254, 0, 0}, 16)) return AddressClass::kLinkLocal;
  if (InRange<4>(a, {127, 0, 0, 0}, 8)) return AddressClass::kLoopback;
  if (InRange<4>(a, {0, 0, 0, 0}, 8)) return AddressClass::kUnspecified;
  if (InRange<4>(a, {10, 0, 0, 0}, 8) || InRange<4>(a, {172, 16, 0, 0}, 12) ||
      InRange<4>(a, {192, 168, 0, 0}, 16) || InRange<4>(a, {100, 64, 0, 0}, 10)) {
    return AddressClass::kPrivate;
  }
  return AddressClass::kPublic;
}

std::optional<uint16_t> ParsePort(absl::string_view text) {
  uint32_t port = 0;
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(text, &port) || port < 1 || port > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(port);
}

// How an io.http_allow entry writes the address: "1.2.3.4" or "[v6]".
std::string EntryForm(const IpAddress& address) {
  std::string text = address.ToString();
  return absl::StrContains(text, ':') ? absl::StrCat("[", text, "]") : text;
}

absl::string_view StripBrackets(absl::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(absl::string_view text) {
  const std::string plain(text.substr(0, text.find('%')));
  IpAddress result;
  in_addr v4{};
  if (::inet_pton(AF_INET, plain.c_str(), &v4) == 1) {
    std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), result.bytes.begin());
    std::memcpy(result.bytes.data() + 12, &v4, 4);
    return result;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, plain.c_str(), &v6) == 1) {
    std::memcpy(result.bytes.data(), &v6, 16);
    return result;
  }
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* address, socklen_t length) {
  IpAddress result;
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), result.bytes.begin());
    std::memcpy(result.bytes.data() + 12, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr,
                4);
    return result;
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    std::memcpy(result.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr,
                16);
    return result;
  }
  return std::nullopt;
}

std::optional<std::array<uint8_t, 4>> IpAddress::Ipv4() const {
  if (!HasPrefix(bytes, kMappedPrefix) && !HasPrefix(bytes, kNat64Prefix)) return std::nullopt;
  return V4{bytes[12], bytes[13], bytes[14], bytes[15]};
}

std::string IpAddress::ToString() const {
  char text[INET6_ADDRSTRLEN] = "";
  if (HasPrefix(bytes, kMappedPrefix)) {
    ::inet_ntop(AF_INET, bytes.data() + 12, text, sizeof(text));
  } else {
    ::inet_ntop(AF_INET6, bytes.data(), text, sizeof(text));
  }
  return text;
}

AddressClass ClassifyAddress(const IpAddress& address) {
  if (const std::optional<V4> v4 = address.Ipv4(); v4.has_value()) return ClassifyV4(*v4);
  const V6& a = address.bytes;
  if (std::find(std::begin(kV6Metadata), std::end(kV6Metadata), a) != std::end(kV6Metadata)) {
    return AddressClass::kCloudMetadata;
  }
  if (a == V6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}) return AddressClass::kLoopback;
  if (a == V6{}) return AddressClass::kUnspecified;
  if (InRange<16>(a, {0xfe, 0x80}, 10)) return AddressClass::kLinkLocal;
  if (InRange<16>(a, {0xfc}, 7) || InRange<16>(a, {0xfe, 0xc0}, 10)) {
    return AddressClass::kPrivate;
  }
  return AddressClass::kPublic;
}

absl::string_view AddressClassName(AddressClass address_class) {
  switch (address_class) {
    case AddressClass::kPublic:
      return "a public address";
    case AddressClass::kPrivate:
      return "a private-network address";
    case AddressClass::kLoopback:
      return "a loopback address";
    case AddressClass::kUnspecified:
      return "an unspecified address (it reaches this machine)";
    case AddressClass::kLinkLocal:
      return "a link-local address";
    case AddressClass::kCloudMetadata:
      return "a cloud metadata address";
  }
  return "an address";
}

HttpAllowList::HttpAllowList(std::vector<std::string> entries) : text_(std::move(entries)) {
  for (absl::string_view text : text_) {
    Entry entry;
    absl::string_view host = text;
    absl::string_view port;
    if (absl::StartsWith(text, "[")) {  // "[v6]" or "[v6]:port"
      const size_t close = text.find(']');
      if (close == absl::string_view::npos) continue;
      host = text.substr(1, close - 1);
      const absl::string_view rest = text.substr(close + 1);
      if (!rest.empty()) {
        if (rest.front() != ':') continue;
        port = rest.substr(1);
        if (port.empty()) continue;
      }
    } else if (const size_t colon = text.find(':'); colon != absl::string_view::npos) {
      if (text.find(':', colon + 1) != absl::string_view::npos) continue;  // A bare IPv6.
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
      if (port.empty()) continue;
    }
    if (!port.empty()) {
      entry.port = ParsePort(port);
      if (!entry.port.has_value()) continue;
    }
    if (host.empty()) continue;
    entry.host = absl::AsciiStrToLower(host);
    entry.address = IpAddress::Parse(host);
    entries_.push_back(std::move(entry));
  }
}

HttpAllowList::HostMatch HttpAllowList::MatchHost(absl::string_view host, uint16_t port) const {
  const absl::string_view bare = StripBrackets(host);
  const std::optional<IpAddress> address = IpAddress::Parse(bare);
  HostMatch match = HostMatch::kNone;
  for (const Entry& entry : entries_) {
    if (entry.port.has_value() && *entry.port != port) continue;
    if (entry.host == "*") {
      match = HostMatch::kWildcard;
      continue;
    }
    const bool same = address.has_value() && entry.address.has_value()
                          ? *address == *entry.address
                          : absl::EqualsIgnoreCase(entry.host, bare);
    if (same) return HostMatch::kListed;
  }
  return match;
}

bool HttpAllowList::ListsAddress(const IpAddress& address, uint16_t port) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const Entry& entry) {
    return entry.address == address && (!entry.port.has_value() || *entry.port == port);
  });
}

absl::Status HttpAllowList::CheckAddress(HostMatch match, absl::string_view host,
                                         const IpAddress& address, uint16_t port) const {
  if (ListsAddress(address, port)) return absl::OkStatus();
  const AddressClass address_class = ClassifyAddress(address);
  std::string rule;
  switch (address_class) {
    case AddressClass::kPublic:
      if (match != HostMatch::kNone) return absl::OkStatus();
      rule = absl::StrCat("host '", host, "' is not in io.http_allow");
      break;
    case AddressClass::kPrivate:
    case AddressClass::kLoopback:
    case AddressClass::kUnspecified:
      if (match == HostMatch::kListed) return absl::OkStatus();
      rule = absl::StrCat("\"*\" in io.http_allow does not cover it; list the host ('",
                          StripBrackets(host), "') or the address itself to allow it");
      break;
    case AddressClass::kLinkLocal:
    case AddressClass::kCloudMetadata:
      rule = absl::StrCat("only an io.http_allow entry naming the address itself (\"",
                          EntryForm(address),
                          "\") allows it; neither \"*\" nor a host name that resolves there is "
                          "enough");
      break;
  }
  return absl::PermissionDeniedError(absl::StrCat("refused to connect to ", EntryForm(address), ":",
                                                  port, " (from host '", host, "'): it is ",
                                                  AddressClassName(address_class), ", and ", rule));
}

std::string HttpAllowList::Describe() const {
  return text_.empty() ? "none, the list is empty" : absl::StrJoin(text_, ", ");
}

}  // namespace crunch::daemon
