// Reading crunchd.toml.
//
// The schema lives in two places that tests tie together: kTables below (which
// tables and keys exist, for the unknown-key checks) and the Read*() functions
// (each key's type and rule). config_test checks that every key round-trips and
// that systemd/crunchd.toml documents every key DescribeConfig() prints.
//
// Debian's toml++ is built with exceptions (TOML_EXCEPTIONS=1): toml::parse()
// is the only call here that throws (toml::parse_error), and ParseConfig()
// catches it. Debian's Abseil has its own absl::string_view, distinct from
// std::string_view, hence ToAbsl() at the edges.

#include "daemon/config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace crunch::daemon {
namespace {

#define CRUNCH_RETURN_IF_ERROR(expr)   \
  do {                                 \
    absl::Status status_ = (expr);     \
    if (!status_.ok()) return status_; \
  } while (false)

// --- The schema -------------------------------------------------------------

constexpr absl::string_view kServerKeys[] = {
    "listen",     "drain_grace_ms", "result_ttl_ms", "max_kept_results",   "allow_uids",
    "allow_gids", "tls_cert_file",  "tls_key_file",  "tls_client_ca_file", "token_file"};
constexpr absl::string_view kCpuKeys[] = {"workers",
                                          "queue_capacity",
                                          "task_timeout_ms",
                                          "in_flight_per_worker",
                                          "spin_ns",
                                          "arena_bytes",
                                          "worker_path",
                                          "max_tasks_per_worker",
                                          "max_worker_rss_bytes",
                                          "quarantine_after",
                                          "quarantine_ms",
                                          "worker_address_space_bytes",
                                          "worker_cpu_seconds",
                                          "worker_nice",
                                          "worker_open_files",
                                          "seccomp"};
constexpr absl::string_view kIoKeys[] = {
    "threads",    "queue_capacity",     "task_timeout_ms",        "data_dir",
    "http_allow", "http_max_redirects", "http_connect_timeout_ms"};
constexpr absl::string_view kLimitsKeys[] = {"max_payload_bytes", "max_output_bytes",
                                             "max_queued_bytes", "max_params", "max_param_bytes"};
constexpr absl::string_view kLogKeys[] = {"level", "format"};
constexpr absl::string_view kMetricsKeys[] = {"listen"};
constexpr absl::string_view kPluginsKeys[] = {"paths", "init_timeout_ms"};

struct TableSchema {
  absl::string_view name;
  std::span<const absl::string_view> keys;
};

constexpr TableSchema kTables[] = {{"server", kServerKeys},  {"cpu", kCpuKeys},
                                   {"io", kIoKeys},          {"limits", kLimitsKeys},
                                   {"log", kLogKeys},        {"metrics", kMetricsKeys},
                                   {"plugins", kPluginsKeys}};

constexpr absl::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                            "error", "critical", "off"};
constexpr absl::string_view kLogFormats[] = {"text", "json"};

constexpr int64_t kKiB = int64_t{1} << 10;
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// An integer key's allowed values: min..max, plus 0 if `zero_means` is set.
struct IntRule {
  int64_t min;
  int64_t max;
  bool bytes = false;                 // Also say min and max in KiB/MiB/GiB.
  absl::string_view zero_means = {};  // What 0 stands for, when 0 is allowed outside min..max.
};

constexpr IntRule kDrainGraceMsRule{.min = 0, .max = 3'600'000};
constexpr IntRule kResultTtlMsRule{.min = 1000, .max = 86'400'000};
constexpr IntRule kMaxKeptResultsRule{.min = 1, .max = 10'000'000};
constexpr IntRule kWorkersRule{.min = 1, .max = 1024, .zero_means = "one per core"};
constexpr IntRule kQueueCapacityRule{.min = 1, .max = 10'000'000};
constexpr IntRule kTaskTimeoutMsRule{.min = 1, .max = 86'400'000};
constexpr IntRule kInFlightPerWorkerRule{.min = 1, .max = 64};
constexpr IntRule kSpinNsRule{.min = 0, .max = 10'000'000};
constexpr IntRule kArenaBytesRule{.min = kMiB, .max = 64 * kGiB, .bytes = true};
constexpr IntRule kMaxTasksPerWorkerRule{
    .min = 1, .max = 1'000'000'000'000, .zero_means = "never recycle"};
constexpr IntRule kMaxWorkerRssRule{
    .min = kMiB, .max = 1024 * kGiB, .bytes = true, .zero_means = "no limit"};
constexpr IntRule kQuarantineAfterRule{.min = 1, .max = 1000, .zero_means = "never quarantine"};
constexpr IntRule kQuarantineMsRule{.min = 1, .max = 86'400'000};
constexpr IntRule kWorkerAddressSpaceRule{
    .min = 16 * kMiB, .max = 1024 * kGiB, .bytes = true, .zero_means = "no limit"};
