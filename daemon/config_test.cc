#include "daemon/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace crunch::daemon {

// Failed comparisons print the config as TOML instead of bytes.
void PrintTo(const Config& config, std::ostream* os) { *os << "\n" << DescribeConfig(config); }

namespace {

constexpr std::string_view kOrigin = "crunchd.toml";

::testing::AssertionResult Contains(absl::string_view text, absl::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

absl::Status ParseError(std::string_view text) { return ParseConfig(text, kOrigin).status(); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Sets (or, with nullopt, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value.has_value()) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_.has_value()) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A value other than the default for every key.
constexpr std::string_view kEveryKey = R"(
[server]
listen = ["unix:/run/x/crunchd.sock", "127.0.0.1:7000", "[::1]:7001"]
drain_grace_ms = 0
result_ttl_ms = 1000
max_kept_results = 7
allow_uids = [0, 1000, 4294967294]
allow_gids = [998]
tls_cert_file = "/etc/crunchd/tls/cert.pem"
tls_key_file = "/etc/crunchd/tls/key.pem"
tls_client_ca_file = "/etc/crunchd/tls/clients.pem"
token_file = "/etc/crunchd/token"

[cpu]
workers = 3
queue_capacity = 11
task_timeout_ms = 12
in_flight_per_worker = 64
spin_ns = 0
arena_bytes = 2_147_483_648
worker_path = "/opt/crunch/bin/crunch_worker"
max_tasks_per_worker = 1000
max_worker_rss_bytes = 268435456
quarantine_after = 0
quarantine_ms = 500
worker_address_space_bytes = 536870912
worker_cpu_seconds = 3600
worker_nice = 5
worker_open_files = 64
seccomp = false

[io]
threads = 5
queue_capacity = 13
task_timeout_ms = 14
data_dir = "/srv/crunch"
http_allow = ["example.com", "api.example.com:8443", "[2001:db8::1]:80", "*"]
http_max_redirects = 0
http_connect_timeout_ms = 15

[limits]
max_payload_bytes = 0
max_output_bytes = 1024
max_queued_bytes = 2097152
max_params = 3
max_param_bytes = 100

[log]
level = "debug"
format = "json"

[metrics]
listen = "127.0.0.1:9464"

[plugins]
paths = ["/usr/lib/crunch/plugins/a.so", "/opt/b.so"]
init_timeout_ms = 60000
)";

Config EveryKeyConfig() {
  Config c;
  c.server.listen = {"unix:/run/x/crunchd.sock", "127.0.0.1:7000", "[::1]:7001"};
  c.server.drain_grace_ms = 0;
  c.server.result_ttl_ms = 1000;
  c.server.max_kept_results = 7;
  c.server.allow_uids = {0, 1000, 4294967294u};
  c.server.allow_gids = {998};
  c.server.tls_cert_file = "/etc/crunchd/tls/cert.pem";
  c.server.tls_key_file = "/etc/crunchd/tls/key.pem";
  c.server.tls_client_ca_file = "/etc/crunchd/tls/clients.pem";
  c.server.token_file = "/etc/crunchd/token";
  c.cpu.workers = 3;
  c.cpu.queue_capacity = 11;
  c.cpu.task_timeout_ms = 12;
  c.cpu.in_flight_per_worker = 64;
  c.cpu.spin_ns = 0;
  c.cpu.arena_bytes = 2ull << 30;
  c.cpu.worker_path = "/opt/crunch/bin/crunch_worker";
  c.cpu.max_tasks_per_worker = 1000;
  c.cpu.max_worker_rss_bytes = 256ull << 20;
  c.cpu.quarantine_after = 0;
  c.cpu.quarantine_ms = 500;
  c.cpu.worker_address_space_bytes = 512ull << 20;
  c.cpu.worker_cpu_seconds = 3600;
  c.cpu.worker_nice = 5;
  c.cpu.worker_open_files = 64;
  c.cpu.seccomp = false;
  c.io.threads = 5;
  c.io.queue_capacity = 13;
  c.io.task_timeout_ms = 14;
  c.io.data_dir = "/srv/crunch";
  c.io.http_allow = {"example.com", "api.example.com:8443", "[2001:db8::1]:80", "*"};
  c.io.http_max_redirects = 0;
  c.io.http_connect_timeout_ms = 15;
  c.limits.max_payload_bytes = 0;
  c.limits.max_output_bytes = 1024;
  c.limits.max_queued_bytes = 2ull << 20;
  c.limits.max_params = 3;
  c.limits.max_param_bytes = 100;
  c.log.level = "debug";
  c.log.format = "json";
  c.metrics.listen = "127.0.0.1:9464";
  c.plugins.paths = {"/usr/lib/crunch/plugins/a.so", "/opt/b.so"};
  c.plugins.init_timeout_ms = 60000;
  return c;
}

// Real files for the [server] keys that name files, which Finalize reads: a
// temporary directory with PEM-looking files and a token of mode 0600.
class SecurityFiles {
 public:
  SecurityFiles() {
    char tmpl[] = "/tmp/crunchd-config-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    for (const char* name : {"cert.pem", "key.pem", "ca.pem"}) {
      std::ofstream(Path(name)) << "-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n";
    }
    Write("token", "0123456789abcdef0123456789abcdef\n", 0600);
  }
  ~SecurityFiles() {
    for (const char* name : {"cert.pem", "key.pem", "ca.pem", "token"}) {
      std::remove(Path(name).c_str());
    }
    ::rmdir(dir_.c_str());
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  void Write(const std::string& name, const std::string& text, mode_t mode) const {
    std::ofstream(Path(name)) << text;
    ::chmod(Path(name).c_str(), mode);
  }
  // Points every file key of `server` here.
  void Use(ServerConfig* server) const {
    server->tls_cert_file = Path("cert.pem");
    server->tls_key_file = Path("key.pem");
    server->tls_client_ca_file = Path("ca.pem");
    server->token_file = Path("token");
  }

 private:
  std::string dir_;
};

// --- ParseConfig --------------------------------------------------------------

TEST(ParseConfig, EmptyTextGivesDefaults) {
  absl::StatusOr<Config> config = ParseConfig("", kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
}

TEST(ParseConfig, EmptyTablesGiveDefaults) {
  absl::StatusOr<Config> config =
      ParseConfig("[server]\n[cpu]\n[io]\n[limits]\n[log]\n[metrics]\n# a comment\n", kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
}

TEST(ParseConfig, ReadsEveryKey) {
  absl::StatusOr<Config> config = ParseConfig(kEveryKey, kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, EveryKeyConfig());
}

TEST(ParseConfig, LeavesOtherKeysAtTheirDefaults) {
  absl::StatusOr<Config> config = ParseConfig("[cpu]\nworkers = 4\n", kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  Config expected;
  expected.cpu.workers = 4;
  EXPECT_EQ(*config, expected);
}

TEST(ParseConfig, AcceptsDottedKeysAndInlineTables) {
  absl::StatusOr<Config> config =
      ParseConfig("cpu.workers = 4\nlog = { level = \"warn\" }\n", kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cpu.workers, 4u);
  EXPECT_EQ(config->log.level, "warn");
}

TEST(ParseConfig, RejectsUnknownKeyNamingTheTable) {
  absl::Status status = ParseError("[cpu]\nworkers = 2\n\nworker = 4\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "crunchd.toml:4: unknown key 'worker' in [cpu]; known keys: workers, queue_capacity, "
            "task_timeout_ms, in_flight_per_worker, spin_ns, arena_bytes, worker_path, "
            "max_tasks_per_worker, max_worker_rss_bytes, quarantine_after, quarantine_ms, "
            "worker_address_space_bytes, worker_cpu_seconds, worker_nice, worker_open_files, "
            "seccomp");
}

TEST(ParseConfig, UnknownKeySaysWhichTableItBelongsIn) {
  absl::Status status = ParseError("[cpu]\nthreads = 4\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(status.message(),
                       "crunchd.toml:2: unknown key 'threads' in [cpu] "
                       "('threads' belongs in [io]); known keys: workers"));
}

TEST(ParseConfig, RejectsUnknownTable) {
  absl::Status status = ParseError("[cpu]\nworkers = 1\n[cpus]\nworkers = 2\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "crunchd.toml:3: unknown table [cpus]; known tables: server, cpu, io, limits, log, "
            "metrics, plugins");
}

TEST(ParseConfig, RejectsKeyOutsideAnyTable) {
  absl::Status status = ParseError("workers = 2\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "crunchd.toml:1: unknown key 'workers' outside any table ('workers' belongs in [cpu]); "
            "keys go in one of the tables server, cpu, io, limits, log, metrics, plugins");
}

TEST(ParseConfig, RejectsATableThatIsNotATable) {
  EXPECT_EQ(ParseError("cpu = 4\n").message(), "crunchd.toml:1: [cpu] must be a table, got 4");
  EXPECT_EQ(ParseError("[[cpu]]\nworkers = 1\n").message(),
            "crunchd.toml:1: [cpu] must be a table, got an array");
}

TEST(ParseConfig, RejectsWrongTypeNamingKeyAndAllowedValues) {
  EXPECT_EQ(ParseError("[cpu]\nworkers = \"4\"\n").message(),
            "crunchd.toml:2: [cpu] workers must be an integer in 1..1024 (or 0 for one per core), "
            "got \"4\" (a string)");
  EXPECT_EQ(ParseError("[io]\nthreads = 1.5\n").message(),
            "crunchd.toml:2: [io] threads must be an integer in 1..1024, got 1.5 (a float)");
  EXPECT_EQ(ParseError("[server]\nlisten = \"unix:/run/x.sock\"\n").message(),
            "crunchd.toml:2: [server] listen must be an array of strings, got "
            "\"unix:/run/x.sock\" (a string)");
  EXPECT_EQ(ParseError("[io]\nhttp_allow = [\"a.com\", 80]\n").message(),
            "crunchd.toml:2: [io] http_allow must be an array of strings; item 1 is 80");
  EXPECT_EQ(ParseError("[cpu]\nworker_path = true\n").message(),
            "crunchd.toml:2: [cpu] worker_path must be an absolute path or \"\" for the default, "
            "got true (a boolean)");
  EXPECT_EQ(ParseError("[log]\nlevel = [\"info\"]\n").message(),
            "crunchd.toml:2: [log] level must be one of trace, debug, info, warn, error, critical, "
            "off (a string); got an array");
}

TEST(ParseConfig, RejectsOutOfRangeNamingKeyAndRange) {
  absl::Status status = ParseError("[cpu]\nworkers = 5000\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "crunchd.toml:2: [cpu] workers must be an integer in 1..1024 (or 0 for one per core), "
            "got 5000");
  EXPECT_EQ(ParseError("[server]\nresult_ttl_ms = 999\n").message(),
            "crunchd.toml:2: [server] result_ttl_ms must be an integer in 1000..86400000, got 999");
  EXPECT_EQ(ParseError("[io]\nqueue_capacity = -1\n").message(),
            "crunchd.toml:2: [io] queue_capacity must be an integer in 1..10000000, got -1");
  EXPECT_EQ(ParseError("[cpu]\narena_bytes = 137438953472\n").message(),
            "crunchd.toml:2: [cpu] arena_bytes must be an integer in 1048576..68719476736 "
            "(1 MiB..64 GiB), got 137438953472 (128 GiB)");
  EXPECT_EQ(ParseError("[limits]\nmax_output_bytes = 1023\n").message(),
            "crunchd.toml:2: [limits] max_output_bytes must be an integer in 1024..1073741824 "
            "(1 KiB..1 GiB), got 1023");
  EXPECT_EQ(ParseError("[limits]\nmax_params = 0\n").message(),
            "crunchd.toml:2: [limits] max_params must be an integer in 1..1024, got 0");
  EXPECT_EQ(ParseError("[limits]\nmax_param_bytes = 1048577\n").message(),
            "crunchd.toml:2: [limits] max_param_bytes must be an integer in 1..1048576 "
            "(1 bytes..1 MiB), got 1048577");
  EXPECT_EQ(ParseError("[io]\nhttp_max_redirects = 21\n").message(),
            "crunchd.toml:2: [io] http_max_redirects must be an integer in 0..20, got 21");
  EXPECT_EQ(ParseError("[io]\nhttp_connect_timeout_ms = 0\n").message(),
            "crunchd.toml:2: [io] http_connect_timeout_ms must be an integer in 1..600000, got 0");
  // A value that would wrap around in a uint32_t.
  EXPECT_EQ(ParseError("[cpu]\nqueue_capacity = 4294967297\n").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseConfig, RejectsBadWorkerLimitsSayingWhatIsAllowed) {
  EXPECT_EQ(ParseError("[cpu]\nworker_nice = 20\n").message(),
            "crunchd.toml:2: [cpu] worker_nice must be an integer in 0..19, got 20");
  EXPECT_EQ(ParseError("[cpu]\nworker_address_space_bytes = 1048576\n").message(),
            "crunchd.toml:2: [cpu] worker_address_space_bytes must be an integer in "
            "16777216..1099511627776 (16 MiB..1024 GiB) (or 0 for no limit), got 1048576 (1 MiB)");
  EXPECT_EQ(ParseError("[cpu]\nworker_cpu_seconds = 1\n").message(),
            "crunchd.toml:2: [cpu] worker_cpu_seconds must be an integer in 2..31536000 "
            "(or 0 for no limit), got 1");
  EXPECT_EQ(ParseError("[cpu]\nworker_open_files = 3\n").message(),
            "crunchd.toml:2: [cpu] worker_open_files must be an integer in 16..1048576 "
            "(or 0 for no change), got 3");
  EXPECT_EQ(ParseError("[cpu]\nquarantine_after = 1001\n").message(),
            "crunchd.toml:2: [cpu] quarantine_after must be an integer in 1..1000 "
            "(or 0 for never quarantine), got 1001");
  EXPECT_EQ(ParseError("[cpu]\nquarantine_ms = 0\n").message(),
            "crunchd.toml:2: [cpu] quarantine_ms must be an integer in 1..86400000, got 0");
  EXPECT_EQ(ParseError("[plugins]\ninit_timeout_ms = 99\n").message(),
            "crunchd.toml:2: [plugins] init_timeout_ms must be an integer in 100..600000, got 99");
  EXPECT_EQ(ParseError("[cpu]\nseccomp = \"no\"\n").message(),
            "crunchd.toml:2: [cpu] seccomp must be true or false, got \"no\" (a string)");
}

TEST(ParseConfig, AcceptsTheEndsOfEachRange) {
  absl::StatusOr<Config> low = ParseConfig(
      "[server]\ndrain_grace_ms = 0\nresult_ttl_ms = 1000\nmax_kept_results = 1\n"
      "[cpu]\nworkers = 1\nqueue_capacity = 1\ntask_timeout_ms = 1\nin_flight_per_worker = 1\n"
      "spin_ns = 0\narena_bytes = 1048576\n"
      "[io]\nthreads = 1\nqueue_capacity = 1\ntask_timeout_ms = 1\nhttp_max_redirects = 0\n"
      "http_connect_timeout_ms = 1\n"
      "[limits]\nmax_payload_bytes = 0\nmax_output_bytes = 1024\nmax_queued_bytes = 1048576\n"
      "max_params = 1\nmax_param_bytes = 1\n",
      kOrigin);
  EXPECT_TRUE(low.ok()) << low.status();
  absl::StatusOr<Config> high = ParseConfig(
      "[server]\ndrain_grace_ms = 3600000\nresult_ttl_ms = 86400000\nmax_kept_results = 10000000\n"
      "[cpu]\nworkers = 1024\nqueue_capacity = 10000000\ntask_timeout_ms = 86400000\n"
      "in_flight_per_worker = 64\nspin_ns = 10000000\narena_bytes = 68719476736\n"
      "[io]\nthreads = 1024\nqueue_capacity = 10000000\ntask_timeout_ms = 86400000\n"
      "http_max_redirects = 20\nhttp_connect_timeout_ms = 600000\n"
      "[limits]\nmax_payload_bytes = 1073741824\nmax_output_bytes = 1073741824\n"
      "max_queued_bytes = 1099511627776\nmax_params = 1024\nmax_param_bytes = 1048576\n",
      kOrigin);
  ASSERT_TRUE(high.ok()) << high.status();
  EXPECT_EQ(high->cpu.arena_bytes, 64ull << 30);
}

TEST(ParseConfig, RejectsBadLogLevelListingTheAllowedOnes) {
  absl::Status status = ParseError("[log]\nlevel = \"verbose\"\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "crunchd.toml:2: [log] level must be one of trace, debug, info, warn, error, critical, "
            "off; got \"verbose\"");
}

TEST(ParseConfig, RejectsBadLogFormatListingTheAllowedOnes) {
  EXPECT_EQ(ParseError("[log]\nformat = \"xml\"\n").message(),
            "crunchd.toml:2: [log] format must be one of text, json; got \"xml\"");
}

TEST(ParseConfig, RejectsBadListenAddressNamingTheKey) {
  absl::Status status =
      ParseError("[server]\nlisten = [\n  \"unix:/ok.sock\",\n  \"localhost\",\n]\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "crunchd.toml:4: [server] listen: listen address 'localhost' has no port; allowed "
            "forms: unix:/absolute/path, unix:///absolute/path, host:port, [ipv6]:port "
            "(port 1..65535)");
}

TEST(ParseConfig, RejectsDuplicateListenAddress) {
  EXPECT_EQ(ParseError("[server]\nlisten = [\"h:1\", \"h:1\"]\n").message(),
            "crunchd.toml:2: [server] listen lists \"h:1\" more than once");
}

TEST(ParseConfig, RejectsBadMetricsListenSayingWhatIsAllowed) {
  for (const char* bad : {"9464", "unix:/run/m.sock", "http://127.0.0.1:9464", "::1:9464"}) {
    absl::Status status = ParseError(absl::StrCat("[metrics]\nlisten = \"", bad, "\"\n"));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(Contains(status.message(), "crunchd.toml:2: [metrics] listen: '")) << status;
    EXPECT_TRUE(Contains(status.message(), "\"127.0.0.1:9464\"")) << status;
  }
  EXPECT_TRUE(Contains(ParseError("[metrics]\nlisten = 9464\n").message(),
                       "[metrics] listen must be a string, got"));
  absl::StatusOr<Config> off = ParseConfig("[metrics]\nlisten = \"\"\n", kOrigin);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->metrics.listen, "");
}

TEST(ParseConfig, RejectsRelativePaths) {
  EXPECT_EQ(ParseError("[io]\ndata_dir = \"state\"\n").message(),
            "crunchd.toml:2: [io] data_dir must be an absolute path or \"\" for the default, got "
            "\"state\"");
  EXPECT_EQ(ParseError("[cpu]\nworker_path = \"bin/crunch_worker\"\n").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseConfig, RejectsBadHttpAllowEntries) {
  EXPECT_EQ(ParseError("[io]\nhttp_allow = [\"https://example.com/\"]\n").message(),
            "crunchd.toml:2: [io] http_allow: 'https://example.com/' is a URL, not a host; "
            "allowed: \"host\", \"host:port\", \"[ipv6]\", \"[ipv6]:port\", or \"*\" "
            "for any host");
  EXPECT_TRUE(Contains(ParseError("[io]\nhttp_allow = [\"example.com:0\"]\n").message(),
                       "'example.com:0' has port '0', which is not in 1..65535"));
  EXPECT_TRUE(Contains(ParseError("[io]\nhttp_allow = [\"\"]\n").message(), "'' is empty"));
  EXPECT_TRUE(Contains(ParseError("[io]\nhttp_allow = [\"::1\"]\n").message(),
                       "'::1' has an IPv6 address without the brackets around it"));
}

TEST(ParseConfig, SyntaxErrorGivesLineAndColumn) {
  absl::Status status = ParseError("[cpu]\nworkers = 4\nspin_ns = = 3\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(status.message(), "crunchd.toml:3:"));
  EXPECT_TRUE(Contains(status.message(), "TOML syntax error: "));
}

TEST(ParseConfig, DuplicateKeyIsASyntaxError) {
  EXPECT_TRUE(
      Contains(ParseError("[cpu]\nworkers = 4\nworkers = 5\n").message(), "crunchd.toml:3:"));
}

// --- ValidateListenAddress --------------------------------------------------------

TEST(ValidateListenAddress, AcceptsTheAllowedForms) {
  for (std::string_view address :
       {"unix:/run/crunchd/crunchd.sock", "unix:///run/crunchd/crunchd.sock", "localhost:50051",
        "0.0.0.0:1", "my-host.example.com:65535", "[::]:50051", "[::1]:80", "[fe80::1%eth0]:80"}) {
    EXPECT_TRUE(ValidateListenAddress(address).ok()) << ValidateListenAddress(address);
  }
}

TEST(ValidateListenAddress, RejectsOthersSayingWhatIsAllowed) {
  for (std::string_view address : {"",
                                   "unix:",
                                   "unix:relative.sock",
                                   "unix://relative.sock",
                                   "unix:/run/crunchd/",
                                   "localhost",
                                   "localhost:",
                                   ":50051",
                                   "localhost:0",
                                   "localhost:65536",
                                   "localhost:http",
                                   "localhost:+80",
                                   "::1:80",
                                   "[::1]",
                                   "[::1]80",
                                   "[::1:80",
                                   "[nothost]:80",
                                   "http://localhost:80",
                                   "a b:80",
                                   "/run/crunchd.sock",
                                   "host/x:80"}) {
    absl::Status status = ValidateListenAddress(address);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << "'" << address << "'";
    EXPECT_TRUE(Contains(status.message(), "allowed forms: unix:/absolute/path")) << address;
  }
}

TEST(ValidateListenAddress, RejectsSocketPathTooLongForSockaddrUn) {
  const std::string longest = "/" + std::string(106, 'x');
  EXPECT_TRUE(ValidateListenAddress("unix:" + longest).ok());
  EXPECT_TRUE(Contains(ValidateListenAddress("unix:" + longest + "x").message(), "at most 107"));
}

// --- DescribeConfig ---------------------------------------------------------------

TEST(DescribeConfig, ParsesBackToTheSameConfig) {
  Config unusual = EveryKeyConfig();
  unusual.cpu.worker_path = "/opt/with \"quotes\" and \\ and\ttab";
  for (const Config& config : {Config{}, EveryKeyConfig(), unusual}) {
    absl::StatusOr<Config> parsed = ParseConfig(DescribeConfig(config), "described");
    ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << DescribeConfig(config);
    EXPECT_EQ(*parsed, config);
  }
}

TEST(DescribeConfig, GivesOneLinePerKey) {
  const std::string text = DescribeConfig(Config{});
  EXPECT_TRUE(Contains(text, "[cpu]\nworkers = 0\n"));
  EXPECT_TRUE(Contains(text, "\narena_bytes = 1073741824\n"));
  EXPECT_TRUE(Contains(text, "\nlisten = []\n"));
  EXPECT_TRUE(Contains(text, "\nlevel = \"info\"\n"));
}

// --- LoadConfigFile ----------------------------------------------------------------

TEST(LoadConfigFile, ReadsAndParsesTheFile) {
  const std::string path = ::testing::TempDir() + "config_test_reads.toml";
  std::ofstream(path) << "[io]\nthreads = 3\n";
  absl::StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->io.threads, 3u);
  std::remove(path.c_str());
}

TEST(LoadConfigFile, NamesThePathInParseErrors) {
  const std::string path = ::testing::TempDir() + "config_test_bad.toml";
  std::ofstream(path) << "\n[io]\nthreads = 0\n";
  EXPECT_TRUE(Contains(LoadConfigFile(path).status().message(),
                       path + ":3: [io] threads must be an integer in 1..1024, got 0"));
  std::remove(path.c_str());
}

TEST(LoadConfigFile, MissingFileNamesThePathAndTheErrno) {
  absl::Status status = LoadConfigFile("/nonexistent/crunchd.toml").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "cannot open config file '/nonexistent/crunchd.toml': No such file or directory");
}

TEST(LoadConfigFile, RejectsAFileLargerThanOneMiB) {
  const std::string path = ::testing::TempDir() + "config_test_large.toml";
  std::ofstream(path) << "# " << std::string(1 << 20, 'x') << "\n";
  absl::Status status = LoadConfigFile(path).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            absl::StrCat("config file '", path, "' is larger than 1 MiB; is it the right file?"));
  std::remove(path.c_str());
}

TEST(LoadConfigFile, DirectoryIsAnError) {
  absl::Status status = LoadConfigFile("/").status();
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(Contains(status.message(), "'/': Is a directory"));
}

// --- Finalize ----------------------------------------------------------------------

TEST(Finalize, OverridesWinOverTheFile) {
  absl::StatusOr<Config> config = ParseConfig(kEveryKey, kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  const SecurityFiles files;
  files.Use(&config->server);
  ConfigOverrides overrides;
  overrides.listen = {"127.0.0.1:9000"};
  overrides.workers = 7;
  overrides.io_threads = 9;
  overrides.log_level = "error";
  const absl::Status finalized = Finalize(&*config, overrides);
  ASSERT_TRUE(finalized.ok()) << finalized;

  Config expected = EveryKeyConfig();
  files.Use(&expected.server);
  expected.server.listen = {"127.0.0.1:9000"};
  expected.cpu.workers = 7;
  expected.io.threads = 9;
  expected.log.level = "error";
  EXPECT_EQ(*config, expected);
}

TEST(Finalize, UnsetOverridesKeepTheFile) {
  absl::StatusOr<Config> config = ParseConfig(kEveryKey, kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  const SecurityFiles files;
  files.Use(&config->server);
  const absl::Status finalized = Finalize(&*config, ConfigOverrides{});
  ASSERT_TRUE(finalized.ok()) << finalized;
  Config expected = EveryKeyConfig();
  files.Use(&expected.server);
  EXPECT_EQ(*config, expected);
}

TEST(ParseConfig, RejectsBadIdLists) {
  EXPECT_EQ(ParseError("[server]\nallow_uids = 1000\n").message(),
            "crunchd.toml:2: [server] allow_uids must be a list of integers in 0..4294967294, "
            "got 1000");
  EXPECT_EQ(ParseError("[server]\nallow_gids = [1, -1]\n").message(),
            "crunchd.toml:2: [server] allow_gids must be a list of integers in 0..4294967294; "
            "item 1 is -1");
  EXPECT_EQ(ParseError("[server]\nallow_uids = [4294967295]\n").message(),
            "crunchd.toml:2: [server] allow_uids must be a list of integers in 0..4294967294; "
            "item 0 is 4294967295");
  EXPECT_EQ(ParseError("[server]\nallow_uids = [7, 7]\n").message(),
            "crunchd.toml:2: [server] allow_uids lists 7 more than once");
  EXPECT_EQ(ParseError("[server]\ntoken_file = \"token\"\n").message(),
            "crunchd.toml:2: [server] token_file must be an absolute path or \"\" for the default, "
            "got \"token\"");
}

TEST(Finalize, TcpNeedsTls) {
  Config config;
  config.server.listen = {"unix:/run/x.sock", "[::1]:7000"};
  EXPECT_EQ(Finalize(&config, {}).message(),
            "listen address '[::1]:7000' is TCP, and crunchd serves TCP only over TLS: set "
            "[server] tls_cert_file and tls_key_file (PEM files), or listen on unix:/path sockets "
            "only");
  Config flag;
  EXPECT_TRUE(Contains(Finalize(&flag, {.listen = {"0.0.0.0:50051"}}).message(),
                       "listen address '0.0.0.0:50051' is TCP"));

  const SecurityFiles files;
  config.server.tls_cert_file = files.Path("cert.pem");
  EXPECT_EQ(Finalize(&config, {}).message(),
            "[server] tls_cert_file is set but tls_key_file is not; TLS needs both the "
            "certificate chain and its private key (PEM files)");
  config.server.tls_key_file = files.Path("key.pem");
  EXPECT_TRUE(Finalize(&config, {}).ok());
  config.server.tls_key_file = files.Path("token");
  EXPECT_TRUE(Contains(Finalize(&config, {}).message(),
                       "[server] tls_key_file '" + files.Path("token") + "' is not a PEM file"));
  config.server.tls_key_file = files.Path("missing.pem");
  const absl::Status missing = Finalize(&config, {});
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing.message(), "cannot open [server] tls_key_file '"));
}

TEST(ReadTokenFile, WantsAPrivateFileWithOneToken) {
  const SecurityFiles files;
  absl::StatusOr<std::string> token = ReadTokenFile(files.Path("token"));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "0123456789abcdef0123456789abcdef");

  files.Write("token", "0123456789abcdef0123456789abcdef", 0604);
  EXPECT_EQ(ReadTokenFile(files.Path("token")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(ReadTokenFile(files.Path("token")).status().message(),
                       "has mode 0604: other users can read or write it"));
  files.Write("token", "0123456789abcdef0123456789abcdef", 0602);
  EXPECT_FALSE(ReadTokenFile(files.Path("token")).ok());
  files.Write("token", "0123456789 abcdef0123456789abcdef", 0640);
  EXPECT_TRUE(Contains(ReadTokenFile(files.Path("token")).status().message(),
                       "including spaces or non-ASCII bytes"));
  files.Write("token", "\n", 0600);
  EXPECT_TRUE(Contains(ReadTokenFile(files.Path("token")).status().message(),
                       "must hold one token of 16..4096 visible ASCII characters"));
  EXPECT_EQ(ReadTokenFile(files.Path("missing")).status().code(), absl::StatusCode::kNotFound);
}

TEST(Finalize, RejectsBadOverridesNamingTheFlag) {
  Config config;
  EXPECT_EQ(Finalize(&config, {.workers = 5000}).message(),
            "--workers must be an integer in 1..1024 (or 0 for one per core), got 5000");
  EXPECT_EQ(Finalize(&config, {.io_threads = 0}).message(),
            "--io-threads must be an integer in 1..1024, got 0");
  EXPECT_EQ(Finalize(&config, {.log_level = "loud"}).message(),
            "--log-level must be one of trace, debug, info, warn, error, critical, off; got "
            "\"loud\"");
  EXPECT_TRUE(Contains(Finalize(&config, {.listen = {"unix:/ok.sock", "nohost"}}).message(),
                       "--listen: listen address 'nohost' has no port; allowed forms:"));
  EXPECT_TRUE(Contains(Finalize(&config, {.listen = {"h:1", "h:1"}}).message(),
                       "--listen gives \"h:1\" more than once"));
  EXPECT_TRUE(Contains(Finalize(&config, {.metrics_listen = "9464"}).message(),
                       "--metrics-listen: '9464' has no port; give \"host:port\""));
}

TEST(Finalize, ResolvesWorkersZeroToTheCpuCount) {
  Config config;
  ASSERT_EQ(config.cpu.workers, 0u);
  ASSERT_TRUE(Finalize(&config, {}).ok());
  EXPECT_GE(config.cpu.workers, 1u);
  EXPECT_LE(config.cpu.workers, 1024u);
  EXPECT_LE(config.cpu.workers, static_cast<uint32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_CONF))));

  Config by_flag;
  by_flag.cpu.workers = 3;
  ASSERT_TRUE(Finalize(&by_flag, {.workers = 0}).ok());
  EXPECT_EQ(by_flag.cpu.workers, config.cpu.workers);
}

