#include "clients/cli/format.h"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>

namespace crunch::cli {
namespace {

// Columns padded to their widest cell; a column is right-aligned when its
// entry in `align` is 'r'. The header, if any, is just the first row.
class Table {
 public:
  explicit Table(std::string align, std::vector<std::string> header = {})
      : align_(std::move(align)) {
    if (!header.empty()) rows_.push_back(std::move(header));
  }

  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

  // The rows, padded, without line ends.
  std::vector<std::string> Lines() const {
    std::vector<size_t> width(align_.size(), 0);
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
        width[i] = std::max(width[i], row[i].size());
      }
    }
    std::vector<std::string> lines;
    for (const auto& row : rows_) {
      std::string line;
      for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
        if (i > 0) line += "  ";
        if (align_[i] == 'r') {
          line += fmt::format("{:>{}}", row[i], width[i]);
        } else if (i + 1 < row.size()) {
          line += fmt::format("{:<{}}", row[i], width[i]);
        } else {
          line += row[i];  // No trailing blanks.
        }
      }
      lines.push_back(std::move(line));
    }
    return lines;
  }

  std::string Render(std::string_view indent) const {
    std::string out;
    for (const std::string& line : Lines()) out += std::string(indent) + line + "\n";
    return out;
  }

 private:
  std::string align_;
  std::vector<std::vector<std::string>> rows_;
};

std::string Latency(const crunch::v1::LatencyInfo& l, uint64_t us) {
  return l.samples() == 0 ? "-" : FormatMicros(us);
}

}  // namespace

std::string FormatMicros(uint64_t us) {
  if (us < 1000) return fmt::format("{} us", us);
  if (us < 1'000'000) return fmt::format("{:.1f} ms", static_cast<double>(us) / 1e3);
  return fmt::format("{:.2f} s", static_cast<double>(us) / 1e6);
}

std::string FormatUptime(uint64_t ms) {
  const uint64_t s = ms / 1000;
  const uint64_t days = s / 86400, hours = s / 3600 % 24, minutes = s / 60 % 60, secs = s % 60;
  if (days > 0) return fmt::format("{}d {:02}h {:02}m", days, hours, minutes);
  if (hours > 0) return fmt::format("{}h {:02}m {:02}s", hours, minutes, secs);
  if (minutes > 0) return fmt::format("{}m {:02}s", minutes, secs);
  return fmt::format("{}s", secs);
}

std::string FormatMiB(uint64_t bytes) {
  return fmt::format("{:.1f}", static_cast<double>(bytes) / (1024.0 * 1024.0));
}

std::string FormatStatus(const crunch::v1::DaemonStatus& status) {
  std::string out = fmt::format("crunchd {}, pid {}, up {}\n", status.version(), status.pid(),
                                FormatUptime(status.uptime_ms()));
  if (status.draining()) out += "DRAINING: finishing accepted tasks, refusing new ones\n";

  Table workers("rrlrrrlr",
                {"SLOT", "PID", "STATE", "TASKS", "RESTARTS", "RECYCLES", "KIND", "RSS MiB"});
  for (const crunch::v1::WorkerInfo& w : status.workers()) {
    workers.AddRow({std::to_string(w.slot()), std::to_string(w.pid()), w.state(),
                    std::to_string(w.tasks_done()), std::to_string(w.restarts()),
                    std::to_string(w.recycles()), w.current_kind().empty() ? "-" : w.current_kind(),
                    FormatMiB(w.rss_bytes())});
  }
  out += "\nWorkers\n" + workers.Render("  ");

  Table pools("lrrrrrr", {"POOL", "BUSY/SIZE", "QUEUED/CAPACITY", "P50", "P90", "P99", "SAMPLES"});
  for (const crunch::v1::PoolInfo& p : status.pools()) {
    const crunch::v1::LatencyInfo& l = p.latency();
    pools.AddRow({p.name(), fmt::format("{}/{}", p.busy(), p.size()),
                  fmt::format("{}/{}", p.queued(), p.queue_capacity()), Latency(l, l.p50_us()),
                  Latency(l, l.p90_us()), Latency(l, l.p99_us()), std::to_string(l.samples())});
  }
  out += "\nPools (latency of recent tasks, from arrival to result)\n" + pools.Render("  ");

  const crunch::v1::Counters& c = status.counters();
  out +=
      fmt::format("\nCounters\n  accepted {}, completed {}, failed {}, rejected {}, cancelled {}\n",
                  c.accepted(), c.completed(), c.failed(), c.rejected(), c.cancelled());
  if (!c.failed_by_code().empty()) {
    // The map's order is unspecified: sort by code name.
    std::map<std::string, uint64_t> by_code(c.failed_by_code().begin(), c.failed_by_code().end());
    std::string list;
    for (const auto& [code, n] : by_code)
      list += fmt::format("{}{} {}", list.empty() ? "" : ", ", code, n);
    out += "  failed by code: " + list + "\n";
  }
  return out;
}

