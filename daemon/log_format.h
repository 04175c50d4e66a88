// Lets spdlog/fmt print absl::string_view (what absl::Status::message()
// returns). Debian's Abseil is built with its own string_view type, not
// std::string_view, so fmt does not know it. Include instead of spdlog.h.

#ifndef CRUNCH_DAEMON_LOG_FORMAT_H_
#define CRUNCH_DAEMON_LOG_FORMAT_H_

#include <fmt/format.h>

#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

#if !ABSL_USES_STD_STRING_VIEW
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
#endif

#endif  // CRUNCH_DAEMON_LOG_FORMAT_H_
