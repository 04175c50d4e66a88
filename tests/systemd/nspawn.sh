# shellcheck shell=bash
# A Debian 12 root booted with a real systemd, for tests of crunchd as a
# service. Sourced by run_test.sh; needs root, debootstrap and systemd-nspawn
# (scripts/install-deps installs both).
#
#   nspawn_prepare_root DEPENDS      cached root with systemd, dbus and DEPENDS
#                                    (a .deb Depends field); prints its path
#   nspawn_boot ROOT                 per-run copy of ROOT, booted in the background
#   nspawn_run CMD...                runs CMD inside the booted container
#   nspawn_teardown                  stops the container, removes the copy
#
# The cache lives outside the clone, in /var/tmp/crunchd-nspawn-<key>/, where
# <key> hashes everything that goes into it (this file's version, the package
# lists, the mirror). A root is used only once it is complete (a marker file is
# written last), and never written to: every run boots a throw-away overlay
# (or, where overlayfs is not available, a copy) of it.

NSPAWN_SCRIPT_VERSION=1
NSPAWN_BASE_PACKAGES=(systemd systemd-sysv dbus procps)
NSPAWN_CACHE_PARENT=${CRUNCH_NSPAWN_CACHE:-/var/tmp}

NSPAWN_PID=""      # systemd-nspawn's pid
NSPAWN_INIT_PID="" # the container's systemd (pid 1 inside)
NSPAWN_RUN_DIR=""  # per-run scratch: overlay layers or the copy, logs
NSPAWN_ROOT=""     # the booted root directory
NSPAWN_LOG=""      # nspawn's console output

nspawn_log() { echo "[nspawn $(date +%T)] $*" >&2; }

# The Debian mirror the host uses (its first deb.debian.org-style URI for the
# main archive), so the container fetches from where the host can.
nspawn_host_mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '/^deb / && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' \
      /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# Package names from a Depends field: first alternative, no version.
nspawn_depends_to_packages() {
  tr ',' '\n' <<<"$1" | sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' | grep -v '^$' | sort -u
}

