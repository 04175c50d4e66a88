/* wrong_abi.so: a plugin built for an ABI version crunchd does not speak
 * (CRUNCH_PLUGIN_ABI_VERSION + 1), which it must refuse naming both. */
#include <crunch/plugin.h>

static int run_nothing(crunch_task* task) {
  (void)task;
  return CRUNCH_OK;
}

static const crunch_kind kinds[] = {
    {.name = "text.wordfreq",
     .description = "Never runs: the plugin is refused.",
     .run = run_nothing},
};

static const crunch_plugin plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION + 1,
    .name = "wrong_abi",
    .version = "1.0",
    .kinds = kinds,
    .kind_count = 1,
};

CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &plugin; }
