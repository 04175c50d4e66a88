#!/bin/sh
# Runs one libFuzzer target for CTest (see CMakeLists.txt):
#
#   run_fuzzer.sh FUZZER SEED_CORPUS_DIR ARTIFACT_PREFIX [libFuzzer flags...]
#
# libFuzzer writes the new inputs it finds into the first corpus directory it
# is given, so that is a fresh temporary directory: the seed corpus in the
# repository is read, never written. A crashing, leaking or slow input is saved
# as ARTIFACT_PREFIX<crash|leak|timeout>-<sha1>; the exit status is libFuzzer's
# (0: nothing found).
set -u
fuzzer=$1 seeds=$2 artifacts=$3
shift 3
scratch=$(mktemp -d "${TMPDIR:-/tmp}/crunch-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT
"$fuzzer" -artifact_prefix="$artifacts" -print_final_stats=1 "$@" "$scratch" "$seeds"
