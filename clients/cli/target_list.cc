#include "clients/cli/target_list.h"

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"

namespace crunch::cli {
namespace {

// An entry of the list: a sockaddr scheme and what follows it, or (empty
// scheme) any other target, kept whole in `rest`.
struct Entry {
  std::string scheme;
  std::string rest;
};

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Entry Classify(std::string_view item) {
  for (std::string_view scheme : {"unix-abstract", "unix", "ipv4", "ipv6"}) {
    if (StartsWith(item, scheme) && item.size() > scheme.size() && item[scheme.size()] == ':') {
      std::string_view rest = item.substr(scheme.size() + 1);
      // "unix:///a.sock" is the URI spelling of "unix:/a.sock".
      if (scheme == "unix" && StartsWith(rest, "///")) rest.remove_prefix(2);
      return {std::string(scheme), std::string(rest)};
    }
  }
  if (StartsWith(item, "/")) return {"unix", std::string(item)};
  return {"", std::string(item)};
}

std::string TargetOf(const Entry& e) { return e.scheme.empty() ? e.rest : e.scheme + ":" + e.rest; }

}  // namespace

absl::StatusOr<TargetList> ParseTargetList(const std::string& address) {
  const std::string_view whole = Trim(address);
  if (whole.empty()) {
    return absl::InvalidArgumentError(
        "--address is empty; give a gRPC target such as unix:/path/to/crunchd.sock or host:port");
  }
  TargetList list;
  if (whole.find(',') == std::string_view::npos) {
    // Any gRPC target, as given; only a bare path is completed to unix:PATH.
    const Entry e = Classify(whole);
    list.targets.push_back(e.scheme == "unix" && !StartsWith(whole, "unix") ? TargetOf(e)
                                                                            : std::string(whole));
    return list;
  }

  std::string_view rest = whole;
  std::string previous_scheme;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = Trim(rest.substr(0, comma));
    if (item.empty()) {
      return absl::InvalidArgumentError("empty entry in the address list '" + std::string(whole) +
                                        "'; separate addresses with single commas");
    }
    Entry e = Classify(item);
    // gRPC's own list form "unix:/a.sock,b.sock": a relative path after a unix entry
    // (absolute paths are recognised on their own, and "10.0.0.2:1" after an
    // "ipv4:" entry works as a plain target).
    if (StartsWith(previous_scheme, "unix") && e.scheme.empty() &&
        item.find(':') == std::string_view::npos) {
      e.scheme = previous_scheme;
    }
    previous_scheme = e.scheme;
    list.targets.push_back(TargetOf(e));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return list;
}

absl::StatusOr<TaskRef> ParseTaskRef(const std::string& text) {
  const size_t at = text.find('@');
  const std::string digits = text.substr(0, at);
  TaskRef ref;
  if (digits.empty() || digits.size() > 20 ||
      digits.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(digits, &ref.id) || (at != std::string::npos && at + 1 == text.size())) {
    return absl::InvalidArgumentError(
        "task id '" + text +
        "' is not a number or NUMBER@ADDRESS; give the id `crunchctl submit` printed");
  }
  if (at != std::string::npos) ref.target = text.substr(at + 1);
  return ref;
}

std::string FormatTaskRef(uint64_t id, const std::string& target) {
  return target.empty() ? std::to_string(id) : std::to_string(id) + "@" + target;
}

}  // namespace crunch::cli