TEST(Finalize, DataDirPrefersSystemdsStateDirectory) {
  ScopedEnv state("STATE_DIRECTORY", "/var/lib/crunchd-test:/var/lib/other");
  Config config;
  ASSERT_TRUE(Finalize(&config, {}).ok());
  EXPECT_EQ(config.io.data_dir, "/var/lib/crunchd-test");
}

TEST(Finalize, DataDirFallsBackByUser) {
  ScopedEnv state("STATE_DIRECTORY", std::nullopt);
  ScopedEnv home("HOME", "/home/tester");
  {
    ScopedEnv xdg("XDG_STATE_HOME", "/xdg/state");
    Config config;
    ASSERT_TRUE(Finalize(&config, {}).ok());
    EXPECT_EQ(config.io.data_dir, geteuid() == 0 ? "/var/lib/crunchd" : "/xdg/state/crunchd");
  }
  {
    ScopedEnv xdg("XDG_STATE_HOME", "relative/is/ignored");
    Config config;
    ASSERT_TRUE(Finalize(&config, {}).ok());
    EXPECT_EQ(config.io.data_dir,
              geteuid() == 0 ? "/var/lib/crunchd" : "/home/tester/.local/state/crunchd");
  }
}

TEST(Finalize, KeepsAnExplicitDataDir) {
  ScopedEnv state("STATE_DIRECTORY", "/var/lib/crunchd");
  Config config;
  config.io.data_dir = "/srv/data";
  ASSERT_TRUE(Finalize(&config, {}).ok());
  EXPECT_EQ(config.io.data_dir, "/srv/data");
}