constexpr IntRule kWorkerCpuSecondsRule{.min = 2, .max = 31'536'000, .zero_means = "no limit"};
constexpr IntRule kWorkerNiceRule{.min = 0, .max = 19};
constexpr IntRule kWorkerOpenFilesRule{.min = 16, .max = 1 << 20, .zero_means = "no change"};
constexpr IntRule kIoThreadsRule{.min = 1, .max = 1024};
constexpr IntRule kHttpMaxRedirectsRule{.min = 0, .max = 20};
constexpr IntRule kHttpConnectTimeoutMsRule{.min = 1, .max = 600'000};
constexpr IntRule kMaxPayloadBytesRule{.min = 0, .max = kGiB, .bytes = true};
constexpr IntRule kMaxOutputBytesRule{.min = kKiB, .max = kGiB, .bytes = true};
constexpr IntRule kMaxQueuedBytesRule{.min = kMiB, .max = 1024 * kGiB, .bytes = true};
constexpr IntRule kMaxParamsRule{.min = 1, .max = 1024};
constexpr IntRule kMaxParamBytesRule{.min = 1, .max = kMiB, .bytes = true};
// uid_t/gid_t, without (uid_t)-1, which means "no id".
constexpr IntRule kPluginInitTimeoutMsRule{.min = 100, .max = 600'000};
constexpr IntRule kIdRule{.min = 0, .max = 4'294'967'294};

// The bearer token's length, in visible ASCII characters.
constexpr size_t kMinTokenChars = 16;
constexpr size_t kMaxTokenChars = 4096;

// Config files are a few KiB; this only stops a wrong path (/dev/zero) from eating memory.
constexpr size_t kMaxConfigFileBytes = 1 << 20;

// sizeof(sockaddr_un::sun_path) - 1 for the terminating NUL.
constexpr size_t kMaxUnixSocketPath = 107;

constexpr absl::string_view kListenForms =
    "allowed forms: unix:/absolute/path, unix:///absolute/path, host:port, [ipv6]:port "
    "(port 1..65535)";
constexpr absl::string_view kHttpAllowForms =
    "allowed: \"host\", \"host:port\", \"[ipv6]\", \"[ipv6]:port\", or \"*\" for any host";

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// --- Messages ---------------------------------------------------------------

// 1048576 -> "1 MiB"; numbers that are not a whole KiB/MiB/GiB stay in bytes.
std::string HumanBytes(int64_t n) {
  if (n != 0 && n % kGiB == 0) return absl::StrCat(n / kGiB, " GiB");
  if (n != 0 && n % kMiB == 0) return absl::StrCat(n / kMiB, " MiB");
  if (n != 0 && n % kKiB == 0) return absl::StrCat(n / kKiB, " KiB");
  return absl::StrCat(n, " bytes");
}

std::string AllowedInts(const IntRule& rule) {
  std::string text = absl::StrCat("an integer in ", rule.min, "..", rule.max);
  if (rule.bytes) {
    absl::StrAppend(&text, " (", HumanBytes(rule.min), "..", HumanBytes(rule.max), ")");
  }
  if (!rule.zero_means.empty()) absl::StrAppend(&text, " (or 0 for ", rule.zero_means, ")");
  return text;
}

std::string DescribeInt(int64_t value, const IntRule& rule) {
  std::string text = absl::StrCat(value);
  if (rule.bytes && value > 0 && HumanBytes(value) != absl::StrCat(value, " bytes")) {
    absl::StrAppend(&text, " (", HumanBytes(value), ")");
  }
  return text;
}

// `subject` names the key or flag: "crunchd.toml:4: [cpu] workers" or "--workers".
absl::Status CheckInt(absl::string_view subject, int64_t value, const IntRule& rule) {
  if ((value >= rule.min && value <= rule.max) || (value == 0 && !rule.zero_means.empty())) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(subject, " must be ", AllowedInts(rule), ", got ", DescribeInt(value, rule)));
}

std::string JoinNames(std::span<const absl::string_view> items) {
  return absl::StrJoin(items, ", ");
}

absl::Status CheckOneOf(absl::string_view subject, absl::string_view value,
                        std::span<const absl::string_view> allowed) {
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(subject, " must be one of ", JoinNames(allowed),
                                                 "; got \"", absl::CEscape(value), "\""));
}

// A TOML basic string, quoted and escaped.
std::string TomlString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          constexpr char kHex[] = "0123456789ABCDEF";
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// What a TOML value is, for "got ...": `5000`, `"abc" (a string)`, `an array`.
std::string DescribeNode(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::integer:
      return absl::StrCat(node.as_integer()->get());
    case toml::node_type::floating_point:
      return absl::StrCat(node.as_floating_point()->get(), " (a float)");
    case toml::node_type::boolean:
      return node.as_boolean()->get() ? "true (a boolean)" : "false (a boolean)";
    case toml::node_type::string:
      return absl::StrCat(TomlString(node.as_string()->get()), " (a string)");
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date/time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "crunchd.toml:12: ", or "crunchd.toml: " when toml++ knows no line.
std::string Location(absl::string_view origin, const toml::source_region& region) {
  if (region.begin.line == 0) return absl::StrCat(origin, ": ");
  return absl::StrCat(origin, ":", region.begin.line, ": ");
}

const TableSchema* FindTable(absl::string_view name) {
  for (const TableSchema& table : kTables) {
    if (table.name == name) return &table;
  }
  return nullptr;
}

bool HasKey(const TableSchema& table, absl::string_view key) {
  return std::find(table.keys.begin(), table.keys.end(), key) != table.keys.end();
}

// " ('threads' belongs in [io])" if `key` is known in some other table.
std::string WhereKeyBelongs(absl::string_view key, absl::string_view except_table) {
  std::vector<std::string> tables;
  for (const TableSchema& table : kTables) {
    if (table.name != except_table && HasKey(table, key)) {
      tables.push_back(absl::StrCat("[", table.name, "]"));
    }
  }
  if (tables.empty()) return "";
  return absl::StrCat(" ('", key, "' belongs in ", absl::StrJoin(tables, " or "), ")");
}

// --- Address syntax ---------------------------------------------------------

bool IsHostNameChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

bool IsIpv6Char(char c) { return absl::ascii_isxdigit(c) || c == ':' || c == '.'; }

// "" if `port` is a decimal 1..65535, else what is wrong with it.
std::string PortProblem(absl::string_view port) {
  if (port.empty()) return "has an empty port";
  int value = 0;
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
    return absl::StrCat("has port '", absl::CEscape(port), "', which is not in 1..65535");
  }
  return "";
}

// Checks "host", "host:port", "[v6]" or "[v6]:port"; "" if fine, else what is
// wrong ("has no port", ...). With `port_required`, the port must be there.
std::string HostPortProblem(absl::string_view address, bool port_required) {
  if (address.empty()) return "is empty";
  if (absl::StrContains(address, "://")) return "is a URL, not a host";
  absl::string_view host;
  std::optional<absl::string_view> port;
  if (address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos) return "has '[' without a matching ']'";
    host = address.substr(1, close - 1);
    absl::string_view rest = address.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return "has something other than ':port' after ']'";
      port = rest.substr(1);
    }
    // An optional zone ("fe80::1%eth0") follows the address proper.
    absl::string_view addr = host.substr(0, host.find('%'));
    if (addr.empty() || addr.find(':') == absl::string_view::npos ||
        !std::all_of(addr.begin(), addr.end(), IsIpv6Char)) {
      return absl::StrCat("has '", absl::CEscape(host),
                          "' in brackets, which is not an IPv6 address");
    }
  } else {
    const size_t colon = address.rfind(':');
    if (colon != absl::string_view::npos && address.find(':') != colon) {
      return "has an IPv6 address without the brackets around it";
    }
    host = address.substr(0, colon);
    if (colon != absl::string_view::npos) port = address.substr(colon + 1);
    if (host.empty()) return "has an empty host";
    if (!std::all_of(host.begin(), host.end(), IsHostNameChar)) {
      return absl::StrCat("has host '", absl::CEscape(host),
                          "', which has characters other than letters, digits, '-', '.', '_'");
    }
  }
  if (!port.has_value()) return port_required ? "has no port" : "";
  return PortProblem(*port);
}

