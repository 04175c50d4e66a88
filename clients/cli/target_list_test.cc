#include "clients/cli/target_list.h"

#include <gtest/gtest.h>

namespace crunch::cli {
namespace {

std::vector<std::string> Targets(const std::string& address) {
  absl::StatusOr<TargetList> list = ParseTargetList(address);
  EXPECT_TRUE(list.ok()) << address << ": " << list.status();
  return list.ok() ? list->targets : std::vector<std::string>{};
}

TEST(ParseTargetList, KeepsOneAddressAsGiven) {
  for (const char* address : {"unix:/tmp/a.sock", "dns:///host:50051", "host:50051",
                              "unix:///tmp/a.sock", "ipv4:127.0.0.1:1", "[::1]:5000"}) {
    EXPECT_EQ(Targets(address), std::vector<std::string>{address});
  }
}

TEST(ParseTargetList, CompletesABarePathToUnix) {
  EXPECT_EQ(Targets("/tmp/a.sock"), std::vector<std::string>{"unix:/tmp/a.sock"});
}

TEST(ParseTargetList, GivesEachAddressOfAListItsOwnTarget) {
  EXPECT_EQ(Targets("unix:/tmp/a.sock, unix:///tmp/b.sock,/tmp/c"),
            (std::vector<std::string>{"unix:/tmp/a.sock", "unix:/tmp/b.sock", "unix:/tmp/c"}));
  EXPECT_EQ(Targets("unix:/tmp/a.sock,localhost:5000,10.0.0.1:1"),
            (std::vector<std::string>{"unix:/tmp/a.sock", "localhost:5000", "10.0.0.1:1"}));
}

TEST(ParseTargetList, SplitsGrpcsOwnListForm) {
  EXPECT_EQ(Targets("unix:/tmp/a.sock,b.sock"),
            (std::vector<std::string>{"unix:/tmp/a.sock", "unix:b.sock"}));
  EXPECT_EQ(Targets("ipv4:10.0.0.1:5000,10.0.0.2:5000"),
            (std::vector<std::string>{"ipv4:10.0.0.1:5000", "10.0.0.2:5000"}));
}

TEST(ParseTargetList, RejectsEmptyEntries) {
  EXPECT_FALSE(ParseTargetList("").ok());
  EXPECT_FALSE(ParseTargetList("  ").ok());
  EXPECT_FALSE(ParseTargetList("unix:/a,,unix:/b").ok());
  EXPECT_FALSE(ParseTargetList("unix:/a,").ok());
}

TEST(ParseTaskRef, ReadsAnIdAndAnIdAtAnAddress) {
  absl::StatusOr<TaskRef> plain = ParseTaskRef("42");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->id, 42u);
  EXPECT_EQ(plain->target, "");
  absl::StatusOr<TaskRef> located = ParseTaskRef("7@unix:/run/b.sock");
  ASSERT_TRUE(located.ok()) << located.status();
  EXPECT_EQ(located->id, 7u);
  EXPECT_EQ(located->target, "unix:/run/b.sock");
  EXPECT_EQ(FormatTaskRef(7, "unix:/run/b.sock"), "7@unix:/run/b.sock");
  EXPECT_EQ(FormatTaskRef(42, ""), "42");
}

TEST(ParseTaskRef, RejectsOthersSayingWhatIsAllowed) {
  for (const char* bad : {"", "x", "-1", "4 2", "42@", "@unix:/a", "99999999999999999999999"}) {
    absl::StatusOr<TaskRef> ref = ParseTaskRef(bad);
    ASSERT_FALSE(ref.ok()) << bad;
    EXPECT_NE(ref.status().message().find("not a number or NUMBER@ADDRESS"), std::string::npos)
        << ref.status();
  }
}

}  // namespace
}  // namespace crunch::cli
