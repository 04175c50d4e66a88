/* wordfreq: an example crunchd task plugin in C.
 *
 * Kind text.wordfreq counts the words of a text and returns the most frequent
 * ones, "COUNT\tWORD\n" per line. A word is a run of ASCII letters, digits and
 * apostrophes, compared in lower case; every other byte (punctuation, spaces,
 * non-ASCII bytes) separates words, so any input is valid, binary included.
 *
 * How it works: one pass over the input finds the words and counts them in an
 * open-addressing hash table. An entry points at the word's first occurrence
 * in the input (which stays valid and unchanged for the whole task), so words
 * are never copied: memory is 64 to 128 bytes per distinct word. Then a heap
 * picks the `top` most frequent (ties in word order), which are written
 * through a small buffer. Every allocation is checked, and the counting loop
 * polls crunch_task_should_stop() once per 64 KiB of input.
 */

#include <crunch/plugin.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>

/* Input bytes between two crunch_task_should_stop() polls: about 0.1 ms of work. */
#define POLL_INTERVAL_BYTES (64u * 1024u)

/* The longest output line without its word: a uint64_t count, a tab, a newline. */
#define MAX_LINE_OVERHEAD 22u
#define MAX_TOP 10000

/* --- words ---------------------------------------------------------------- */

static int is_word_byte(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '\'';
}

static uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c; }

/* Compares two words as their lower-case forms, like strcmp. */
static int compare_lowercase(const uint8_t* a, size_t a_length, const uint8_t* b, size_t b_length) {
  const size_t n = a_length < b_length ? a_length : b_length;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t x = lower(a[i]), y = lower(b[i]);
    if (x != y) return x < y ? -1 : 1;
  }
  return a_length == b_length ? 0 : (a_length < b_length ? -1 : 1);
}

/* --- the hash table --------------------------------------------------------- */

typedef struct word_entry {
  const uint8_t* word; /* First occurrence in the input; NULL: an empty slot. */
  size_t length;
  uint64_t hash; /* FNV-1a of the lower-case word. */
  uint64_t count;
} word_entry;

typedef struct word_table {
  word_entry* slots;
  size_t capacity; /* A power of two; kept at most half full. */
  size_t size;
} word_table;

/* Moves every entry into a table twice as large. 0 if out of memory. */
static int grow(word_table* table) {
  const size_t capacity = table->capacity == 0 ? 1024 : table->capacity * 2;
  if (capacity > SIZE_MAX / sizeof(word_entry)) return 0;
  word_entry* slots = calloc(capacity, sizeof(word_entry));
  if (slots == NULL) return 0;
  for (size_t i = 0; i < table->capacity; ++i) {
    const word_entry* e = &table->slots[i];
    if (e->word == NULL) continue;
    size_t j = (size_t)e->hash & (capacity - 1);
    while (slots[j].word != NULL) j = (j + 1) & (capacity - 1);
    slots[j] = *e;
  }
  free(table->slots);
  table->slots = slots;
  table->capacity = capacity;
  return 1;
}

/* Counts one occurrence of a word. 0 if out of memory. */
static int add_word(word_table* table, const uint8_t* word, size_t length, uint64_t hash) {
  if (2 * (table->size + 1) > table->capacity && !grow(table)) return 0;
  size_t i = (size_t)hash & (table->capacity - 1);
  for (;; i = (i + 1) & (table->capacity - 1)) {
    word_entry* e = &table->slots[i];
    if (e->word == NULL) {
      *e = (word_entry){.word = word, .length = length, .hash = hash, .count = 1};
      ++table->size;
      return 1;
    }
    if (e->hash == hash && compare_lowercase(e->word, e->length, word, length) == 0) {
      ++e->count;
      return 1;
    }
  }
}

/* --- the top words ------------------------------------------------------------ */

/* Most frequent first; equally frequent words in byte order. */
static int by_count_then_word(const void* a, const void* b) {
  const word_entry* x = a;
  const word_entry* y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return compare_lowercase(x->word, x->length, y->word, y->length);
}

/* Moves the `top` first entries in by_count_then_word order to the front of
 * `entries`, sorted, and returns how many there are. A heap holds the best
 * seen so far with the worst of them at its root, so most entries cost one
 * comparison of counts: sorting them all would cost far more, and its
 * comparisons would read words scattered across the input. */
static size_t select_top(word_entry* entries, size_t n, size_t top) {
  word_entry* heap = entries; /* Grows at the front: entries[0..size). */
  size_t size = 0;
  for (size_t i = 0; i < n; ++i) {
    const word_entry e = entries[i];
    size_t at;
    if (size < top) {
      for (at = size++; at > 0 && by_count_then_word(&e, &heap[(at - 1) / 2]) > 0;) {
        heap[at] = heap[(at - 1) / 2]; /* Sift the new entry up past better ones. */
        at = (at - 1) / 2;
      }
    } else if (by_count_then_word(&e, &heap[0]) < 0) {
      for (at = 0;;) { /* Replace the worst; sift down past worse children. */
        size_t child = 2 * at + 1;
        if (child >= size) break;
        if (child + 1 < size && by_count_then_word(&heap[child + 1], &heap[child]) > 0) ++child;
        if (by_count_then_word(&heap[child], &e) <= 0) break;
        heap[at] = heap[child];
        at = child;
      }
    } else {
      continue;
    }
    heap[at] = e;
  }
  qsort(heap, size, sizeof(word_entry), by_count_then_word);
  return size;
}

