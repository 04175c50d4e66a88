#include "daemon/kind_registry.h"

#include "absl/strings/str_cat.h"

namespace crunch::daemon {

absl::StatusOr<KindRegistry> KindRegistry::Create(std::vector<KindSpec> cpu_kinds,
                                                  std::vector<KindSpec> io_kinds) {
  KindRegistry r;
  r.kinds_ = std::move(cpu_kinds);
  const size_t cpu_count = r.kinds_.size();
  for (KindSpec& k : io_kinds) r.kinds_.push_back(std::move(k));
  for (size_t i = 0; i < r.kinds_.size(); ++i) {
    const KindSpec& k = r.kinds_[i];
    const uint32_t cpu_index = i < cpu_count ? static_cast<uint32_t>(i) : UINT32_MAX;
    auto [it, added] = r.by_name_.emplace(k.name, Entry{&k, cpu_index});
    if (!added) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kind '", k.name, "' is defined twice: by ", it->second.spec->source, " (",
          PoolName(it->second.spec->pool), ") and by ", k.source, " (", PoolName(k.pool), ")"));
    }
    absl::StrAppend(&r.known_names_, r.known_names_.empty() ? "" : ", ", k.name);
  }
  return r;
}

absl::StatusOr<KindRegistry::Entry> KindRegistry::Find(absl::string_view name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown kind '", name, "'; known kinds: ", known_names_));
  }
  return it->second;
}

}  // namespace crunch::daemon
