/* crunch/plugin.h: the C ABI between crunchd and task plugins.
 *
 * A plugin is a shared library that adds CPU task kinds to crunchd. Its code
 * runs in crunchd's worker processes (never in the daemon itself), with the
 * same isolation as the built-in kinds: a crash, a leak or a hang costs one
 * worker, which is replaced, and the task ends ABORTED or DEADLINE_EXCEEDED.
 *
 * A plugin exports one function, `crunch_plugin_init`, that returns a table
 * of kinds. Each kind has a name, a description, a parameter schema and the
 * function that runs a task. The daemon validates every call's parameters
 * against the schema before the task reaches a worker, so `run` only sees
 * values that are present (or defaulted), well-formed and in range.
 *
 *   #include <crunch/plugin.h>
 *
 *   static int run_upper(crunch_task* task) {
 *     for (size_t i = 0; i < task->input_size; ++i) {
 *       char c = (char)toupper(task->input[i]);
 *       if (crunch_task_write(task, &c, 1) != CRUNCH_OK) return CRUNCH_RESOURCE_EXHAUSTED;
 *     }
 *     return CRUNCH_OK;
 *   }
 *
 *   static const crunch_kind kinds[] = {{
 *       .name = "text.upper",
 *       .description = "The payload in upper case (ASCII).",
 *       .run = run_upper,
 *       .output = {.bounded = 1, .per_input_kib = 1024},
 *   }};
 *   static const crunch_plugin plugin = {
 *       .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
 *       .name = "upper", .version = "1.0",
 *       .kinds = kinds, .kind_count = 1,
 *   };
 *   CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &plugin; }
 *
 * The contract:
 * - Versioning. The table says which CRUNCH_PLUGIN_ABI_VERSION it was built
 *   with; crunchd refuses a plugin built for another version, naming both.
 *   The version changes whenever any struct or function here changes.
 * - Life. `crunch_plugin_init` is called once per process that loads the
 *   plugin (each worker, and a short-lived process that reads the schemas for
 *   the daemon), before the worker confines itself. It may do one-time set-up
 *   that needs files (reading a model, a dictionary) and return NULL to refuse
 *   to load; the plugin's `load_error` (if set) then says why. The table and
 *   everything it points to must stay valid and unchanged while the library is
 *   loaded.
 * - Confinement. After init, with `[cpu] seccomp = true`, a worker may not open
 *   files, use the network or start programs; `run` should only compute.
 *   Memory, CPU time and open files are bounded by the `[cpu] worker_*` limits.
 * - Threads. A worker runs one task at a time, but several workers run the
 *   same kind at once (in different processes). `run` must not keep state
 *   between calls that a replaced worker would miss.
 * - Output. `run` streams its result through crunch_task_write(); the daemon
 *   lends each task an output extent of shared memory of at most
 *   `[limits] max_output_bytes`, smaller if the kind declares a bound
 *   (crunch_output_bound). A write past it fails with CRUNCH_RESOURCE_EXHAUSTED
 *   and writes nothing; return that code (the message says what was exceeded).
 * - Result. `run` returns a status code (crunch_status, gRPC's numbering). On
 *   failure, crunch_task_fail() sets the message the caller sees; the output
 *   written so far is discarded. Both reach the caller unchanged.
 * - Stopping. crunch_task_should_stop() returns 0 while the task may go on,
 *   then the status to end with: CRUNCH_DEADLINE_EXCEEDED once the deadline
 *   has passed, CRUNCH_CANCELLED once a caller cancelled it. Polling it lets
 *   a long kernel end cleanly and keeps its worker: crunchd kills a worker
 *   whose task runs past its deadline, or still runs a cancelled task 100 ms
 *   after the cancel.
 */

#ifndef CRUNCH_PLUGIN_H_
#define CRUNCH_PLUGIN_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define CRUNCH_PLUGIN_ABI_VERSION 1u

/* The symbol every plugin exports, and its type. */
#define CRUNCH_PLUGIN_INIT_SYMBOL "crunch_plugin_init"
#define CRUNCH_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Status codes, numbered as gRPC's: they reach the caller as the call's status. */
typedef enum crunch_status {
  CRUNCH_OK = 0,
  CRUNCH_CANCELLED = 1,
  CRUNCH_UNKNOWN = 2,
  CRUNCH_INVALID_ARGUMENT = 3,
  CRUNCH_DEADLINE_EXCEEDED = 4,
  CRUNCH_NOT_FOUND = 5,
  CRUNCH_ALREADY_EXISTS = 6,
  CRUNCH_PERMISSION_DENIED = 7,
  CRUNCH_RESOURCE_EXHAUSTED = 8,
  CRUNCH_FAILED_PRECONDITION = 9,
  CRUNCH_ABORTED = 10,
  CRUNCH_OUT_OF_RANGE = 11,
  CRUNCH_UNIMPLEMENTED = 12,
  CRUNCH_INTERNAL = 13,
  CRUNCH_UNAVAILABLE = 14,
  CRUNCH_DATA_LOSS = 15,
  CRUNCH_UNAUTHENTICATED = 16
} crunch_status;

typedef enum crunch_param_type {
  CRUNCH_PARAM_INT = 1,    /* a decimal int64 within [min, max] */
  CRUNCH_PARAM_STRING = 2  /* any bytes, up to [limits] max_param_bytes */
} crunch_param_type;