/* --- output ----------------------------------------------------------------- */

/* Collects output into larger writes. A failed write returns its code with no
 * message of our own: crunchd's message already names the limit exceeded. */
typedef struct output_buffer {
  crunch_task* task;
  size_t used;
  char bytes[16 * 1024];
} output_buffer;

static int flush(output_buffer* out) {
  const int code = crunch_task_write(out->task, out->bytes, out->used);
  out->used = 0;
  return code;
}

static int put_byte(output_buffer* out, char c) {
  if (out->used == sizeof(out->bytes)) {
    const int code = flush(out);
    if (code != CRUNCH_OK) return code;
  }
  out->bytes[out->used++] = c;
  return CRUNCH_OK;
}

static int put_line(output_buffer* out, const word_entry* e) {
  char count[MAX_LINE_OVERHEAD];
  const int n = snprintf(count, sizeof(count), "%" PRIu64 "\t", e->count);
  int code = CRUNCH_OK;
  for (int i = 0; i < n && code == CRUNCH_OK; ++i) code = put_byte(out, count[i]);
  for (size_t i = 0; i < e->length && code == CRUNCH_OK; ++i) {
    code = put_byte(out, (char)lower(e->word[i]));
  }
  return code == CRUNCH_OK ? put_byte(out, '\n') : code;
}

/* --- the kind --------------------------------------------------------------- */

static int64_t int_param(const crunch_task* task, const char* name, int64_t fallback) {
  const crunch_param* p = crunch_task_param(task, name);
  return p != NULL && p->present ? p->int_value : fallback;
}

static int stopped(crunch_task* task, int code) {
  return crunch_task_fail(task, code,
                          code == CRUNCH_CANCELLED
                              ? "text.wordfreq was cancelled before it finished"
                              : "text.wordfreq did not finish before the task's deadline");
}

static int count_words(crunch_task* task, size_t min_length, word_table* table) {
  const uint8_t* in = task->input;
  const size_t n = task->input_size;
  size_t next_poll = POLL_INTERVAL_BYTES;
  size_t i = 0;
  while (i < n) {
    if (i >= next_poll) {
      const int stop = crunch_task_should_stop(task);
      if (stop != CRUNCH_OK) return stopped(task, stop);
      next_poll = i + POLL_INTERVAL_BYTES;
    }
    if (!is_word_byte(in[i])) {
      ++i;
      continue;
    }
    const size_t start = i;
    uint64_t hash = 14695981039346656037u; /* FNV-1a */
    for (; i < n && is_word_byte(in[i]); ++i) hash = (hash ^ lower(in[i])) * 1099511628211u;
    if (i - start >= min_length && !add_word(table, in + start, i - start, hash)) {
      return crunch_task_fail(task, CRUNCH_RESOURCE_EXHAUSTED,
                              "text.wordfreq ran out of memory after %zu distinct words "
                              "(%zu of %zu input bytes read)",
                              table->size, i, n);
    }
  }
  return CRUNCH_OK;
}

static int run_wordfreq(crunch_task* task) {
  const int64_t top = int_param(task, "top", 10);
  const int64_t min_length = int_param(task, "min_length", 1);

  word_table table = {NULL, 0, 0};
  int code = count_words(task, (size_t)min_length, &table);
  if (code == CRUNCH_OK && table.size > 0) {
    /* Gather the entries at the front of the table, then pick the top ones. */
    size_t n = 0;
    for (size_t i = 0; i < table.capacity; ++i) {
      if (table.slots[i].word != NULL) table.slots[n++] = table.slots[i];
    }
    n = select_top(table.slots, n, (size_t)top);

    output_buffer out = {.task = task, .used = 0};
    for (size_t i = 0; i < n && code == CRUNCH_OK; ++i) {
      code = put_line(&out, &table.slots[i]);
    }
    if (code == CRUNCH_OK) code = flush(&out);
  }
  free(table.slots);
  return code;
}

static const crunch_param_spec wordfreq_params[] = {
    {
        .name = "top",
        .type = CRUNCH_PARAM_INT,
        .description = "how many of the most frequent words to return",
        .default_value = "10",
        .min = 1,
        .max = MAX_TOP,
    },
    {
        .name = "min_length",
        .type = CRUNCH_PARAM_INT,
        .description = "ignore words shorter than this many characters",
        .default_value = "1",
        .min = 1,
        .max = 100,
    },
};

static const crunch_kind wordfreq_kinds[] = {
    {
        .name = "text.wordfreq",
        .description =
            "The `top` most frequent words of a text, one \"COUNT<tab>WORD\" line each, most "
            "frequent first (ties in word order). Words are runs of ASCII letters, digits and "
            "apostrophes, counted in lower case.",
        .params = wordfreq_params,
        .param_count = sizeof(wordfreq_params) / sizeof(wordfreq_params[0]),
        .run = run_wordfreq,
        /* At most MAX_TOP lines, each a count and two separators around a
         * distinct word; the distinct words together are no longer than the
         * input. */
        .output = {.bounded = 1,
                   .fixed_bytes = (uint64_t)MAX_TOP * MAX_LINE_OVERHEAD,
                   .per_input_kib = 1024},
    },
};

static const crunch_plugin wordfreq_plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION,
    .name = "wordfreq",
    .version = "1.0.0",
    .kinds = wordfreq_kinds,
    .kind_count = sizeof(wordfreq_kinds) / sizeof(wordfreq_kinds[0]),
};

CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &wordfreq_plugin; }
