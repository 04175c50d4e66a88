#include "daemon/kinds/plugin_kinds.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "daemon/kinds/cpu_kinds.h"

namespace crunch::daemon {
namespace {

std::span<const std::byte> AsBytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

int Echo(crunch_task* task) {
  const crunch_param* suffix = crunch_task_param(task, "suffix");
  if (crunch_task_write(task, task->input, task->input_size) != CRUNCH_OK) {
    return CRUNCH_RESOURCE_EXHAUSTED;
  }
  return crunch_task_write(task, suffix->value, suffix->value_size);
}

int FailsWithMessage(crunch_task* task) {
  return crunch_task_fail(task, CRUNCH_INVALID_ARGUMENT, "bad input: %d bytes",
                          static_cast<int>(task->input_size));
}
int FailsSilently(crunch_task*) { return CRUNCH_DATA_LOSS; }
int ReturnsNonsense(crunch_task*) { return 99; }
int IgnoresAFailedWrite(crunch_task* task) {
  (void)crunch_task_write_str(task, "far too long for the output");
  return CRUNCH_OK;
}
int ReportsStop(crunch_task* task) { return crunch_task_should_stop(task); }
int ReadsInts(crunch_task* task) {
  char text[64];
  snprintf(text, sizeof(text), "%lld/%d/%d", static_cast<long long>(task->params[0].int_value),
           task->params[0].present, task->params[1].present);
  return crunch_task_write_str(task, text);
}

constexpr crunch_param_spec kSuffix[] = {{.name = "suffix",
                                          .type = CRUNCH_PARAM_STRING,
                                          .description = "appended",
                                          .required = 0,
                                          .default_value = "!",
                                          .min = 0,
                                          .max = 0}};
constexpr crunch_param_spec kInts[] = {
    {.name = "n",
     .type = CRUNCH_PARAM_INT,
     .description = "a number",
     .required = 0,
     .default_value = "7",
     .min = 0,
     .max = 10},
    {.name = "m",
     .type = CRUNCH_PARAM_INT,
     .description = "optional, no default",
     .required = 0,
     .default_value = nullptr,
     .min = 0,
     .max = 10},
};

crunch_kind MakeKind(const char* name, crunch_run_fn run, const crunch_param_spec* params = nullptr,
                     size_t param_count = 0) {
  return crunch_kind{.name = name,
                     .description = "test kind",
                     .params = params,
                     .param_count = param_count,
                     .run = run,
                     .output = {.bounded = 1, .fixed_bytes = 10, .per_input_kib = 2048}};
}

crunch_plugin MakePlugin(const crunch_kind* kinds, size_t count) {
  return crunch_plugin{.abi_version = CRUNCH_PLUGIN_ABI_VERSION,
                       .name = "test",
                       .version = "1",
                       .kinds = kinds,
                       .kind_count = count};
}

absl::StatusOr<std::string> RunOne(const crunch_kind& kind, std::string_view input,
                                   const std::map<std::string, std::string>& given = {},
                                   uint64_t limit = 1 << 20, TaskContext context = {}) {
  const crunch_plugin plugin = MakePlugin(&kind, 1);
  absl::StatusOr<std::vector<KindSpec>> specs = KindsFromPlugin(plugin, "plugin test 1 (x.so)");
  if (!specs.ok()) return specs.status();
  absl::StatusOr<TaskParams> params = ValidateParams(specs->front(), given);
  if (!params.ok()) return params.status();
  StringOutput output(limit);
  if (absl::Status s = specs->front().run(AsBytes(input), *params, context, output); !s.ok()) {
    return s;
  }
  return output.Take();
}

TEST(PluginKinds, WrapsEachKindWithItsSchemaBoundAndSource) {
  const crunch_kind kinds[] = {MakeKind("text.echo", Echo, kSuffix, 1),
                               MakeKind("ints", ReadsInts, kInts, 2)};
  absl::StatusOr<std::vector<KindSpec>> specs =
      KindsFromPlugin(MakePlugin(kinds, 2), "plugin test 1 (x.so)");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  const KindSpec& echo = (*specs)[0];
  EXPECT_EQ(echo.name, "text.echo");
  EXPECT_EQ(echo.pool, Pool::kCpu);
  EXPECT_EQ(echo.source, "plugin test 1 (x.so)");
  ASSERT_EQ(echo.params.size(), 1u);
  EXPECT_EQ(echo.params[0].type, ParamSpec::Type::kString);
  EXPECT_EQ(echo.params[0].default_value, "!");
  EXPECT_EQ(OutputCapacity(echo, 100, KernelLimits{}), 10u + 200u);
  EXPECT_EQ(OutputCapacity(echo, 100, KernelLimits{.max_output_bytes = 50}), 50u);
  EXPECT_EQ((*specs)[1].params[0].min, 0);
  EXPECT_EQ((*specs)[1].params[0].max, 10);
}

TEST(PluginKinds, RunsTheKernelWithValidatedParams) {
  const crunch_kind echo = MakeKind("text.echo", Echo, kSuffix, 1);
  EXPECT_EQ(RunOne(echo, "hi").value_or("?"), "hi!");
  EXPECT_EQ(RunOne(echo, "hi", {{"suffix", std::string("\0?", 2)}}).value_or("?"),
            std::string("hi\0?", 4));
  const crunch_kind ints = MakeKind("ints", ReadsInts, kInts, 2);
  EXPECT_EQ(RunOne(ints, "").value_or("?"), "7/1/0");
  EXPECT_EQ(RunOne(ints, "", {{"n", "3"}, {"m", "1"}}).value_or("?"), "3/1/1");
}

TEST(PluginKinds, PassesTheKernelsStatusAndMessageThrough) {
  absl::StatusOr<std::string> out = RunOne(MakeKind("k", FailsWithMessage), "abc");
  EXPECT_EQ(out.status(), absl::InvalidArgumentError("bad input: 3 bytes"));
  out = RunOne(MakeKind("k", FailsSilently), "");
  EXPECT_EQ(out.status(), absl::DataLossError("kind 'k' failed with DATA_LOSS and no message"));
  out = RunOne(MakeKind("k", ReturnsNonsense), "");
  EXPECT_EQ(out.status(), absl::InternalError("kind 'k' returned status 99, which is not a "
                                              "crunch_status (0..16)"));
}

TEST(PluginKinds, AFailedWriteFailsTheTaskEvenIfTheKernelSaysOk) {
  absl::StatusOr<std::string> out = RunOne(MakeKind("k", IgnoresAFailedWrite), "", {}, 4);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(out.status().message().find("max_output_bytes"), std::string::npos) << out.status();
}

TEST(PluginKinds, ShouldStopSaysWhy) {
  const crunch_kind kind = MakeKind("k", ReportsStop);
  EXPECT_TRUE(RunOne(kind, "").ok());
  TaskContext late{.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1)};
  EXPECT_EQ(RunOne(kind, "", {}, 1 << 20, late).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  const std::atomic<bool> cancelled{true};
  TaskContext context{.cancelled = &cancelled};
  EXPECT_EQ(RunOne(kind, "", {}, 1 << 20, context).status().code(), absl::StatusCode::kCancelled);
}

absl::Status CheckTable(const crunch_plugin& plugin) {
  return KindsFromPlugin(plugin, "plugin test 1 (x.so)").status();
}

TEST(PluginKinds, RefusesAnotherAbiVersionNamingBoth) {
  const crunch_kind kind = MakeKind("k", Echo);
  crunch_plugin plugin = MakePlugin(&kind, 1);
  plugin.abi_version = 999;
  const absl::Status s = CheckTable(plugin);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "plugin test 1 (x.so): built for crunch plugin ABI version 999; this crunchd loads "
            "version 1 only (rebuild the plugin against this crunchd's crunch/plugin.h)");
}

TEST(PluginKinds, RefusesMalformedTablesNamingTheField) {
  struct Case {
    crunch_kind kind;
    std::string message;
  };
  crunch_param_spec bad_default = kInts[0];
  bad_default.default_value = "11";
  crunch_param_spec inverted = kInts[0];
  inverted.min = 5;
  inverted.max = 4;
  inverted.default_value = nullptr;
  crunch_param_spec bad_type = kInts[0];
  bad_type.type = static_cast<crunch_param_type>(7);
  crunch_param_spec bad_name = kInts[0];
  bad_name.name = "N!";
  const crunch_param_spec twice[] = {kInts[0], kInts[0]};
  const Case cases[] = {
      {MakeKind("Upper", Echo), "kind name 'Upper' is not allowed"},
      {MakeKind(nullptr, Echo), "kind name NULL is not allowed"},
      {MakeKind("k", nullptr), "kind 'k': run is NULL"},
      {MakeKind("k", Echo, nullptr, 1), "kind 'k': params is NULL but param_count is 1"},
      {MakeKind("k", Echo, kInts, 65), "kind 'k': declares 65 params; at most 64"},
      {MakeKind("k", Echo, &bad_default, 1),
       "kind 'k': param 'n' has default '11', which is not an integer in 0..10"},
      {MakeKind("k", Echo, &inverted, 1), "kind 'k': param 'n' has min 5 above its max 4"},
      {MakeKind("k", Echo, &bad_type, 1), "kind 'k': param 'n' has type 7"},
      {MakeKind("k", Echo, &bad_name, 1), "kind 'k': param name 'N!' is not allowed"},
      {MakeKind("k", Echo, twice, 2), "kind 'k': param 'n' is declared twice"},
  };
  for (const Case& c : cases) {
    const absl::Status s = CheckTable(MakePlugin(&c.kind, 1));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_NE(s.message().find(c.message), std::string::npos) << s << "\nwanted: " << c.message;
    EXPECT_EQ(s.message().rfind("plugin test 1 (x.so): ", 0), 0u) << s;
  }
  const crunch_kind same[] = {MakeKind("k", Echo), MakeKind("k", Echo)};
  EXPECT_NE(CheckTable(MakePlugin(same, 2)).message().find("kind 'k' is declared twice"),
            std::string::npos);
}

TEST(PluginKinds, TheBuiltInTableIsValid) {
  absl::StatusOr<std::vector<KindSpec>> specs = KindsFromPlugin(*BuiltinCpuPlugin(), "built-in");
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_EQ(specs->size(), 7u);
}

}  // namespace
}  // namespace crunch::daemon
