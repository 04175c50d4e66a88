// Kinds from a plugin's table (crunch/plugin.h).
//
// KindsFromPlugin checks a crunch_plugin table as input from outside: the ABI
// version, every name, every parameter schema, each default against its own
// range. It then wraps each kind as a KindSpec whose run() calls the plugin's C
// function through a crunch_task built over the Output and the TaskContext.
// The built-in CPU kinds are such a table too (cpu_kinds.h), so every CPU
// kernel runs this one way, whether it ships with crunchd or not.
//
// What a kind's run returns is checked as well: a status outside 0..16 ends
// the task INTERNAL naming the kind; a failed write the kernel ignored still
// fails the task (its output is incomplete); a failure without a message gets
// one naming the kind and the code.
//
// Thread safety: the KindSpecs are immutable values; their run() may be called
// from any number of threads at once if the plugin's function allows it.

#ifndef CRUNCH_DAEMON_KINDS_PLUGIN_KINDS_H_
#define CRUNCH_DAEMON_KINDS_PLUGIN_KINDS_H_

#include <crunch/plugin.h>

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/kind.h"

namespace crunch::daemon {

// `source` names the plugin in messages and in KindSpec::source ("built-in",
// or "plugin wordfreq 1.0 (/usr/lib/crunch/wordfreq.so)"). The table must
// outlive the returned specs. FAILED_PRECONDITION for a table built for
// another ABI version, INVALID_ARGUMENT for anything else wrong with it,
// naming the kind and field.
absl::StatusOr<std::vector<KindSpec>> KindsFromPlugin(const crunch_plugin& plugin,
                                                      absl::string_view source);

}  // namespace crunch::daemon

#endif  // CRUNCH_DAEMON_KINDS_PLUGIN_KINDS_H_
