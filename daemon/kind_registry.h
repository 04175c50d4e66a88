// KindRegistry: every kind the daemon serves, by name.
//
// CPU kinds are numbered by their position in the list the worker processes
// build from the same code (CpuKinds()), and that number is what a descriptor
// carries; the worker checks it against its own list.
//
// Thread safety: immutable after construction; safe to share.

#ifndef CRUNCH_DAEMON_KIND_REGISTRY_H_
#define CRUNCH_DAEMON_KIND_REGISTRY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/kind.h"

namespace crunch::daemon {

class KindRegistry {
 public:
  struct Entry {
    const KindSpec* spec;
    uint32_t cpu_index;  // Position among the CPU kinds (what a descriptor carries).
  };

  // Duplicate names are an error naming the kind.
  static absl::StatusOr<KindRegistry> Create(std::vector<KindSpec> cpu_kinds,
                                             std::vector<KindSpec> io_kinds);

  KindRegistry(KindRegistry&&) = default;
  KindRegistry& operator=(KindRegistry&&) = default;

  // NOT_FOUND listing the known kinds.
  absl::StatusOr<Entry> Find(absl::string_view name) const;

  // Every kind, CPU kinds first, in their declared order.
  const std::vector<KindSpec>& kinds() const { return kinds_; }

 private:
  KindRegistry() = default;

  std::vector<KindSpec> kinds_;
  absl::flat_hash_map<std::string, Entry> by_name_;
  std::string known_names_;  // For NOT_FOUND messages.
};

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KIND_REGISTRY_H_
