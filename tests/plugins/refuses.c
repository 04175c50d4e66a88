/* refuses.so: a plugin whose one-time set-up fails (its dictionary file is
 * missing), so crunch_plugin_init returns NULL and crunch_plugin_load_error
 * says why. */
#include <crunch/plugin.h>
#include <errno.h>

#define DICTIONARY "/nonexistent/crunch-refuses/words.txt"

static char load_error[256];

static int run_nothing(crunch_task* task) {
  (void)task;
  return CRUNCH_OK;
}

static const crunch_kind kinds[] = {
    {.name = "text.spell",
     .description = "Never runs: the plugin refuses to load.",
     .run = run_nothing},
};

static const crunch_plugin plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "refuses",
    .version = "1.0",
    .kinds = kinds,
    .kind_count = 1,
};

CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) {
  FILE* dictionary = fopen(DICTIONARY, "r");
  if (dictionary == NULL) {
    snprintf(load_error, sizeof(load_error), "cannot open its dictionary %s: %s", DICTIONARY,
             strerror(errno));
    return NULL;
  }
  fclose(dictionary);
  return &plugin;
}

CRUNCH_PLUGIN_EXPORT const char* crunch_plugin_load_error(void) { return load_error; }
