/* slow_init.so: a plugin whose init takes as long as a test wants: while the
 * file named by $CRUNCH_TEST_SLOW_INIT_GATE does not exist (at most 30 s), init
 * waits, as a plugin reading a large model would. Without the variable it
 * loads at once. With $CRUNCH_TEST_SLOW_INIT_FIRST_FREE set too, the first
 * process to load it (crunchd's probe, on a reload) does not wait: only the
 * workers do. Its kind, slow.ready, writes "ready". */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <crunch/plugin.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int run_ready(crunch_task* task) { return crunch_task_write_str(task, "ready"); }

static const crunch_kind kinds[] = {
    {.name = "slow.ready",
     .description = "Writes \"ready\" (its plugin's init waits for a gate file).",
     .run = run_ready,
     .output = {.bounded = 1, .fixed_bytes = 16}},
};

static const crunch_plugin plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "slow_init",
    .version = "1.0",
    .kinds = kinds,
    .kind_count = 1,
};

CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) {
  const char* gate = getenv("CRUNCH_TEST_SLOW_INIT_GATE");
  if (gate != NULL && getenv("CRUNCH_TEST_SLOW_INIT_FIRST_FREE") != NULL) {
    char first[4096];
    snprintf(first, sizeof(first), "%s.first", gate);
    const int fd = open(first, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd >= 0) {
      close(fd);
      return &plugin;
    }
  }
  const struct timespec tick = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
  for (int i = 0; gate != NULL && i < 3000 && access(gate, F_OK) != 0; ++i) nanosleep(&tick, NULL);
  return &plugin;
}