absl::Status CheckListenAddress(absl::string_view address) {
  std::string problem;
  if (absl::StartsWith(address, "unix:")) {
    absl::string_view path = address.substr(5);
    if (absl::StartsWith(path, "//")) path.remove_prefix(2);  // unix:///abs/path
    if (path.empty() || path.front() != '/') {
      problem = "does not have an absolute socket path";
    } else if (path.back() == '/') {
      problem = "names a directory, not a socket file";
    } else if (path.size() > kMaxUnixSocketPath) {
      problem = absl::StrCat("has a socket path of ", path.size(), " bytes; at most ",
                             kMaxUnixSocketPath, " fit in sockaddr_un");
    }
  } else {
    problem = HostPortProblem(address, /*port_required=*/true);
  }
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("listen address '", absl::CEscape(address), "' ", problem, "; ", kListenForms));
}

absl::Status CheckMetricsListen(absl::string_view address) {
  if (address.empty()) return absl::OkStatus();
  const std::string problem = HostPortProblem(address, /*port_required=*/true);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", absl::CEscape(address), "' ", problem,
                   "; give \"host:port\" or \"[v6]:port\" (for example \"127.0.0.1:9464\"), "
                   "or \"\" for no metrics endpoint"));
}

absl::Status ValidateHttpAllowEntry(absl::string_view entry) {
  if (entry == "*") return absl::OkStatus();
  const std::string problem = HostPortProblem(entry, /*port_required=*/false);
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("'", absl::CEscape(entry), "' ", problem, "; ", kHttpAllowForms));
}

absl::Status CheckAbsolutePath(absl::string_view subject, absl::string_view path) {
  if (path.empty() || path.front() == '/') return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(subject, " must be an absolute path or \"\" for ",
                                                 "the default, got \"", absl::CEscape(path), "\""));
}

// --- Reading a table --------------------------------------------------------

// Reads the keys of one table, with messages that name the file, line, table and key.
class TableReader {
 public:
  // `table` may be null: the table is absent and every key keeps its default.
  TableReader(absl::string_view origin, absl::string_view table_name, const toml::table* table)
      : origin_(origin), table_name_(table_name), table_(table) {}