std::string FormatKinds(const crunch::v1::ListKindsReply& kinds) {
  size_t name_width = 4, pool_width = 4;
  for (const crunch::v1::KindInfo& k : kinds.kinds()) {
    name_width = std::max(name_width, k.name().size());
    pool_width = std::max(pool_width, k.pool().size());
  }
  const std::string indent(name_width + 2 + pool_width + 2 + 2, ' ');

  // One table for every parameter, so their columns line up across kinds.
  Table params("lllll", {"PARAM", "TYPE", "RANGE", "DEFAULT", "DESCRIPTION"});
  std::vector<size_t> param_count;
  for (const crunch::v1::KindInfo& k : kinds.kinds()) {
    param_count.push_back(static_cast<size_t>(k.params_size()));
    for (const crunch::v1::ParamInfo& p : k.params()) {
      const bool is_int = p.type() == "int";
      std::string fallback = p.required()                ? "required"
                             : p.default_value().empty() ? "optional"
                                                         : "default " + p.default_value();
      params.AddRow({p.name(), p.type(), is_int ? fmt::format("{}..{}", p.min(), p.max()) : "-",
                     std::move(fallback), p.description()});
    }
  }
  const std::vector<std::string> lines = params.Lines();  // Header first.

  std::string out =
      fmt::format("{:<{}}  {:<{}}  DESCRIPTION\n", "KIND", name_width, "POOL", pool_width);
  size_t next_line = 1;  // lines[0] is the parameters' header.
  bool header_shown = false;
  for (int i = 0; i < kinds.kinds_size(); ++i) {
    const crunch::v1::KindInfo& k = kinds.kinds(i);
    out += fmt::format("{:<{}}  {:<{}}  {}\n", k.name(), name_width, k.pool(), pool_width,
                       k.description());
    if (!k.source().empty() && k.source() != "built-in") {
      out += indent + "from " + k.source() + "\n";
    }
    if (param_count[static_cast<size_t>(i)] > 0 && !header_shown) {
      out += indent + lines[0] + "\n";
      header_shown = true;
    }
    for (size_t j = 0; j < param_count[static_cast<size_t>(i)]; ++j) {
      out += indent + lines[next_line++] + "\n";
    }
  }
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  // Only fails for messages with Any fields of unknown types; crunch.v1 has none.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

bool LooksBinary(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    const unsigned char c = *p;
    if (c == 0) return true;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return true;
    }
    if (static_cast<size_t>(end - p) < len) return true;
    for (size_t i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return true;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are invalid.
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return true;
    p += len;
  }
  return false;
}

uint64_t Percentile(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  const size_t index = static_cast<size_t>(std::max(1.0, rank)) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

std::string FormatBatchSummary(const BatchSummary& s) {
  const uint64_t failed = s.tasks - s.succeeded;
  std::string out =
      fmt::format("tasks       {} ({} ok, {} failed)\n", s.tasks, s.succeeded, failed);
  out += fmt::format("wall time   {:.3f} s\n", s.wall_seconds);
  const double rate = s.wall_seconds > 0 ? static_cast<double>(s.tasks) / s.wall_seconds : 0;
  out += fmt::format("throughput  {:.1f} tasks/s\n", rate);
  if (s.latencies_us.empty()) {
    out += "latency     -\n";
  } else {
    out += fmt::format(
        "latency     p50 {}, p90 {}, p99 {}, max {} (client-measured, send to result)\n",
        FormatMicros(Percentile(s.latencies_us, 50)), FormatMicros(Percentile(s.latencies_us, 90)),
        FormatMicros(Percentile(s.latencies_us, 99)), FormatMicros(s.latencies_us.back()));
  }
  if (s.errors.empty()) {
    out += "errors      none\n";
  } else {
    Table errors("lrl");
    for (const auto& [code, e] : s.errors) {
      errors.AddRow({code, std::to_string(e.count), "first: " + e.first_message});
    }
    bool first = true;
    for (const std::string& line : errors.Lines()) {
      out += (first ? "errors      " : "            ") + line + "\n";
      first = false;
    }
  }
  return out;
}

}  // namespace crunch::cli