TEST(Finalize, RejectsArenaTooSmallForTheLimitsNamingBothKeys) {
  absl::StatusOr<Config> config = ParseConfig(
      "[cpu]\narena_bytes = 104857600\n[limits]\nmax_payload_bytes = 16777216\n", kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::Status status = Finalize(&*config, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "[cpu] arena_bytes is 104857600 (100 MiB) but must be at least 2 * ([limits] "
            "max_payload_bytes + [limits] max_output_bytes) = 2 * (16777216 + 67108864) = "
            "167772160 (160 MiB); raise [cpu] arena_bytes or lower the limits");
}

TEST(Finalize, RejectsQueuedBytesBelowTheLargestPayloadNamingBothKeys) {
  absl::StatusOr<Config> config =
      ParseConfig("[limits]\nmax_payload_bytes = 16777216\nmax_queued_bytes = 8388608\n", kOrigin);
  ASSERT_TRUE(config.ok()) << config.status();
  absl::Status status = Finalize(&*config, {});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "[limits] max_queued_bytes is 8388608 but must be at least [limits] "
            "max_payload_bytes (16777216), or a task with the largest payload allowed could "
            "never be accepted");
}

TEST(Finalize, AcceptsArenaExactlyLargeEnough) {
  Config config;
  config.cpu.arena_bytes = 2 * (config.limits.max_payload_bytes + config.limits.max_output_bytes);
  EXPECT_TRUE(Finalize(&config, {}).ok());
}