  template <typename T>
  absl::Status Int(absl::string_view key, const IntRule& rule, T* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    const std::string subject = Subject(*node, key);
    if (!node->is_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(subject, " must be ", AllowedInts(rule), ", got ", DescribeNode(*node)));
    }
    const int64_t value = node->as_integer()->get();
    CRUNCH_RETURN_IF_ERROR(CheckInt(subject, value, rule));
    *out = static_cast<T>(value);
    return absl::OkStatus();
  }

  absl::Status OneOf(absl::string_view key, std::span<const absl::string_view> allowed,
                     std::string* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    const std::string subject = Subject(*node, key);
    if (!node->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(subject, " must be one of ",
                                                     JoinNames(allowed), " (a string); got ",
                                                     DescribeNode(*node)));
    }
    const std::string& value = node->as_string()->get();
    CRUNCH_RETURN_IF_ERROR(CheckOneOf(subject, value, allowed));
    *out = value;
    return absl::OkStatus();
  }

  absl::Status Bool(absl::string_view key, bool* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    if (!node->is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Subject(*node, key), " must be true or false, got ", DescribeNode(*node)));
    }
    *out = node->as_boolean()->get();
    return absl::OkStatus();
  }

  absl::Status Path(absl::string_view key, std::string* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    const std::string subject = Subject(*node, key);
    if (!node->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          subject, " must be an absolute path or \"\" for the default, got ", DescribeNode(*node)));
    }
    const std::string& value = node->as_string()->get();
    CRUNCH_RETURN_IF_ERROR(CheckAbsolutePath(subject, value));
    *out = value;
    return absl::OkStatus();
  }

  // A string accepted by `check` (whose message gets "<file>:<line>: [table] key: " in front).
  absl::Status String(absl::string_view key,
                      const std::function<absl::Status(absl::string_view)>& check,
                      std::string* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    const std::string subject = Subject(*node, key);
    if (!node->is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(subject, " must be a string, got ", DescribeNode(*node)));
    }
    const std::string& value = node->as_string()->get();
    if (absl::Status status = check(value); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(subject, ": ", status.message()));
    }
    *out = value;
    return absl::OkStatus();
  }

  // An array of distinct integers, each allowed by `rule`.
  absl::Status IntList(absl::string_view key, const IntRule& rule,
                       std::vector<uint32_t>* out) const {
    const std::string allowed = absl::StrCat("a list of integers in ", rule.min, "..", rule.max);
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    if (!node->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(Subject(*node, key), " must be ", allowed, ", got ", DescribeNode(*node)));
    }
    std::vector<uint32_t> values;
    const toml::array& array = *node->as_array();
    for (size_t i = 0; i < array.size(); ++i) {
      const toml::node& item = array[i];
      const std::string subject = Subject(item.source().begin.line ? item : *node, key);
      if (!item.is_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(subject, " must be ", allowed, "; item ", i, " is ", DescribeNode(item)));
      }
      const int64_t value = item.as_integer()->get();
      if (value < rule.min || value > rule.max) {
        return absl::InvalidArgumentError(
            absl::StrCat(subject, " must be ", allowed, "; item ", i, " is ", value));
      }
      if (std::find(values.begin(), values.end(), value) != values.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(subject, " lists ", value, " more than once"));
      }
      values.push_back(static_cast<uint32_t>(value));
    }
    *out = std::move(values);
    return absl::OkStatus();
  }

  // An array of distinct strings, each accepted by `check` (whose message gets
  // "<file>:<line>: [table] key: " in front).
  absl::Status StringList(absl::string_view key,
                          const std::function<absl::Status(absl::string_view)>& check,
                          std::vector<std::string>* out) const {
    const toml::node* node = Find(key);
    if (node == nullptr) return absl::OkStatus();
    if (!node->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          Subject(*node, key), " must be an array of strings, got ", DescribeNode(*node)));
    }
    std::vector<std::string> values;
    const toml::array& array = *node->as_array();
    for (size_t i = 0; i < array.size(); ++i) {
      const toml::node& item = array[i];
      const std::string subject = Subject(item.source().begin.line ? item : *node, key);
      if (!item.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            subject, " must be an array of strings; item ", i, " is ", DescribeNode(item)));
      }
      const std::string& value = item.as_string()->get();
      if (absl::Status status = check(value); !status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(subject, ": ", status.message()));
      }
      if (std::find(values.begin(), values.end(), value) != values.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(subject, " lists \"", absl::CEscape(value), "\" more than once"));
      }
      values.push_back(value);
    }
    *out = std::move(values);
    return absl::OkStatus();
  }

 private:
  const toml::node* Find(absl::string_view key) const {
    return table_ == nullptr ? nullptr : table_->get(std::string_view(key.data(), key.size()));
  }

  std::string Subject(const toml::node& node, absl::string_view key) const {
    return absl::StrCat(Location(origin_, node.source()), "[", table_name_, "] ", key);
  }

  absl::string_view origin_;
  absl::string_view table_name_;
  const toml::table* table_;
};

absl::Status ReadServer(const TableReader& t, ServerConfig* c) {
  CRUNCH_RETURN_IF_ERROR(t.StringList("listen", CheckListenAddress, &c->listen));
  CRUNCH_RETURN_IF_ERROR(t.Int("drain_grace_ms", kDrainGraceMsRule, &c->drain_grace_ms));
  CRUNCH_RETURN_IF_ERROR(t.Int("result_ttl_ms", kResultTtlMsRule, &c->result_ttl_ms));
  CRUNCH_RETURN_IF_ERROR(t.Int("max_kept_results", kMaxKeptResultsRule, &c->max_kept_results));
  CRUNCH_RETURN_IF_ERROR(t.IntList("allow_uids", kIdRule, &c->allow_uids));
  CRUNCH_RETURN_IF_ERROR(t.IntList("allow_gids", kIdRule, &c->allow_gids));
  CRUNCH_RETURN_IF_ERROR(t.Path("tls_cert_file", &c->tls_cert_file));
  CRUNCH_RETURN_IF_ERROR(t.Path("tls_key_file", &c->tls_key_file));
  CRUNCH_RETURN_IF_ERROR(t.Path("tls_client_ca_file", &c->tls_client_ca_file));
  return t.Path("token_file", &c->token_file);
}