nspawn_check_host() {
  local missing=()
  for tool in debootstrap systemd-nspawn nsenter flock; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [ ${#missing[@]} -ne 0 ]; then
    echo "cannot run: missing ${missing[*]} (run scripts/install-deps: packages debootstrap, systemd-container)" >&2
    return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "cannot run: systemd-nspawn needs root" >&2
    return 1
  fi
}

# Copies the host's apt sources (enabled ones only) into ROOT.
nspawn_copy_apt_sources() {
  local root=$1
  rm -f "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root"/etc/apt/sources.list
  local f
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # A source whose keyring the root lacks would make apt-get update fail.
    local keyring
    keyring=$(sed -n 's/^Signed-By:[[:space:]]*\(\/.*\)/\1/p; s/.*signed-by=\([^] ]*\).*/\1/p' "$f" | head -1)
    if [ -n "$keyring" ] && [ ! -f "$root$keyring" ]; then
      nspawn_log "not copying $f: its keyring $keyring is not in the root"
      continue
    fi
    cp "$f" "$root"/etc/apt/sources.list.d/
  done
}

# Prints the path of a complete cached root holding the base packages and the
# packages of DEPENDS, creating it if needed. Two levels, so that a change of
# DEPENDS does not repeat debootstrap:
#   crunchd-nspawn-base-<key>/root   debootstrap minbase + NSPAWN_BASE_PACKAGES
#   crunchd-nspawn-<key>/root        a copy of that + DEPENDS' packages
nspawn_prepare_root() {
  local depends=$1
  local mirror packages base_key key base dir
  mirror=$(nspawn_host_mirror)
  packages=$(nspawn_depends_to_packages "$depends" | tr '\n' ' ')
  base_key=$(printf '%s\n' "$NSPAWN_SCRIPT_VERSION" "${NSPAWN_BASE_PACKAGES[*]}" "$mirror" |
    sha256sum | cut -c1-16)
  key=$(printf '%s\n' "$base_key" "$packages" | sha256sum | cut -c1-16)
  base=$NSPAWN_CACHE_PARENT/crunchd-nspawn-base-$base_key
  dir=$NSPAWN_CACHE_PARENT/crunchd-nspawn-$key
  mkdir -p "$NSPAWN_CACHE_PARENT"
  (
    # One creator at a time; a second run waits and then reuses the root.
    flock 9
    if [ -f "$dir/complete" ]; then
      touch "$dir/complete" "$base/complete" 2>/dev/null
      exit 0
    fi
    local t0=$SECONDS
    if [ ! -f "$base/complete" ]; then
      rm -rf "$base"
      mkdir -p "$base"
      nspawn_log "creating $base (debootstrap bookworm from $mirror; once, a few minutes)"
      local base_csv
      base_csv=$(
        IFS=,
        echo "${NSPAWN_BASE_PACKAGES[*]}"
      )
      if ! debootstrap --variant=minbase --include="$base_csv" bookworm "$base/root" "$mirror" \
        >"$base/debootstrap.log" 2>&1; then
        tail -n 30 "$base/debootstrap.log" >&2
        echo "debootstrap failed; full log: $base/debootstrap.log" >&2
        exit 1
      fi
      nspawn_copy_apt_sources "$base/root"
      # Every boot of a copy makes its own machine id.
      : >"$base/root/etc/machine-id"
      touch "$base/complete"
      nspawn_log "debootstrap done in $((SECONDS - t0)) s"
    fi
    local t1=$SECONDS
    rm -rf "$dir"
    mkdir -p "$dir"
    nspawn_log "creating $dir with the package's dependencies: $packages"
    cp -a --reflink=auto "$base/root" "$dir/root"
    # Not booted: nspawn as a chroot that sets up /proc, /dev and resolv.conf.
    if ! systemd-nspawn --quiet --register=no --keep-unit --resolv-conf=copy-host -D "$dir/root" \
      /bin/sh -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends $packages && apt-get clean" \
      >"$dir/deps.log" 2>&1; then
      tail -n 30 "$dir/deps.log" >&2
      echo "installing the dependencies in the root failed; full log: $dir/deps.log" >&2
      exit 1
    fi
    : >"$dir/root/etc/machine-id"
    echo "$packages" >"$dir/packages"
    touch "$dir/complete"
    nspawn_log "dependencies installed in $((SECONDS - t1)) s"
  ) 9>"$NSPAWN_CACHE_PARENT/crunchd-nspawn.lock" || return 1
  # Roots of other keys unused for two weeks are removed.
  find "$NSPAWN_CACHE_PARENT" -maxdepth 1 -name 'crunchd-nspawn-*' -type d \
    ! -path "$dir" ! -path "$base" -mtime +14 -exec rm -rf {} + 2>/dev/null || true
  echo "$dir/root"
}

# The start time of PID (clock ticks after boot), to tell it from a later
# process that got the same pid.
nspawn_start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# Kills the container of RUN_DIR (its systemd, recorded in init.pid with its
# start time: killing a pid namespace's init ends every process in it) and its
# nspawn, then removes RUN_DIR.
nspawn_destroy_run() {
  local run=$1 pid start
  if read -r pid start <"$run/init.pid" 2>/dev/null && [ "$(nspawn_start_time "$pid")" = "$start" ]; then
    kill -s KILL "$pid" 2>/dev/null
  fi
  pid=$(cat "$run/nspawn.pid" 2>/dev/null)
  [ -n "$pid" ] && kill -s KILL "$pid" 2>/dev/null
  sleep 1
  if mountpoint -q "$run/merged"; then
    umount "$run/merged" 2>/dev/null || umount -l "$run/merged"
  fi
  rm -rf "$run"
}

# Removes what runs that were killed outright left behind: run dirs whose
# nspawn is gone, or older than two hours.
nspawn_clean_stale_runs() {
  local run pid
  for run in "$NSPAWN_CACHE_PARENT"/crunchd-nspawn-run.*; do
    [ -d "$run" ] || continue
    pid=$(cat "$run/nspawn.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ -z "$(find "$run" -maxdepth 0 -mmin +120)" ]; then
      continue
    fi
    nspawn_log "removing the stale run $run"
    nspawn_destroy_run "$run"
  done
}

# A detached process that destroys this run's container if the calling script
# dies without tearing it down (SIGKILL from a CTest timeout: no trap runs).
nspawn_start_guard() {
  setsid bash -c '
    source "$1"
    while kill -0 "$2" 2>/dev/null; do sleep 1; done
    [ -d "$3" ] && nspawn_destroy_run "$3"' \
    guard "${BASH_SOURCE[0]}" "$$" "$NSPAWN_RUN_DIR" </dev/null >/dev/null 2>&1 &
}

# Makes a writable per-run view of ROOT in NSPAWN_RUN_DIR: an overlay if the
# kernel allows one, else a copy.
nspawn_make_run_root() {
  local root=$1
  nspawn_clean_stale_runs
  NSPAWN_RUN_DIR=$(mktemp -d "$NSPAWN_CACHE_PARENT/crunchd-nspawn-run.XXXXXX")
  mkdir -p "$NSPAWN_RUN_DIR"/{upper,work,merged}
  if mount -t overlay overlay \
    -o "lowerdir=$root,upperdir=$NSPAWN_RUN_DIR/upper,workdir=$NSPAWN_RUN_DIR/work" \
    "$NSPAWN_RUN_DIR/merged" 2>/dev/null; then
    NSPAWN_ROOT=$NSPAWN_RUN_DIR/merged
  else
    nspawn_log "overlayfs not available; copying the root"
    cp -a --reflink=auto "$root" "$NSPAWN_RUN_DIR/copy"
    NSPAWN_ROOT=$NSPAWN_RUN_DIR/copy
  fi
  # debootstrap writes no /etc/hosts, so "localhost" would not resolve.
  if [ ! -s "$NSPAWN_ROOT/etc/hosts" ]; then
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$NSPAWN_ROOT/etc/hosts"
  fi
}

# Boots a per-run copy of ROOT and waits until its systemd answers.
nspawn_boot() {
  local root=$1 timeout=${2:-120}
  nspawn_make_run_root "$root"
  NSPAWN_LOG=$NSPAWN_RUN_DIR/console.log
  local machine
  machine=crunchd-test-$(basename "$NSPAWN_RUN_DIR" | tr -dc 'a-zA-Z0-9' | tail -c 6)
  # --pdeathsig: if this script is killed (a CTest timeout), nspawn and with
  # it the container go too.
  setpriv --pdeathsig KILL -- \
    systemd-nspawn --boot --register=no --keep-unit --quiet --console=passive --resolv-conf=copy-host \
    --machine="$machine" -D "$NSPAWN_ROOT" >"$NSPAWN_LOG" 2>&1 &
  NSPAWN_PID=$!
  echo "$NSPAWN_PID" >"$NSPAWN_RUN_DIR/nspawn.pid"
  local deadline=$((SECONDS + timeout))
  # The container's init is a child of nspawn whose command is systemd.
  while [ -z "$NSPAWN_INIT_PID" ]; do
    if ! kill -0 "$NSPAWN_PID" 2>/dev/null; then
      echo "systemd-nspawn exited before the container booted. Its output:" >&2
      cat "$NSPAWN_LOG" >&2
      return 1
    fi
    local child
    for child in $(pgrep -P "$NSPAWN_PID" 2>/dev/null); do
      if [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then NSPAWN_INIT_PID=$child; fi
    done
    if [ $SECONDS -ge $deadline ]; then
      echo "no systemd in the container after ${timeout}s. nspawn's output:" >&2
      cat "$NSPAWN_LOG" >&2
      return 1
    fi
    [ -n "$NSPAWN_INIT_PID" ] || sleep 0.2
  done
  echo "$NSPAWN_INIT_PID $(nspawn_start_time "$NSPAWN_INIT_PID")" >"$NSPAWN_RUN_DIR/init.pid"
  nspawn_start_guard
  # Booted when systemd says the system is running (degraded is fine: a
  # container lacks some hardware units).
  local state=""
  while :; do
    state=$(nspawn_run timeout 10 systemctl is-system-running --wait 2>/dev/null) || true
    case "$state" in running | degraded) break ;; esac
    if [ $SECONDS -ge $deadline ]; then
      echo "the container's systemd did not finish booting in ${timeout}s (state '$state'). Console:" >&2
      tail -n 50 "$NSPAWN_LOG" >&2
      nspawn_run systemctl --failed --no-pager >&2 || true
      return 1
    fi
    sleep 0.5
  done
  if [ "$state" = degraded ]; then
    nspawn_log "booted, degraded; failed units: $(nspawn_run systemctl --failed --no-legend --plain --no-pager | awk '{print $1}' | tr '\n' ' ')"
  fi
}

# Runs a command inside the container as root, with a clean environment.
nspawn_run() {
  nsenter -t "$NSPAWN_INIT_PID" -m -u -i -n -p -r -w -- \
    /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}

# Stops the container and removes the per-run root. Safe to call twice and
# after a failed boot.
nspawn_teardown() {
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    # SIGRTMIN+3 asks the container's systemd to halt; nspawn exits with it.
    [ -n "$NSPAWN_INIT_PID" ] && kill -s RTMIN+3 "$NSPAWN_INIT_PID" 2>/dev/null
    local i
    for i in $(seq 1 100); do
      kill -0 "$NSPAWN_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$NSPAWN_PID" 2>/dev/null; then
      nspawn_log "container did not halt in 10 s; killing systemd-nspawn"
      kill -s KILL "$NSPAWN_PID" 2>/dev/null
    fi
    wait "$NSPAWN_PID" 2>/dev/null
  fi
  NSPAWN_PID=""
  NSPAWN_INIT_PID=""
  if [ -n "$NSPAWN_RUN_DIR" ] && [ -d "$NSPAWN_RUN_DIR" ]; then
    if mountpoint -q "$NSPAWN_RUN_DIR/merged"; then
      umount "$NSPAWN_RUN_DIR/merged" 2>/dev/null || umount -l "$NSPAWN_RUN_DIR/merged"
    fi
    rm -rf "$NSPAWN_RUN_DIR"
  fi
  NSPAWN_RUN_DIR=""
}
