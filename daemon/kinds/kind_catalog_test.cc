#include "daemon/kinds/kind_catalog.h"

#include <gtest/gtest.h>

#include "daemon/kinds/cpu_kinds.h"

namespace crunch::daemon {
namespace {

TEST(KindCatalog, RoundTripsEverySchemaField) {
  std::vector<KindSpec> kinds = CpuKinds();
  KindSpec odd;
  odd.name = "text.odd";
  odd.description = "tabs\there, newlines\nthere, quotes \" and \\ too";
  odd.source = "plugin odd 0.1 (/tmp/odd plugin.so)";
  odd.output_bound = {.bounded = true, .fixed_bytes = 1, .per_input_kib = 2048};
  odd.params.push_back(ParamSpec{.name = "s",
                                 .type = ParamSpec::Type::kString,
                                 .description = "",
                                 .required = false,
                                 .default_value = "a\tb"});
  odd.params.push_back(ParamSpec{.name = "n",
                                 .type = ParamSpec::Type::kInt,
                                 .description = "n",
                                 .required = true,
                                 .min = INT64_MIN,
                                 .max = INT64_MAX});
  kinds.push_back(odd);
  const std::string text = EncodeKindCatalog(kinds);
  absl::StatusOr<std::vector<KindSpec>> back = DecodeKindCatalog(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  ASSERT_EQ(back->size(), kinds.size());
  for (size_t i = 0; i < kinds.size(); ++i) {
    const KindSpec& a = kinds[i];
    const KindSpec& b = (*back)[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.description, b.description);
    EXPECT_EQ(a.source, b.source);
    EXPECT_EQ(a.output_bound.bounded, b.output_bound.bounded) << a.name;
    EXPECT_EQ(a.output_bound.fixed_bytes, b.output_bound.fixed_bytes) << a.name;
    EXPECT_EQ(a.output_bound.per_input_kib, b.output_bound.per_input_kib) << a.name;
    EXPECT_EQ(b.pool, Pool::kCpu);
    EXPECT_TRUE(b.run == nullptr);
    ASSERT_EQ(a.params.size(), b.params.size()) << a.name;
    for (size_t j = 0; j < a.params.size(); ++j) {
      EXPECT_EQ(a.params[j].name, b.params[j].name);
      EXPECT_EQ(a.params[j].type, b.params[j].type);
      EXPECT_EQ(a.params[j].description, b.params[j].description);
      EXPECT_EQ(a.params[j].required, b.params[j].required);
      EXPECT_EQ(a.params[j].default_value, b.params[j].default_value);
      EXPECT_EQ(a.params[j].min, b.params[j].min);
      EXPECT_EQ(a.params[j].max, b.params[j].max);
    }
  }
  EXPECT_EQ(KindCatalogDigest(text), KindCatalogDigest(EncodeKindCatalog(*back)));
  EXPECT_EQ(KindCatalogDigest(text).size(), 32u);
}

TEST(KindCatalog, DigestsDifferWhenAnythingDiffers) {
  std::vector<KindSpec> kinds = CpuKinds();
  const std::string before = KindCatalogDigest(EncodeKindCatalog(kinds));
  kinds[2].params[0].max = 46;
  EXPECT_NE(KindCatalogDigest(EncodeKindCatalog(kinds)), before);
}

TEST(KindCatalog, RejectsWhatIsNotACompleteCatalog) {
  const std::string good = EncodeKindCatalog(CpuKinds());
  const std::string truncated = good.substr(0, good.size() / 2);
  for (const std::string& bad :
       {std::string(""), std::string("hello\n"), truncated, good + "kind\tx\n",
        std::string("crunch-kinds 1\nparam\tn\tint\t0\t\t0\t1\td\nend\t0\n"),
        std::string("crunch-kinds 1\nkind\tx\td\ts\t2\t0\t0\nend\t1\n"),
        std::string("crunch-kinds 1\nend\t3\n")}) {
    absl::StatusOr<std::vector<KindSpec>> kinds = DecodeKindCatalog(bad);
    EXPECT_EQ(kinds.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace crunch::daemon