absl::Status ReadCpu(const TableReader& t, CpuConfig* c) {
  CRUNCH_RETURN_IF_ERROR(t.Int("workers", kWorkersRule, &c->workers));
  CRUNCH_RETURN_IF_ERROR(t.Int("queue_capacity", kQueueCapacityRule, &c->queue_capacity));
  CRUNCH_RETURN_IF_ERROR(t.Int("task_timeout_ms", kTaskTimeoutMsRule, &c->task_timeout_ms));
  CRUNCH_RETURN_IF_ERROR(
      t.Int("in_flight_per_worker", kInFlightPerWorkerRule, &c->in_flight_per_worker));
  CRUNCH_RETURN_IF_ERROR(t.Int("spin_ns", kSpinNsRule, &c->spin_ns));
  CRUNCH_RETURN_IF_ERROR(t.Int("arena_bytes", kArenaBytesRule, &c->arena_bytes));
  CRUNCH_RETURN_IF_ERROR(t.Path("worker_path", &c->worker_path));
  CRUNCH_RETURN_IF_ERROR(
      t.Int("max_tasks_per_worker", kMaxTasksPerWorkerRule, &c->max_tasks_per_worker));
  CRUNCH_RETURN_IF_ERROR(
      t.Int("max_worker_rss_bytes", kMaxWorkerRssRule, &c->max_worker_rss_bytes));
  CRUNCH_RETURN_IF_ERROR(t.Int("quarantine_after", kQuarantineAfterRule, &c->quarantine_after));
  CRUNCH_RETURN_IF_ERROR(t.Int("quarantine_ms", kQuarantineMsRule, &c->quarantine_ms));
  CRUNCH_RETURN_IF_ERROR(
      t.Int("worker_address_space_bytes", kWorkerAddressSpaceRule, &c->worker_address_space_bytes));
  CRUNCH_RETURN_IF_ERROR(
      t.Int("worker_cpu_seconds", kWorkerCpuSecondsRule, &c->worker_cpu_seconds));
  CRUNCH_RETURN_IF_ERROR(t.Int("worker_nice", kWorkerNiceRule, &c->worker_nice));
  CRUNCH_RETURN_IF_ERROR(t.Int("worker_open_files", kWorkerOpenFilesRule, &c->worker_open_files));
  return t.Bool("seccomp", &c->seccomp);
}

absl::Status ReadIo(const TableReader& t, IoConfig* c) {
  CRUNCH_RETURN_IF_ERROR(t.Int("threads", kIoThreadsRule, &c->threads));
  CRUNCH_RETURN_IF_ERROR(t.Int("queue_capacity", kQueueCapacityRule, &c->queue_capacity));
  CRUNCH_RETURN_IF_ERROR(t.Int("task_timeout_ms", kTaskTimeoutMsRule, &c->task_timeout_ms));
  CRUNCH_RETURN_IF_ERROR(t.Path("data_dir", &c->data_dir));
  CRUNCH_RETURN_IF_ERROR(t.StringList("http_allow", ValidateHttpAllowEntry, &c->http_allow));
  CRUNCH_RETURN_IF_ERROR(
      t.Int("http_max_redirects", kHttpMaxRedirectsRule, &c->http_max_redirects));
  return t.Int("http_connect_timeout_ms", kHttpConnectTimeoutMsRule, &c->http_connect_timeout_ms);
}

absl::Status ReadLimits(const TableReader& t, LimitsConfig* c) {
  CRUNCH_RETURN_IF_ERROR(t.Int("max_payload_bytes", kMaxPayloadBytesRule, &c->max_payload_bytes));
  CRUNCH_RETURN_IF_ERROR(t.Int("max_output_bytes", kMaxOutputBytesRule, &c->max_output_bytes));
  CRUNCH_RETURN_IF_ERROR(t.Int("max_queued_bytes", kMaxQueuedBytesRule, &c->max_queued_bytes));
  CRUNCH_RETURN_IF_ERROR(t.Int("max_params", kMaxParamsRule, &c->max_params));
  return t.Int("max_param_bytes", kMaxParamBytesRule, &c->max_param_bytes);
}

absl::Status ReadLog(const TableReader& t, LogConfig* c) {
  CRUNCH_RETURN_IF_ERROR(t.OneOf("level", kLogLevels, &c->level));
  return t.OneOf("format", kLogFormats, &c->format);
}

absl::Status ReadMetrics(const TableReader& t, MetricsConfig* c) {
  return t.String("listen", CheckMetricsListen, &c->listen);
}

absl::Status CheckPluginPath(absl::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", absl::CEscape(path),
                     "\" is not an absolute path; list plugin files as absolute "
                     "paths to shared libraries (\"/usr/lib/crunch/plugins/wordfreq.so\")"));
  }
  return absl::OkStatus();
}

absl::Status ReadPlugins(const TableReader& t, PluginsConfig* c) {
  CRUNCH_RETURN_IF_ERROR(t.StringList("paths", CheckPluginPath, &c->paths));
  return t.Int("init_timeout_ms", kPluginInitTimeoutMsRule, &c->init_timeout_ms);
}