/* One parameter a kind takes. Names are 1 to 64 characters of [a-z0-9_]. */
typedef struct crunch_param_spec {
  const char* name;
  crunch_param_type type;
  const char* description;   /* Shown by ListKinds and `crunchctl kinds`. */
  int required;              /* Nonzero: calls without it are INVALID_ARGUMENT. */
  const char* default_value; /* Used when an optional parameter is left out; NULL or "": none. */
  int64_t min;               /* INT: the allowed range, inclusive (default within it). */
  int64_t max;
} crunch_param_spec;

/* A parameter's value as `run` sees it: one per declared parameter, in the
 * order the kind declares them. */
typedef struct crunch_param {
  const char* name;   /* The declared name. */
  int present;        /* 0: optional, left out and without a default ("" is none). */
  const char* value;  /* The value's bytes, NUL-terminated ("" if !present). */
  size_t value_size;  /* Without the NUL (a STRING may hold NULs). */
  int64_t int_value;  /* INT: the value (0 if !present). */
} crunch_param;

/* One task, as `run` gets it. The fields are read-only for the plugin; use
 * the functions below rather than the host callbacks directly. */
typedef struct crunch_task crunch_task;
struct crunch_task {
  const uint8_t* input; /* The payload. */
  size_t input_size;
  const crunch_param* params; /* One per declared parameter, in declaration order. */
  size_t param_count;
  uint64_t deadline_ns; /* CLOCK_MONOTONIC nanoseconds; 0: none. */

  /* Host callbacks (crunchd's side). */
  int (*write)(crunch_task* task, const void* bytes, size_t size);
  uint64_t (*output_remaining)(const crunch_task* task);
  int (*should_stop)(const crunch_task* task);
  void (*set_message)(crunch_task* task, const char* message, size_t size);
  void* host; /* crunchd's; do not touch. */
};

/* How many output bytes a task of a kind can write, at most:
 * fixed_bytes + input_size * per_input_kib / 1024. The daemon lends exactly
 * that (capped at max_output_bytes) without running plugin code, so a bound
 * lets more tasks be in flight at once. `bounded` = 0: no bound is known, and
 * each task is lent max_output_bytes. */
typedef struct crunch_output_bound {
  int bounded;
  uint64_t fixed_bytes;
  uint64_t per_input_kib;
} crunch_output_bound;

/* Runs one task. Returns a crunch_status. */
typedef int (*crunch_run_fn)(crunch_task* task);

/* One kind. Names are 1 to 64 characters of [a-z0-9_.-], start with a letter,
 * and are unique across the built-in kinds and every configured plugin
 * ("image.blur", "text.wordfreq"). */
typedef struct crunch_kind {
  const char* name;
  const char* description;
  const crunch_param_spec* params; /* At most 64. */
  size_t param_count;
  crunch_run_fn run;
  crunch_output_bound output;
} crunch_kind;

/* What crunch_plugin_init returns. */
typedef struct crunch_plugin {
  uint32_t abi_version; /* CRUNCH_PLUGIN_ABI_VERSION, as the plugin was built. */
  const char* name;     /* For logs and ListKinds ("wordfreq"). */
  const char* version;  /* The plugin's own version ("1.2.0"). */
  const crunch_kind* kinds;
  size_t kind_count;
} crunch_plugin;

/* Every plugin defines this (with CRUNCH_PLUGIN_EXPORT). NULL refuses the
 * load; then crunch_plugin_load_error, if the plugin defines it, says why. */
typedef const crunch_plugin* (*crunch_plugin_init_fn)(void);
#define CRUNCH_PLUGIN_LOAD_ERROR_SYMBOL "crunch_plugin_load_error"
typedef const char* (*crunch_plugin_load_error_fn)(void);

/* --- Helpers for `run` (inline: a plugin links nothing of crunchd's) ------ */

/* Appends bytes to the output. CRUNCH_OK, or CRUNCH_RESOURCE_EXHAUSTED (and
 * nothing written, the message set) if they do not fit. */
static inline int crunch_task_write(crunch_task* task, const void* bytes, size_t size) {
  return task->write(task, bytes, size);
}

static inline int crunch_task_write_str(crunch_task* task, const char* text) {
  return task->write(task, text, strlen(text));
}

/* Output bytes still allowed. */
static inline uint64_t crunch_task_output_remaining(const crunch_task* task) {
  return task->output_remaining(task);
}

/* 0 while the task may go on; then CRUNCH_DEADLINE_EXCEEDED or
 * CRUNCH_CANCELLED, the status to end with. */
static inline int crunch_task_should_stop(const crunch_task* task) {
  return task->should_stop(task);
}

/* Sets the message the caller sees with a failed status, and returns `code`:
 *   return crunch_task_fail(task, CRUNCH_INVALID_ARGUMENT, "not a PGM image: %s", why);
 * The message is truncated to 1023 bytes. */
static inline int crunch_task_fail(crunch_task* task, int code, const char* format, ...)
    __attribute__((format(printf, 3, 4)));
static inline int crunch_task_fail(crunch_task* task, int code, const char* format, ...) {
  /* No casts here: C++ plugins that include this header may build with
   * -Wold-style-cast. vsnprintf truncates and terminates; strlen measures. */
  char message[1024];
  va_list args;
  va_start(args, format);
  if (vsnprintf(message, sizeof(message), format, args) < 0) message[0] = '\0';
  va_end(args);
  task->set_message(task, message, strlen(message));
  return code;
}

/* The parameter named `name`, or NULL if the kind declares none by that name. */
static inline const crunch_param* crunch_task_param(const crunch_task* task, const char* name) {
  for (size_t i = 0; i < task->param_count; ++i) {
    if (strcmp(task->params[i].name, name) == 0) return &task->params[i];
  }
  return NULL;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CRUNCH_PLUGIN_H_ */
