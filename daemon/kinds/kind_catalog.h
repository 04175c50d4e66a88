// KindCatalog: the CPU kinds' schemas as text, from a worker to the daemon.
//
// The daemon never loads plugins itself (plugin_loader.h). At start and on
// reload it runs `crunch_worker --describe`, which loads the kinds and writes
// their catalog to stdout: every kind's name, description, source, output
// bound and parameter schema, in order. The daemon validates calls against the
// decoded specs (which have no run function) and numbers the kinds by their
// position, as the workers do.
//
// The catalog's digest is handed to every worker it starts (--kinds-digest): a
// worker whose own catalog differs (a plugin file was rebuilt since the daemon
// read it) refuses to serve rather than run tasks under the wrong numbers.
//
// Format: a "crunch-kinds 1" line, then one line per kind ("kind", name,
// description, source, bounded, fixed_bytes, per_input_kib) followed by one per
// parameter ("param", name, "int" or "string", required, default, min, max,
// description), then "end" and the kind count. Fields are tab-separated and
// C-escaped, so no field holds a tab or a newline.
//
// Thread safety: plain functions over values.

#ifndef CRUNCH_DAEMON_KINDS_KIND_CATALOG_H_
#define CRUNCH_DAEMON_KINDS_KIND_CATALOG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/kind.h"

namespace crunch::daemon {

std::string EncodeKindCatalog(const std::vector<KindSpec>& kinds);

// The kinds in `text`, as CPU kinds without a run function. INVALID_ARGUMENT
// naming the line if it is not a complete catalog.
absl::StatusOr<std::vector<KindSpec>> DecodeKindCatalog(absl::string_view text);

// A short hex digest of an encoded catalog.
std::string KindCatalogDigest(absl::string_view encoded);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_KIND_CATALOG_H_
