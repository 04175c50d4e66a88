#!/usr/bin/env bash
# plugin_sdk.out_of_tree: the plugin SDK as a plugin author gets it.
#
# Installs component plugin_sdk from crunchd's build dir into a temporary
# prefix, builds both examples against it as separate CMake projects, checks
# that each plugin exports only the plugin symbols, and compiles a plugin with
# the flags of `pkg-config --cflags crunch-plugin`. Everything happens under
# one temporary directory, removed on exit.
#
# usage: out_of_tree_test.sh CMAKE BUILD_DIR EXAMPLES_DIR GENERATOR CC CXX NM
set -euo pipefail

if [[ $# -ne 7 ]]; then
  echo "usage: $0 CMAKE BUILD_DIR EXAMPLES_DIR GENERATOR CC CXX NM" >&2
  exit 2
fi
cmake=$1 build_dir=$2 examples=$3 generator=$4 cc=$5 cxx=$6 nm=$7

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crunch-plugin-sdk.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sdk=$tmp/sdk

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The dynamic symbols a plugin defines must be the plugin ABI's, nothing else.
check_exports() {
  local so=$1 symbols
  [[ -f $so ]] || fail "$so was not built"
  symbols=$("$nm" -D --defined-only "$so" | awk '{print $NF}' | sort)
  grep -qx crunch_plugin_init <<<"$symbols" || fail "$so does not export crunch_plugin_init"
  local unexpected
  unexpected=$(grep -vx -e crunch_plugin_init -e crunch_plugin_load_error <<<"$symbols" || true)
  [[ -z $unexpected ]] || fail "$so exports more than the plugin ABI: $(tr '\n' ' ' <<<"$unexpected")"
  echo "ok: $so exports $(tr '\n' ' ' <<<"$symbols")"
}

"$cmake" --install "$build_dir" --component plugin_sdk --prefix "$sdk"
echo "installed:"
(cd "$sdk" && find . -type f | sort)

for example in wordfreq imagekit; do
  out=$tmp/build-$example
  "$cmake" -S "$examples/$example" -B "$out" -G "$generator" --no-warn-unused-cli \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$sdk" \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
  # The package found must be the one just installed, not one on the system.
  found=$(sed -n 's/^crunch_DIR:PATH=//p' "$out/CMakeCache.txt")
  [[ $found == "$sdk/share/cmake/crunch" ]] || fail "$example found crunch in '$found', not $sdk"
  grep -qE -- "(-I|-isystem )$sdk/include " "$out/compile_commands.json" ||
    fail "$example does not compile against $sdk/include"
  "$cmake" --build "$out"
  check_exports "$out/$example.so"
done

# pkg-config: the .pc file must point into the prefix it was installed in.
cflags=$(PKG_CONFIG_PATH="$sdk/share/pkgconfig" pkg-config --cflags crunch-plugin)
[[ $cflags == *"$sdk/"* ]] || fail "pkg-config --cflags crunch-plugin gave '$cflags', not a path in $sdk"
cat >"$tmp/probe.c" <<'C'
#include <crunch/plugin.h>
static const crunch_plugin plugin = {
    .abi_version = CRUNCH_PLUGIN_ABI_VERSION, .name = "probe", .version = "0"};
CRUNCH_PLUGIN_EXPORT const crunch_plugin* crunch_plugin_init(void) { return &plugin; }
C
# shellcheck disable=SC2086  # cflags is a list of flags.
"$cc" $cflags -std=c11 -Wall -Werror -shared -fPIC -fvisibility=hidden \
  -o "$tmp/probe.so" "$tmp/probe.c"
check_exports "$tmp/probe.so"
echo "PASS"
