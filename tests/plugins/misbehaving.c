/* misbehaving.so: a plugin whose kinds do what a buggy plugin does (crash,
 * hang, leak), and one that behaves, so tests can check crunchd gives plugin
 * code exactly the isolation of its built-in kinds. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <crunch/plugin.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

static int run_crash(crunch_task* task) {
  const crunch_param* how = crunch_task_param(task, "how");
  if (strcmp(how->value, "abort") == 0) abort();
  if (strcmp(how->value, "segv") != 0) {
    return crunch_task_fail(task, CRUNCH_INVALID_ARGUMENT, "how is '%s'; allowed: segv, abort",
                            how->value);
  }
  volatile int* volatile nowhere = NULL;
  *nowhere = 1; /* SIGSEGV */
  return CRUNCH_INTERNAL;
}

/* Spins without ever asking crunch_task_should_stop: only the daemon's
 * deadline (which kills the worker) ends it. */
static int run_hang(crunch_task* task) {
  (void)task;
  volatile unsigned long spins = 0;
  for (;;) ++spins;
  return CRUNCH_INTERNAL; /* Never reached. */
}

/* Allocates `mib` MiB, touches every page and never frees it. */
static int run_leak(crunch_task* task) {
  const size_t bytes = (size_t)crunch_task_param(task, "mib")->int_value << 20;
  char* block = malloc(bytes);
  if (block == NULL) {
    return crunch_task_fail(task, CRUNCH_RESOURCE_EXHAUSTED, "could not allocate %zu bytes", bytes);
  }
  for (size_t i = 0; i < bytes; i += 4096) block[i] = 1;
  return crunch_task_write_str(task, "leaked");
}

/* Busy-waits `ms` milliseconds (polling should_stop, as a good kernel does),
 * then writes "ok". */
static int run_slow_ok(crunch_task* task) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  const int64_t start_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  const int64_t until_ns = start_ns + crunch_task_param(task, "ms")->int_value * 1000000;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec >= until_ns) break;
    const int stop = crunch_task_should_stop(task);
    if (stop != 0) return crunch_task_fail(task, stop, "stopped while waiting");
  }
  return crunch_task_write_str(task, "ok");
}

static const crunch_param_spec crash_params[] = {
    {.name = "how",
     .type = CRUNCH_PARAM_STRING,
     .description = "segv or abort",
     .default_value = "segv"},
};
static const crunch_param_spec leak_params[] = {
    {.name = "mib",
     .type = CRUNCH_PARAM_INT,
     .description = "MiB to allocate and keep",
     .default_value = "64",
     .min = 1,
     .max = 65536},
};
static const crunch_param_spec slow_ok_params[] = {
    {.name = "ms",
     .type = CRUNCH_PARAM_INT,
     .description = "milliseconds to busy-wait",
     .default_value = "0",
     .min = 0,
     .max = 60000},
};

static const crunch_kind kinds[] = {
    {.name = "bad.crash",
     .description = "Crashes its worker (SIGSEGV or abort()).",
     .params = crash_params,
     .param_count = 1,
     .run = run_crash,
     .output = {.bounded = 1, .fixed_bytes = 64}},
    {.name = "bad.hang",
     .description = "Spins forever, never polling should_stop.",
     .run = run_hang,
     .output = {.bounded = 1, .fixed_bytes = 64}},
    {.name = "bad.leak",
     .description = "Allocates memory and never frees it.",
     .params = leak_params,
     .param_count = 1,
     .run = run_leak,
     .output = {.bounded = 1, .fixed_bytes = 64}},
    {.name = "bad.slow_ok",
     .description = "Waits, then writes \"ok\".",
     .params = slow_ok_params,
     .param_count = 1,
     .run = run_slow_ok,
     .output = {.bounded = 1, .fixed_bytes = 64}},
};

static const crunch_plugin plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "misbehaving",
    .version = "1.0",
    .kinds = kinds,
    .kind_count = sizeof(kinds) / sizeof(kinds[0]),
};

CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &plugin; }
