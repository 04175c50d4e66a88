#include "clients/cli/format.h"

#include <gtest/gtest.h>

namespace crunch::cli {
namespace {

TEST(FormatMicros, PicksAUnit) {
  EXPECT_EQ(FormatMicros(850), "850 us");
  EXPECT_EQ(FormatMicros(12'345), "12.3 ms");
  EXPECT_EQ(FormatMicros(4'560'000), "4.56 s");
}

TEST(FormatUptime, ShowsTheLargestUnitsOnly) {
  EXPECT_EQ(FormatUptime(45'000), "45s");
  EXPECT_EQ(FormatUptime(185'000), "3m 05s");
  EXPECT_EQ(FormatUptime((2 * 3600 + 3 * 60 + 4) * 1000ull), "2h 03m 04s");
  EXPECT_EQ(FormatUptime((3 * 86400 + 4 * 3600 + 5 * 60) * 1000ull), "3d 04h 05m");
}

TEST(LooksBinary, AcceptsUtf8Text) {
  EXPECT_FALSE(LooksBinary(""));
  EXPECT_FALSE(LooksBinary("832040\n"));
  EXPECT_FALSE(LooksBinary("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80"));
}

TEST(LooksBinary, RejectsNulsAndInvalidUtf8) {
  EXPECT_TRUE(LooksBinary(std::string("a\0b", 3)));
  EXPECT_TRUE(LooksBinary("\x28\xb5\x2f\xfd"));  // The zstd magic.
  EXPECT_TRUE(LooksBinary("\xc0\xaf"));          // Overlong '/'.
  EXPECT_TRUE(LooksBinary("\xed\xa0\x80"));      // A UTF-16 surrogate.
  EXPECT_TRUE(LooksBinary("\xe2\x82"));          // Truncated.
}

TEST(Percentile, UsesTheNearestRank) {
  std::vector<uint64_t> v;
  for (uint64_t i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 50), 50u);
  EXPECT_EQ(Percentile(v, 99), 99u);
  EXPECT_EQ(Percentile(v, 100), 100u);
  EXPECT_EQ(Percentile({7}, 50), 7u);
  EXPECT_EQ(Percentile({}, 50), 0u);
}

TEST(FormatStatus, ShowsWorkersPoolsAndCounters) {
  crunch::v1::DaemonStatus s;
  s.set_version("0.1.0");
  s.set_pid(42);
  s.set_uptime_ms(65'000);
  crunch::v1::WorkerInfo* w = s.add_workers();
  w->set_slot(0);
  w->set_pid(43);
  w->set_state("busy");
  w->set_current_kind("fib");
  w->set_rss_bytes(3 * 1024 * 1024);
  crunch::v1::PoolInfo* p = s.add_pools();
  p->set_name("cpu");
  p->set_size(2);
  p->set_busy(1);
  p->set_queue_capacity(1024);
  p->mutable_latency()->set_p50_us(1500);
  p->mutable_latency()->set_samples(10);
  s.mutable_counters()->set_accepted(7);
  (*s.mutable_counters()->mutable_failed_by_code())["ABORTED"] = 1;

  const std::string text = FormatStatus(s);
  EXPECT_NE(text.find("crunchd 0.1.0, pid 42, up 1m 05s"), std::string::npos) << text;
  EXPECT_NE(text.find("busy"), std::string::npos) << text;
  EXPECT_NE(text.find("fib"), std::string::npos) << text;
  EXPECT_NE(text.find("3.0"), std::string::npos) << text;
  EXPECT_NE(text.find("1/2"), std::string::npos) << text;
  EXPECT_NE(text.find("0/1024"), std::string::npos) << text;
  EXPECT_NE(text.find("1.5 ms"), std::string::npos) << text;
  EXPECT_NE(text.find("accepted 7"), std::string::npos) << text;
  EXPECT_NE(text.find("ABORTED 1"), std::string::npos) << text;
}

TEST(FormatKinds, ShowsParametersWithRangeAndDefault) {
  crunch::v1::ListKindsReply kinds;
  crunch::v1::KindInfo* fib = kinds.add_kinds();
  fib->set_name("fib");
  fib->set_pool("cpu");
  fib->set_description("Fibonacci.");
  crunch::v1::ParamInfo* n = fib->add_params();
  n->set_name("n");
  n->set_type("int");
  n->set_required(true);
  n->set_max(45);
  crunch::v1::KindInfo* get = kinds.add_kinds();
  get->set_name("http.get");
  get->set_pool("io");
  crunch::v1::ParamInfo* url = get->add_params();
  url->set_name("url");
  url->set_type("string");
  url->set_default_value("http://x/");

  const std::string text = FormatKinds(kinds);
  EXPECT_NE(text.find("fib"), std::string::npos) << text;
  EXPECT_NE(text.find("0..45"), std::string::npos) << text;
  EXPECT_NE(text.find("required"), std::string::npos) << text;
  EXPECT_NE(text.find("default http://x/"), std::string::npos) << text;
  EXPECT_LT(text.find("0..45"), text.find("http.get")) << text;
}

TEST(FormatBatchSummary, ReportsCountsRateLatencyAndErrors) {
  BatchSummary s;
  s.tasks = 200;
  s.succeeded = 198;
  s.wall_seconds = 2.0;
  s.latencies_us = {1000, 2000, 3000};
  s.errors["DEADLINE_EXCEEDED"] = {.code = 4, .count = 2, .first_message = "too slow"};
  const std::string text = FormatBatchSummary(s);
  EXPECT_NE(text.find("tasks       200 (198 ok, 2 failed)"), std::string::npos) << text;
  EXPECT_NE(text.find("100.0 tasks/s"), std::string::npos) << text;
  EXPECT_NE(text.find("p50 2.0 ms"), std::string::npos) << text;
  EXPECT_NE(text.find("DEADLINE_EXCEEDED  2  first: too slow"), std::string::npos) << text;
}

TEST(ToJson, UsesProtoFieldNames) {
  crunch::v1::DaemonStatus s;
  s.set_uptime_ms(5);
  s.add_workers()->set_rss_bytes(1);
  const std::string json = ToJson(s);
  EXPECT_NE(json.find("\"uptime_ms\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"rss_bytes\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"draining\": false"), std::string::npos) << json;
}

}  // namespace
}  // namespace crunch::cli
