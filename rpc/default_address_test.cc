#include "rpc/default_address.h"

#include <gtest/gtest.h>

namespace crunch::rpc {
namespace {

TEST(DefaultAddress, RootUsesRunDirectory) {
  EXPECT_EQ(DefaultAddressFor(0, "/run/user/0"), "unix:/run/crunchd/crunchd.sock");
}

TEST(DefaultAddress, UserWithRuntimeDirUsesIt) {
  EXPECT_EQ(DefaultAddressFor(1000, "/run/user/1000"), "unix:/run/user/1000/crunchd.sock");
}

TEST(DefaultAddress, UserWithoutRuntimeDirUsesTmp) {
  EXPECT_EQ(DefaultAddressFor(1000, nullptr), "unix:/tmp/crunchd-1000/crunchd.sock");
  EXPECT_EQ(DefaultAddressFor(1000, ""), "unix:/tmp/crunchd-1000/crunchd.sock");
}

TEST(UnixSocketPath, StripsSchemeOrRejectsTcp) {
  EXPECT_EQ(UnixSocketPath("unix:/a/b.sock"), "/a/b.sock");
  EXPECT_EQ(UnixSocketPath("unix:///a/b.sock"), "/a/b.sock");
  EXPECT_EQ(UnixSocketPath("127.0.0.1:5000"), std::nullopt);
}

}  // namespace
}  // namespace crunch::rpc