// Unknown tables, keys outside any table, known tables that are not tables, unknown keys.
absl::Status CheckStructure(const toml::table& root, absl::string_view origin) {
  std::vector<absl::string_view> table_names;
  for (const TableSchema& table : kTables) table_names.push_back(table.name);

  for (const auto& [table_key, node] : root) {
    const absl::string_view name = ToAbsl(table_key.str());
    const TableSchema* schema = FindTable(name);
    const std::string at = Location(origin, table_key.source());
    if (schema == nullptr) {
      if (node.is_table()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, "unknown table [", absl::CEscape(name),
                         "]; known tables: ", JoinNames(table_names)));
      }
      return absl::InvalidArgumentError(absl::StrCat(
          at, "unknown key '", absl::CEscape(name), "' outside any table",
          WhereKeyBelongs(name, ""), "; keys go in one of the tables ", JoinNames(table_names)));
    }
    if (!node.is_table()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, "[", schema->name, "] must be a table, got ", DescribeNode(node)));
    }
    for (const auto& [toml_key, value] : *node.as_table()) {
      const absl::string_view key = ToAbsl(toml_key.str());
      if (HasKey(*schema, key)) continue;
      return absl::InvalidArgumentError(
          absl::StrCat(Location(origin, toml_key.source()), "unknown key '", absl::CEscape(key),
                       "' in [", schema->name, "]", WhereKeyBelongs(key, schema->name),
                       "; known keys: ", JoinNames(schema->keys)));
    }
  }
  return absl::OkStatus();
}

// --- Finalize's machine-dependent defaults ----------------------------------

// The CPUs this process may run on (its affinity mask, which a cgroup cpuset
// narrows), else the online ones; at least 1, at most the [cpu] workers maximum.
uint32_t UsableCpuCount() {
  int64_t count = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) count = CPU_COUNT(&set);
  if (count <= 0) count = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<uint32_t>(std::clamp<int64_t>(count, 1, kWorkersRule.max));
}

absl::StatusOr<std::string> DefaultDataDir() {
  // systemd's StateDirectory= sets it; with several directories it is a ':'-separated list.
  if (const char* state = std::getenv("STATE_DIRECTORY"); state != nullptr && state[0] == '/') {
    return std::string(absl::string_view(state).substr(0, absl::string_view(state).find(':')));
  }
  if (::geteuid() == 0) return std::string("/var/lib/crunchd");
  // The XDG spec says to ignore a relative $XDG_STATE_HOME.
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return absl::StrCat(xdg, "/crunchd");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    return absl::StrCat(home, "/.local/state/crunchd");
  }
  return absl::FailedPreconditionError(
      "[io] data_dir is not set and there is no default for it: none of $STATE_DIRECTORY, "
      "$XDG_STATE_HOME and $HOME is an absolute path and crunchd is not running as root; "
      "set [io] data_dir to an absolute path");
}

// A TCP address needs TLS; the TLS keys come in pairs; the files can be read.
absl::Status CheckTransportSecurity(const ServerConfig& server) {
  const bool has_cert = !server.tls_cert_file.empty();
  const bool has_key = !server.tls_key_file.empty();
  if (has_cert != has_key) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[server] ", has_cert ? "tls_cert_file" : "tls_key_file", " is set but ",
        has_cert ? "tls_key_file" : "tls_cert_file",
        " is not; TLS needs both the certificate chain and its private key (PEM files)"));
  }
  if (!server.tls_client_ca_file.empty() && !has_cert) {
    return absl::InvalidArgumentError(
        "[server] tls_client_ca_file is set but tls_cert_file and tls_key_file are not; client "
        "certificates are checked only on TLS (TCP) listen addresses, which need both");
  }
  if (!has_cert) {
    for (const std::string& address : server.listen) {
      if (!IsTcpListenAddress(address)) continue;
      return absl::InvalidArgumentError(absl::StrCat(
          "listen address '", absl::CEscape(address),
          "' is TCP, and crunchd serves TCP only over TLS: set [server] tls_cert_file and "
          "tls_key_file (PEM files), or listen on unix:/path sockets only"));
    }
  }
  if (has_cert) {
    absl::StatusOr<std::string> pem = ReadPemFile("[server] tls_cert_file", server.tls_cert_file);
    if (!pem.ok()) return pem.status();
    pem = ReadPemFile("[server] tls_key_file", server.tls_key_file);
    if (!pem.ok()) return pem.status();
  }
  if (!server.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> pem =
        ReadPemFile("[server] tls_client_ca_file", server.tls_client_ca_file);
    if (!pem.ok()) return pem.status();
  }
  if (!server.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(server.token_file);
    if (!token.ok()) return token.status();
  }
  return absl::OkStatus();
}

// Reads at most `max_bytes` of `path` into `*text`; `what` starts the messages.
absl::Status ReadSmallFile(absl::string_view what, const std::string& path, size_t max_bytes,
                           std::string* text) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", what, " '", path, "'"));
  text->clear();
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int read_errno = errno;
      ::close(fd);
      return absl::ErrnoToStatus(read_errno, absl::StrCat("cannot read ", what, " '", path, "'"));
    }
    if (n == 0) break;
    text->append(buffer, static_cast<size_t>(n));
    if (text->size() > max_bytes) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(what, " '", path, "' is larger than ",
                                                     HumanBytes(static_cast<int64_t>(max_bytes)),
                                                     "; is it the right file?"));
    }
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::Status CheckArenaFitsLimits(const Config& config) {
  const uint64_t needed = 2 * (config.limits.max_payload_bytes + config.limits.max_output_bytes);
  if (config.cpu.arena_bytes >= needed) return absl::OkStatus();
  const auto human = [](uint64_t n) { return HumanBytes(static_cast<int64_t>(n)); };
  return absl::InvalidArgumentError(absl::StrCat(
      "[cpu] arena_bytes is ", config.cpu.arena_bytes, " (", human(config.cpu.arena_bytes),
      ") but must be at least 2 * ([limits] max_payload_bytes + [limits] max_output_bytes) = 2 * (",
      config.limits.max_payload_bytes, " + ", config.limits.max_output_bytes, ") = ", needed, " (",
      human(needed), "); raise [cpu] arena_bytes or lower the limits"));
}