// --- systemd/crunchd.toml, the documented defaults -------------------------------------

// "key" if `line` is "key = value" with a key of lowercase letters and '_'.
std::optional<std::string> KeyOfLine(std::string_view line) {
  const size_t equals = line.find(" = ");
  if (equals == 0 || equals == std::string_view::npos) return std::nullopt;
  const std::string_view key = line.substr(0, equals);
  for (char c : key) {
    if (!(c >= 'a' && c <= 'z') && c != '_') return std::nullopt;
  }
  return std::string(key);
}

// The default file with every "# key = value" line uncommented.
std::string Uncommented(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("# ") && KeyOfLine(std::string_view(line).substr(2))) line.erase(0, 2);
    out += line + "\n";
  }
  return out;
}

// "table.key" for every "key = value" line, by the "[table]" line above it.
std::set<std::string> QualifiedKeys(const std::string& text) {
  std::istringstream in(text);
  std::set<std::string> keys;
  std::string table;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("[") && line.ends_with("]")) table = line.substr(1, line.size() - 2);
    if (std::optional<std::string> key = KeyOfLine(line)) keys.insert(table + "." + *key);
  }
  return keys;
}

TEST(DefaultToml, ParsesToTheDefaults) {
  const std::string text = ReadFile(CRUNCH_DEFAULT_TOML);
  ASSERT_FALSE(text.empty()) << "cannot read " << CRUNCH_DEFAULT_TOML;
  absl::StatusOr<Config> config = ParseConfig(text, CRUNCH_DEFAULT_TOML);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
}

TEST(DefaultToml, UncommentedParsesToTheDefaults) {
  const std::string text = Uncommented(ReadFile(CRUNCH_DEFAULT_TOML));
  absl::StatusOr<Config> config = ParseConfig(text, CRUNCH_DEFAULT_TOML);
  ASSERT_TRUE(config.ok()) << config.status() << "\n" << text;
  EXPECT_EQ(*config, Config{});
}

TEST(DefaultToml, DocumentsEveryKey) {
  const std::set<std::string> documented =
      QualifiedKeys(Uncommented(ReadFile(CRUNCH_DEFAULT_TOML)));
  const std::set<std::string> known = QualifiedKeys(DescribeConfig(Config{}));
  EXPECT_EQ(known.size(), 43u);
  EXPECT_EQ(documented, known);
}

}  // namespace
}  // namespace crunch::daemon
