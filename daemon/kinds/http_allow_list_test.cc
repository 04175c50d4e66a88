#include "daemon/kinds/internal/http_allow_list.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace crunch::daemon {
namespace {

using HostMatch = HttpAllowList::HostMatch;

IpAddress Ip(const char* text) {
  std::optional<IpAddress> address = IpAddress::Parse(text);
  EXPECT_TRUE(address.has_value()) << text;
  return address.value_or(IpAddress{});
}

TEST(IpAddress, ParsesBothFamiliesAndIgnoresAZone) {
  EXPECT_EQ(Ip("127.0.0.1").ToString(), "127.0.0.1");
  EXPECT_EQ(Ip("::ffff:127.0.0.1"), Ip("127.0.0.1"));
  EXPECT_EQ(Ip("FE80:0::1%eth0").ToString(), "fe80::1");
  EXPECT_FALSE(IpAddress::Parse("example.org").has_value());
  EXPECT_FALSE(IpAddress::Parse("").has_value());
  EXPECT_FALSE(IpAddress::Parse("1.2.3").has_value());
}

TEST(IpAddress, FromSockaddr) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  ASSERT_EQ(::inet_pton(AF_INET, "169.254.169.254", &v4.sin_addr), 1);
  std::optional<IpAddress> a =
      IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&v4), sizeof(v4));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, Ip("169.254.169.254"));

  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  ASSERT_EQ(::inet_pton(AF_INET6, "fd00:ec2::254", &v6.sin6_addr), 1);
  a = IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof(v6));
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->ToString(), "fd00:ec2::254");

  sockaddr unix_family{};
  unix_family.sa_family = AF_UNIX;
  EXPECT_FALSE(IpAddress::FromSockaddr(&unix_family, sizeof(unix_family)).has_value());
  // Too short for its family.
  EXPECT_FALSE(
      IpAddress::FromSockaddr(reinterpret_cast<const sockaddr*>(&v6), sizeof(v4)).has_value());
}

TEST(ClassifyAddress, KnowsEachClass) {
  const struct {
    const char* address;
    AddressClass expected;
  } cases[] = {
      {"169.254.169.254", AddressClass::kCloudMetadata},
      {"169.254.170.2", AddressClass::kCloudMetadata},
      {"100.100.100.200", AddressClass::kCloudMetadata},
      {"fd00:ec2::254", AddressClass::kCloudMetadata},
      {"::ffff:169.254.169.254", AddressClass::kCloudMetadata},
      {"64:ff9b::a9fe:a9fe", AddressClass::kCloudMetadata},  // NAT64 of 169.254.169.254
      {"169.254.0.1", AddressClass::kLinkLocal},
      {"169.254.255.255", AddressClass::kLinkLocal},
      {"fe80::1", AddressClass::kLinkLocal},
      {"febf:ffff::1", AddressClass::kLinkLocal},
      {"127.0.0.1", AddressClass::kLoopback},
      {"127.255.0.9", AddressClass::kLoopback},
      {"::1", AddressClass::kLoopback},
      {"0.0.0.0", AddressClass::kUnspecified},
      {"0.1.2.3", AddressClass::kUnspecified},
      {"::", AddressClass::kUnspecified},
      {"10.1.2.3", AddressClass::kPrivate},
      {"172.16.0.1", AddressClass::kPrivate},
      {"172.31.255.255", AddressClass::kPrivate},
      {"192.168.1.1", AddressClass::kPrivate},
      {"100.64.0.1", AddressClass::kPrivate},
      {"100.127.255.255", AddressClass::kPrivate},
      {"fd12:3456::1", AddressClass::kPrivate},
      {"fc00::1", AddressClass::kPrivate},
      {"8.8.8.8", AddressClass::kPublic},
      {"172.32.0.1", AddressClass::kPublic},
      {"100.128.0.1", AddressClass::kPublic},
      {"169.253.255.255", AddressClass::kPublic},
      {"fec0::1", AddressClass::kPrivate},
      {"fe7f::1", AddressClass::kPublic},
      {"2001:4860:4860::8888", AddressClass::kPublic},
      {"::2", AddressClass::kPublic},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ClassifyAddress(Ip(c.address)), c.expected) << c.address;
  }
}

TEST(HttpAllowList, MatchesHostsAsWrittenWithOptionalPorts) {
  const HttpAllowList allow({"Example.org", "api.example.com:8443", "[::1]:80", "10.0.0.5"});
  EXPECT_EQ(allow.MatchHost("example.ORG", 80), HostMatch::kListed);
  EXPECT_EQ(allow.MatchHost("example.org", 1234), HostMatch::kListed);
  EXPECT_EQ(allow.MatchHost("api.example.com", 8443), HostMatch::kListed);
  EXPECT_EQ(allow.MatchHost("api.example.com", 443), HostMatch::kNone);
  EXPECT_EQ(allow.MatchHost("[::1]", 80), HostMatch::kListed);
  EXPECT_EQ(allow.MatchHost("[0:0::1]", 80), HostMatch::kListed);  // Same address.
  EXPECT_EQ(allow.MatchHost("[::1]", 81), HostMatch::kNone);
  EXPECT_EQ(allow.MatchHost("10.0.0.5", 80), HostMatch::kListed);
  EXPECT_EQ(allow.MatchHost("www.example.org", 80), HostMatch::kNone);
  EXPECT_EQ(allow.MatchHost("localhost", 80), HostMatch::kNone);  // No DNS.
}