absl::Status CheckQueuedBytesFitPayloads(const Config& config) {
  if (config.limits.max_queued_bytes >= config.limits.max_payload_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "[limits] max_queued_bytes is ", config.limits.max_queued_bytes,
      " but must be at least [limits] max_payload_bytes (", config.limits.max_payload_bytes,
      "), or a task with the largest payload allowed could never be accepted"));
}

// --- DescribeConfig -----------------------------------------------------------

std::string TomlIntArray(const std::vector<uint32_t>& items) {
  return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
}

std::string TomlStringArray(const std::vector<std::string>& items) {
  return absl::StrCat("[",
                      absl::StrJoin(items, ", ",
                                    [](std::string* out, const std::string& item) {
                                      absl::StrAppend(out, TomlString(item));
                                    }),
                      "]");
}

}  // namespace

absl::StatusOr<Config> ParseConfig(std::string_view toml_text, std::string_view std_origin) {
  const absl::string_view origin = ToAbsl(std_origin);
  toml::table root;
  try {
    root = toml::parse(toml_text, std_origin);
  } catch (const toml::parse_error& error) {
    const toml::source_position& at = error.source().begin;
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ":", at.line, ":", at.column,
                     ": TOML syntax error: ", ToAbsl(error.description())));
  }
  CRUNCH_RETURN_IF_ERROR(CheckStructure(root, origin));

  Config config;
  CRUNCH_RETURN_IF_ERROR(
      ReadServer(TableReader(origin, "server", root["server"].as_table()), &config.server));
  CRUNCH_RETURN_IF_ERROR(ReadCpu(TableReader(origin, "cpu", root["cpu"].as_table()), &config.cpu));
  CRUNCH_RETURN_IF_ERROR(ReadIo(TableReader(origin, "io", root["io"].as_table()), &config.io));
  CRUNCH_RETURN_IF_ERROR(
      ReadLimits(TableReader(origin, "limits", root["limits"].as_table()), &config.limits));
  CRUNCH_RETURN_IF_ERROR(ReadLog(TableReader(origin, "log", root["log"].as_table()), &config.log));
  CRUNCH_RETURN_IF_ERROR(
      ReadMetrics(TableReader(origin, "metrics", root["metrics"].as_table()), &config.metrics));
  CRUNCH_RETURN_IF_ERROR(
      ReadPlugins(TableReader(origin, "plugins", root["plugins"].as_table()), &config.plugins));
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::string text;
  CRUNCH_RETURN_IF_ERROR(ReadSmallFile("config file", path, kMaxConfigFileBytes, &text));
  return ParseConfig(text, path);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  const std::string what = absl::StrCat("[server] token_file '", path, "'");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", what));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a regular file"));
  }
  if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return absl::FailedPreconditionError(absl::StrCat(
        what, " has mode ", mode,
        ": other users can read or write it, so the token protects nothing; allow only its owner "
        "and group (chmod 0600 or 0640, owner root, group crunchd)"));
  }
  std::string text;
  CRUNCH_RETURN_IF_ERROR(ReadSmallFile("[server] token_file", path, 64 * 1024, &text));
  while (!text.empty() && absl::ascii_isspace(static_cast<unsigned char>(text.back()))) {
    text.pop_back();
  }
  const bool visible =
      std::all_of(text.begin(), text.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (text.size() < kMinTokenChars || text.size() > kMaxTokenChars || !visible) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must hold one token of ", kMinTokenChars, "..", kMaxTokenChars,
        " visible ASCII characters (no spaces; a trailing newline is fine), got ", text.size(),
        " characters", visible ? "" : " including spaces or non-ASCII bytes",
        "; make one with: openssl rand -hex 32"));
  }
  return text;
}

absl::StatusOr<std::string> ReadPemFile(std::string_view std_key, const std::string& path) {
  const absl::string_view key = ToAbsl(std_key);
  std::string text;
  CRUNCH_RETURN_IF_ERROR(ReadSmallFile(key, path, kMaxConfigFileBytes, &text));
  if (!absl::StrContains(text, "-----BEGIN ")) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " '", path, "' is not a PEM file (no \"-----BEGIN \" line)"));
  }
  return text;
}

bool IsTcpListenAddress(std::string_view address) {
  return !absl::StartsWith(ToAbsl(address), "unix:");
}

absl::Status ValidateListenAddress(std::string_view address) {
  return CheckListenAddress(ToAbsl(address));
}

