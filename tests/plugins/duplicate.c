/* duplicate.so: plugin "duplicate", which claims text.wordfreq (the wordfreq
 * example's kind, with the same results) and adds dup.unique. Loaded next to
 * wordfreq.so it is a configuration error; swapped in for it on SIGHUP it is
 * a rebuilt plugin with a new kind. Small inputs only: it counts by linear
 * search. */
#include <crunch/plugin.h>
#include <ctype.h>
#include <stdlib.h>

typedef struct word_count {
  char word[64];
  int64_t count;
} word_count;

static int by_count_then_word(const void* a, const void* b) {
  const word_count* x = a;
  const word_count* y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return strcmp(x->word, y->word);
}

static int is_word_char(int c) { return isalnum(c) || c == '\''; }

static int run_wordfreq(crunch_task* task) {
  const int64_t top = crunch_task_param(task, "top")->int_value;
  const int64_t min_length = crunch_task_param(task, "min_length")->int_value;
  word_count* words = calloc(task->input_size / 2 + 1, sizeof(word_count));
  if (words == NULL) return crunch_task_fail(task, CRUNCH_RESOURCE_EXHAUSTED, "out of memory");
  size_t n = 0;
  for (size_t i = 0; i < task->input_size;) {
    if (!is_word_char(task->input[i])) {
      ++i;
      continue;
    }
    char word[64];
    size_t length = 0;
    for (; i < task->input_size && is_word_char(task->input[i]); ++i) {
      if (length + 1 < sizeof(word)) word[length++] = (char)tolower(task->input[i]);
    }
    word[length] = '\0';
    if ((int64_t)length < min_length) continue;
    size_t k = 0;
    while (k < n && strcmp(words[k].word, word) != 0) ++k;
    if (k == n) memcpy(words[n++].word, word, length + 1);
    ++words[k].count;
  }
  qsort(words, n, sizeof(word_count), by_count_then_word);
  int status = CRUNCH_OK;
  for (size_t k = 0; k < n && (int64_t)k < top && status == CRUNCH_OK; ++k) {
    char line[96];
    const int size =
        snprintf(line, sizeof(line), "%lld\t%s\n", (long long)words[k].count, words[k].word);
    status = crunch_task_write(task, line, (size_t)size);
  }
  free(words);
  return status;
}

static int run_unique(crunch_task* task) { return crunch_task_write_str(task, "unique"); }

static const crunch_param_spec wordfreq_params[] = {
    {.name = "top",
     .type = CRUNCH_PARAM_INT,
     .description = "how many words to list",
     .default_value = "10",
     .min = 1,
     .max = 10000},
    {.name = "min_length",
     .type = CRUNCH_PARAM_INT,
     .description = "shortest word counted",
     .default_value = "1",
     .min = 1,
     .max = 100},
};

static const crunch_kind kinds[] = {
    {.name = "text.wordfreq",
     .description = "Word counts (a second definition of the kind).",
     .params = wordfreq_params,
     .param_count = 2,
     .run = run_wordfreq},
    {.name = "dup.unique",
     .description = "Writes \"unique\".",
     .run = run_unique,
     .output = {.bounded = 1, .fixed_bytes = 16}},
};

static const crunch_plugin plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "duplicate",
    .version = "2.0",
    .kinds = kinds,
    .kind_count = sizeof(kinds) / sizeof(kinds[0]),
};

CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &plugin; }