TEST(HttpAllowList, WildcardMatchesAnyHostButAListedEntryWins) {
  const HttpAllowList allow({"*", "internal.example"});
  EXPECT_EQ(allow.MatchHost("anything.example", 80), HostMatch::kWildcard);
  EXPECT_EQ(allow.MatchHost("internal.example", 80), HostMatch::kListed);
  EXPECT_EQ(HttpAllowList({"*:443"}).MatchHost("x.example", 80), HostMatch::kNone);
  EXPECT_EQ(HttpAllowList({}).MatchHost("x.example", 80), HostMatch::kNone);
}

TEST(HttpAllowList, MalformedEntriesMatchNothing) {
  const HttpAllowList allow({"host:", "[::1", "a:b:c", "host:99999", ":80", ""});
  for (const char* host : {"host", "[::1]", "a", ""}) {
    EXPECT_EQ(allow.MatchHost(host, 80), HostMatch::kNone) << host;
  }
}

TEST(HttpAllowList, PublicAddressesNeedOnlyAHostMatch) {
  const HttpAllowList allow({"*"});
  EXPECT_TRUE(allow.CheckAddress(HostMatch::kWildcard, "a.example", Ip("8.8.8.8"), 80).ok());
  EXPECT_TRUE(allow.CheckAddress(HostMatch::kListed, "a.example", Ip("2001:db8::1"), 80).ok());
}

TEST(HttpAllowList, WildcardDoesNotReachLoopbackOrPrivateAddresses) {
  const HttpAllowList allow({"*", "db.internal"});
  for (const char* address :
       {"127.0.0.1", "::1", "0.0.0.0", "10.1.2.3", "192.168.0.1", "fd00::1"}) {
    absl::Status status = allow.CheckAddress(HostMatch::kWildcard, "x.example", Ip(address), 80);
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << address;
    EXPECT_TRUE(allow.CheckAddress(HostMatch::kListed, "db.internal", Ip(address), 80).ok())
        << address;
  }
  EXPECT_EQ(allow.CheckAddress(HostMatch::kWildcard, "x.example", Ip("10.1.2.3"), 80).message(),
            "refused to connect to 10.1.2.3:80 (from host 'x.example'): it is a private-network "
            "address, and \"*\" in io.http_allow does not cover it; list the host ('x.example') "
            "or the address itself to allow it");
  // Listing the address itself is enough.
  EXPECT_TRUE(HttpAllowList({"*", "127.0.0.1"})
                  .CheckAddress(HostMatch::kWildcard, "localhost", Ip("127.0.0.1"), 8080)
                  .ok());
}

TEST(HttpAllowList, LinkLocalAndMetadataNeedTheAddressItself) {
  // Neither "*" nor the host name that resolved there opens them.
  const HttpAllowList names({"*", "metadata.google.internal"});
  for (const char* address : {"169.254.169.254", "169.254.1.1", "fe80::1", "fd00:ec2::254",
                              "100.100.100.200", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"}) {
    for (HostMatch match : {HostMatch::kWildcard, HostMatch::kListed}) {
      EXPECT_EQ(names.CheckAddress(match, "metadata.google.internal", Ip(address), 80).code(),
                absl::StatusCode::kPermissionDenied)
          << address;
    }
  }
  EXPECT_EQ(
      names.CheckAddress(HostMatch::kListed, "metadata.google.internal", Ip("169.254.169.254"), 80)
          .message(),
      "refused to connect to 169.254.169.254:80 (from host 'metadata.google.internal'): it is a "
      "cloud metadata address, and only an io.http_allow entry naming the address itself "
      "(\"169.254.169.254\") allows it; neither \"*\" nor a host name that resolves there is "
      "enough");
  EXPECT_EQ(names.CheckAddress(HostMatch::kWildcard, "[fe80::1]", Ip("fe80::1"), 80).message(),
            "refused to connect to [fe80::1]:80 (from host '[fe80::1]'): it is a link-local "
            "address, and only an io.http_allow entry naming the address itself (\"[fe80::1]\") "
            "allows it; neither \"*\" nor a host name that resolves there is enough");

  const HttpAllowList listed({"169.254.169.254:80", "[fe80::1]", "fd00:ec2::254"});
  EXPECT_TRUE(
      listed.CheckAddress(HostMatch::kListed, "169.254.169.254", Ip("169.254.169.254"), 80).ok());
  EXPECT_FALSE(
      listed.CheckAddress(HostMatch::kListed, "169.254.169.254", Ip("169.254.169.254"), 8080).ok());
  EXPECT_TRUE(listed.CheckAddress(HostMatch::kListed, "[fe80::1]", Ip("fe80::1"), 1234).ok());
  // An entry with two colons and no brackets is malformed (the config refuses it): it opens
  // nothing.
  EXPECT_FALSE(listed.CheckAddress(HostMatch::kNone, "x", Ip("fd00:ec2::254"), 80).ok());
}

TEST(HttpAllowList, DescribesItsEntries) {
  EXPECT_EQ(HttpAllowList({"a", "b:1"}).Describe(), "a, b:1");
  EXPECT_EQ(HttpAllowList({}).Describe(), "none, the list is empty");
}

}  // namespace
}  // namespace crunch::daemon