absl::Status Finalize(Config* config, const ConfigOverrides& overrides) {
  if (!overrides.listen.empty()) {
    for (size_t i = 0; i < overrides.listen.size(); ++i) {
      const std::string& address = overrides.listen[i];
      if (absl::Status status = CheckListenAddress(address); !status.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--listen: ", status.message()));
      }
      if (std::find(overrides.listen.begin(), overrides.listen.begin() + i, address) !=
          overrides.listen.begin() + i) {
        return absl::InvalidArgumentError(
            absl::StrCat("--listen gives \"", absl::CEscape(address), "\" more than once"));
      }
    }
    config->server.listen = overrides.listen;
  }
  if (overrides.workers.has_value()) {
    CRUNCH_RETURN_IF_ERROR(CheckInt("--workers", *overrides.workers, kWorkersRule));
    config->cpu.workers = *overrides.workers;
  }
  if (overrides.io_threads.has_value()) {
    CRUNCH_RETURN_IF_ERROR(CheckInt("--io-threads", *overrides.io_threads, kIoThreadsRule));
    config->io.threads = *overrides.io_threads;
  }
  if (overrides.log_level.has_value()) {
    CRUNCH_RETURN_IF_ERROR(CheckOneOf("--log-level", *overrides.log_level, kLogLevels));
    config->log.level = *overrides.log_level;
  }
  if (overrides.metrics_listen.has_value()) {
    if (absl::Status status = CheckMetricsListen(*overrides.metrics_listen); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--metrics-listen: ", status.message()));
    }
    config->metrics.listen = *overrides.metrics_listen;
  }

  if (config->cpu.workers == 0) config->cpu.workers = UsableCpuCount();
  if (config->io.data_dir.empty()) {
    absl::StatusOr<std::string> data_dir = DefaultDataDir();
    if (!data_dir.ok()) return data_dir.status();
    config->io.data_dir = *std::move(data_dir);
  }
  CRUNCH_RETURN_IF_ERROR(CheckArenaFitsLimits(*config));
  CRUNCH_RETURN_IF_ERROR(CheckQueuedBytesFitPayloads(*config));
  return CheckTransportSecurity(config->server);
}

std::string DescribeConfig(const Config& config) {
  const ServerConfig& server = config.server;
  const CpuConfig& cpu = config.cpu;
  const IoConfig& io = config.io;
  const LimitsConfig& limits = config.limits;
  const LogConfig& log = config.log;
  const MetricsConfig& metrics = config.metrics;
  const PluginsConfig& plugins = config.plugins;
  return absl::StrCat(
      // clang-format off
      "[server]\n",
      "listen = ", TomlStringArray(server.listen), "\n",
      "drain_grace_ms = ", server.drain_grace_ms, "\n",
      "result_ttl_ms = ", server.result_ttl_ms, "\n",
      "max_kept_results = ", server.max_kept_results, "\n",
      "allow_uids = ", TomlIntArray(server.allow_uids), "\n",
      "allow_gids = ", TomlIntArray(server.allow_gids), "\n",
      "tls_cert_file = ", TomlString(server.tls_cert_file), "\n",
      "tls_key_file = ", TomlString(server.tls_key_file), "\n",
      "tls_client_ca_file = ", TomlString(server.tls_client_ca_file), "\n",
      "token_file = ", TomlString(server.token_file), "\n",
      "\n[cpu]\n",
      "workers = ", cpu.workers, "\n",
      "queue_capacity = ", cpu.queue_capacity, "\n",
      "task_timeout_ms = ", cpu.task_timeout_ms, "\n",
      "in_flight_per_worker = ", cpu.in_flight_per_worker, "\n",
      "spin_ns = ", cpu.spin_ns, "\n",
      "arena_bytes = ", cpu.arena_bytes, "\n",
      "worker_path = ", TomlString(cpu.worker_path), "\n",
      "max_tasks_per_worker = ", cpu.max_tasks_per_worker, "\n",
      "max_worker_rss_bytes = ", cpu.max_worker_rss_bytes, "\n",
      "quarantine_after = ", cpu.quarantine_after, "\n",
      "quarantine_ms = ", cpu.quarantine_ms, "\n",
      "worker_address_space_bytes = ", cpu.worker_address_space_bytes, "\n",
      "worker_cpu_seconds = ", cpu.worker_cpu_seconds, "\n",
      "worker_nice = ", cpu.worker_nice, "\n",
      "worker_open_files = ", cpu.worker_open_files, "\n",
      "seccomp = ", cpu.seccomp ? "true" : "false", "\n",
      "\n[io]\n",
      "threads = ", io.threads, "\n",
      "queue_capacity = ", io.queue_capacity, "\n",
      "task_timeout_ms = ", io.task_timeout_ms, "\n",
      "data_dir = ", TomlString(io.data_dir), "\n",
      "http_allow = ", TomlStringArray(io.http_allow), "\n",
      "http_max_redirects = ", io.http_max_redirects, "\n",
      "http_connect_timeout_ms = ", io.http_connect_timeout_ms, "\n",
      "\n[limits]\n",
      "max_payload_bytes = ", limits.max_payload_bytes, "\n",
      "max_output_bytes = ", limits.max_output_bytes, "\n",
      "max_queued_bytes = ", limits.max_queued_bytes, "\n",
      "max_params = ", limits.max_params, "\n",
      "max_param_bytes = ", limits.max_param_bytes, "\n",
      "\n[log]\n",
      "level = ", TomlString(log.level), "\n",
      "format = ", TomlString(log.format), "\n",
      "\n[metrics]\n",
      "listen = ", TomlString(metrics.listen), "\n",
      "\n[plugins]\n",
      "paths = ", TomlStringArray(plugins.paths), "\n",
      "init_timeout_ms = ", plugins.init_timeout_ms, "\n");
  // clang-format on
}

}  // namespace crunch::daemon
