#!/usr/bin/env bash
# Makes Debian's promtool (package prometheus) available to the metrics tests
# without installing the Prometheus server: downloads the .deb with
# `apt-get download`, extracts usr/bin/promtool into a cache under /var/tmp
# keyed by the package version, and links LINK to it.
#
#   tests/fetch_promtool.sh LINK
#
# A promtool already on PATH is used as is.
set -euo pipefail

link=${1:?usage: $0 LINK}
mkdir -p "$(dirname "$link")"

if command -v promtool >/dev/null 2>&1; then
  ln -sfn "$(command -v promtool)" "$link"
  exit 0
fi

candidate() { apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ { print $2 }'; }
version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "fetch_promtool: apt knows no 'prometheus' package; updating the package lists" >&2
  apt-get update -qq
  version=$(candidate)
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "fetch_promtool: no 'prometheus' package in the configured Debian repositories" >&2
  exit 1
fi

cache=/var/tmp/crunchd-promtool-${version//[^A-Za-z0-9.+~-]/_}
if [ ! -x "$cache/promtool" ]; then
  work=$(mktemp -d /var/tmp/crunchd-promtool.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  echo "fetch_promtool: downloading prometheus $version for its promtool" >&2
  # _apt cannot write into a private mktemp directory; download as ourselves.
  (cd "$work" && apt-get download -o APT::Sandbox::User=root "prometheus=$version" >/dev/null)
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
  mkdir -p "$cache"
  mv "$work/usr/bin/promtool" "$cache/promtool.tmp"
  mv "$cache/promtool.tmp" "$cache/promtool"
fi
"$cache/promtool" --version >/dev/null
ln -sfn "$cache/promtool" "$link"
