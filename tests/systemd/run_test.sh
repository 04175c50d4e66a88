#!/usr/bin/env bash
# crunchd as a systemd service, under a real systemd: builds the .deb, installs
# it into a Debian 12 container booted with systemd-nspawn (tests/systemd/
# nspawn.sh) and checks issue 5's list:
#
#   install    apt-get install ./crunchd_*.deb: user created, nothing enabled
#   start      `systemctl start` returns after READY=1; active; STATUS= line;
#              crunchctl works for group crunchd, is refused for others
#   kinds      the built-in kinds work under the unit's hardening
#   worker     a worker runs under its seccomp filter; SIGKILL it: the service
#              stays active, the worker is replaced
#   reload     `systemctl reload` while tasks run: none lost, READY again
#   plugins    the example plugins under /usr/local/lib/crunchd/plugins, added
#              by `systemctl reload` while tasks run (none lost), run under the
#              unit's hardening and the workers' seccomp filter; a file
#              swapped without a reload does not reach replaced workers; then
#              removed
#   stop       `systemctl stop` drains running tasks; the journal shows it
#   watchdog   SIGSTOP crunchd: the watchdog restarts it
#   upgrade    apt install of a newer .deb while a task runs: the task ends
#              well, crunchd restarts, the edited crunchd.toml is kept, and
#              the metrics endpoint it turns on answers under the hardening
#   limits     [cpu] worker_nice, worker_open_files, worker_address_space_bytes
#              apply under the unit's SystemCallFilter=, and kinds still run
#   socket     only crunchd.socket started: the first call starts the service
#   security   `systemd-analyze security crunchd` (printed, not judged)
#
#   tests/systemd/run_test.sh BUILD_DIR [CHECK...]     (root; default: all checks)
#
# Prints timings. Exits 0 if every check passed; on a failure prints what was
# expected and crunchd's journal. The container and its root are removed on
# exit, whatever happens.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=nspawn.sh
source "$here/nspawn.sh"

if [ $# -lt 1 ]; then
  echo "usage: $0 BUILD_DIR [CHECK...]" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
shift
all_checks=(install start kinds worker limits reload plugins stop watchdog upgrade socket security)
checks=("$@")
[ ${#checks[@]} -ne 0 ] || checks=("${all_checks[@]}")

SOCKET=/run/crunchd/crunchd.sock
ADDRESS=unix:$SOCKET
t_start=$SECONDS
failed=()
current=""

say() { echo "[systemd-test $(date +%T)] $*"; }
timing() { say "timing: $1 took $2 s"; }

on_exit() {
  local rc=$?
  nspawn_teardown
  say "total $((SECONDS - t_start)) s"
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# Runs CMD inside the container, at most SECS seconds.
in_ct() {
  local secs=$1
  shift
  nspawn_run timeout --kill-after=5 "$secs" "$@"
}

journal() {
  echo "----- journalctl -u crunchd (last 80 lines) -----"
  in_ct 20 journalctl -u crunchd -u crunchd.socket --no-pager -n 80 -o short-precise || true
  echo "----- systemctl status crunchd -----"
  in_ct 20 systemctl status crunchd --no-pager -l || true
  echo "-----"
}

# Marks the current check failed, with why and the journal.
fail() {
  echo "FAIL [$current]: $*" >&2
  journal >&2
  failed+=("$current")
  return 1
}

# True if crunchd's journal has a line matching the extended regex $1. The
# journal is read whole before grep looks: `journalctl | grep -q` fails under
# pipefail when grep exits at the first match and journalctl gets SIGPIPE.
journal_has() {
  local text
  text=$(in_ct 10 journalctl -u crunchd --no-pager -o cat) || return
  grep -qiE -- "$1" <<<"$text"
}

crunchctl() { in_ct 60 crunchctl --address "$ADDRESS" "$@"; }
as_user() {
  local user=$1
  shift
  in_ct 60 runuser -u "$user" -- crunchctl --address "$ADDRESS" "$@"
}

prop() { in_ct 20 systemctl show -P "$1" "${2:-crunchd.service}"; }

# Waits up to SECS for CMD to succeed.
wait_for() {
  local secs=$1
  shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

is_active() { [ "$(prop ActiveState)" = active ]; }

ensure_started() {
  is_active && return 0
  in_ct 90 systemctl start crunchd || fail "systemctl start crunchd failed"
}

worker_pids() {
  local main
  main=$(prop MainPID)
  in_ct 10 pgrep -P "$main" -x crunch_worker | sort
}

# --- the checks -------------------------------------------------------------

check_install() {
  local t=$SECONDS
  cp "$deb" "$NSPAWN_ROOT/root/" || {
    fail "cannot copy $deb into the container"
    return
  }
  if ! in_ct 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/root/$(basename "$deb")" \
    >"$NSPAWN_RUN_DIR/apt.log" 2>&1; then
    cat "$NSPAWN_RUN_DIR/apt.log" >&2
    fail "apt-get install ./$(basename "$deb") failed"
    return
  fi
  timing "apt-get install of the .deb" $((SECONDS - t))
  in_ct 10 getent passwd crunchd >/dev/null || fail "postinst did not create user crunchd"
  in_ct 10 test -d /run/crunchd || fail "postinst did not create /run/crunchd"
  local f
  for f in /usr/include/crunch/v1/crunch.proto /usr/include/crunch/v1/crunch.grpc.pb.h \
    /usr/lib/x86_64-linux-gnu/libcrunch_proto.a /usr/include/crunch/plugin.h \
    /usr/share/cmake/crunch/crunchConfig.cmake /usr/share/pkgconfig/crunch-plugin.pc \
    /usr/lib/crunchd/plugins/wordfreq.so /usr/lib/crunchd/plugins/imagekit.so; do
    in_ct 10 test -f "$f" || fail "the package does not install $f (the public API, the plugin SDK and examples)"
  done
  local enabled
  enabled=$(in_ct 10 systemctl is-enabled crunchd.service crunchd.socket | tr '\n' ' ')
  [ "$enabled" = "disabled disabled " ] || fail "the package enabled something: is-enabled says '$enabled'"
  is_active && fail "the package started crunchd"
  # A member of group crunchd and a user outside it.
  in_ct 20 useradd --create-home --groups crunchd member &&
    in_ct 20 useradd --create-home outsider || fail "cannot create the test users"
}

check_start() {
  in_ct 20 systemctl stop crunchd.socket crunchd.service
  local t=$SECONDS
  in_ct 90 systemctl start crunchd || {
    fail "systemctl start crunchd failed"
    return
  }
  timing "systemctl start crunchd" $((SECONDS - t))
  # Type=notify: start returns once READY=1 came, so by now crunchd has
  # logged that it is ready and the socket answers.
  journal_has 'ready: ' ||
    fail "systemctl start returned before crunchd logged 'ready:'"
  is_active || fail "not active after start (ActiveState=$(prop ActiveState))"
  local status
  status=$(prop StatusText)
  [[ "$status" == *workers* ]] || fail "StatusText is '$status', expected the live summary ('N/N workers; ...')"
  [[ "$(in_ct 10 systemctl status crunchd --no-pager)" == *'Status: "'* ]] ||
    fail "systemctl status shows no Status: line"
  say "status line: $status"
  local mode
  mode=$(in_ct 10 stat -c '%a %U:%G' $SOCKET /run/crunchd | tr '\n' ' ')
  [ "$mode" = "660 crunchd:crunchd 750 crunchd:crunchd " ] ||
    fail "socket/dir modes are '$mode', expected '660 crunchd:crunchd 750 crunchd:crunchd'"
  crunchctl status >/dev/null || fail "crunchctl status as root failed"
  as_user member status >/dev/null || fail "crunchctl status as member of group crunchd failed"
  if as_user outsider status >/dev/null 2>&1; then
    fail "crunchctl status as a user outside group crunchd succeeded; it must be refused"
  fi
}

check_kinds() {
  ensure_started || return
  local out
  out=$(crunchctl run fib -p n=20 2>&1) && [[ "$out" == *6765* ]] || fail "fib n=20: '$out'"
  out=$(echo -n abc | nspawn_run timeout 60 crunchctl --address "$ADDRESS" run sha256 --input - 2>&1) &&
    [[ "$out" == *ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad* ]] ||
    fail "sha256 of 'abc': '$out'"
  crunchctl run primes -p n=1000 >/dev/null 2>&1 || fail "primes n=1000 failed"
  crunchctl run sleep -p ms=50 >/dev/null 2>&1 || fail "sleep ms=50 failed"
  out=$(echo -n hello-systemd | nspawn_run timeout 60 crunchctl --address "$ADDRESS" run file.write \
    -p path=probe.txt --input - 2>&1) || fail "file.write path=probe.txt: '$out'"
  out=$(crunchctl run file.read -p path=probe.txt 2>&1) && [[ "$out" == *hello-systemd* ]] ||
    fail "file.read path=probe.txt: '$out'"
  in_ct 10 test -f /var/lib/crunchd/probe.txt || fail "file.write did not write under /var/lib/crunchd"
  out=$(crunchctl run dns.resolve -p host=localhost 2>&1) && [[ "$out" == *127.0.0.1* || "$out" == *::1* ]] ||
    fail "dns.resolve host=localhost: '$out'"
  echo -n aaaaaaaaaaaaaaaa | nspawn_run timeout 60 crunchctl --address "$ADDRESS" run zstd.compress \
    --input - >/dev/null 2>&1 || fail "zstd.compress failed"
}

check_worker() {
  ensure_started || return
  local before victim after
  before=$(worker_pids)
  victim=$(head -n1 <<<"$before")
  [ -n "$victim" ] || {
    fail "no crunch_worker child of crunchd's main process found"
    return
  }
  # Its own seccomp filter, inside the unit's (docs/reliability.md); a worker
  # installs it a moment after it attaches.
  local i
  for i in $(seq 50); do
    in_ct 10 grep -q "^Seccomp:[[:space:]]*2$" "/proc/$victim/status" && break
    sleep 0.1
  done
  in_ct 10 grep -q "^Seccomp:[[:space:]]*2$" "/proc/$victim/status" ||
    fail "worker $victim is not under its seccomp filter: $(in_ct 10 grep Seccomp "/proc/$victim/status")"
  local restarts_before
  restarts_before=$(prop NRestarts)
  in_ct 10 kill -KILL "$victim"
  # Replaced: as many workers as before, the victim not among them.
  local n_before
  n_before=$(wc -l <<<"$before")
  replaced() {
    local now
    now=$(worker_pids)
    [ "$(wc -l <<<"$now")" = "$n_before" ] && ! grep -qx "$victim" <<<"$now"
  }
  wait_for 30 replaced || fail "worker $victim not replaced in 30 s (workers now: $(worker_pids | tr '\n' ' '))"
  after=$(worker_pids | tr '\n' ' ')
  is_active || fail "service not active after a worker was killed"
  [ "$(prop NRestarts)" = "$restarts_before" ] || fail "the service restarted; only the worker should have"
  crunchctl run fib -p n=10 >/dev/null 2>&1 || fail "fib after the worker was replaced failed"
  say "worker $victim killed; workers now: $after"
}

check_limits() {
  ensure_started || return
  local toml=/etc/crunchd/crunchd.toml
  in_ct 10 sed -i -e 's/^# worker_nice = 0$/worker_nice = 5/' \
    -e 's/^# worker_open_files = 0$/worker_open_files = 64/' \
    -e 's/^# worker_address_space_bytes = 0$/worker_address_space_bytes = 536870912/' "$toml"
  in_ct 10 grep -qx 'worker_nice = 5' "$toml" || fail "cannot set [cpu] worker_nice in $toml"
  if in_ct 60 systemctl restart crunchd; then
    local w stat limits i
    w=$(worker_pids | head -n1)
    # A worker attaches, then sets its limits before its first task: the
    # service may be ready a moment before they show in /proc.
    for i in $(seq 50); do
      stat=$(in_ct 10 cat "/proc/$w/stat")
      [ "$(awk '{print $19}' <<<"$stat")" = 5 ] && break
      sleep 0.1
    done
    limits=$(in_ct 10 cat "/proc/$w/limits")
    [ "$(awk '{print $19}' <<<"$stat")" = 5 ] || fail "worker $w has nice $(awk '{print $19}' <<<"$stat"), expected 5"
    grep -Eq '^Max open files +64 +64 ' <<<"$limits" || fail "worker $w limits: $limits"
    grep -Eq '^Max address space +[0-9]+ +[0-9]+ +bytes' <<<"$limits" ||
      fail "worker $w has no address-space limit: $limits"
    local out
    out=$(crunchctl run fib -p n=20 2>&1) && [[ "$out" == *6765* ]] || fail "fib n=20 with limits: '$out'"
    say "worker $w: nice 5, $(grep -E '^Max (open files|address space)' <<<"$limits" | tr -s ' ' | tr '\n' ';')"
  else
    fail "restart with [cpu] worker_* limits failed: $(in_ct 10 journalctl -u crunchd -n 20 --no-pager)"
  fi
  in_ct 10 sed -i -e 's/^worker_nice = 5$/# worker_nice = 0/' \
    -e 's/^worker_open_files = 64$/# worker_open_files = 0/' \
    -e 's/^worker_address_space_bytes = 536870912$/# worker_address_space_bytes = 0/' "$toml"
  in_ct 60 systemctl restart crunchd || fail "restart after restoring $toml failed"
}

check_reload() {
  ensure_started || return
  local pids=() i
  for i in 1 2 3 4; do
    nspawn_run timeout 60 crunchctl --address "$ADDRESS" run sleep -p ms=3000 >/dev/null 2>&1 &
    pids+=($!)
  done
  nspawn_run timeout 60 crunchctl --address "$ADDRESS" run spin -p ms=2500 >/dev/null 2>&1 &
  pids+=($!)
  sleep 1
  local main_before
  main_before=$(prop MainPID)
  in_ct 30 systemctl reload crunchd || fail "systemctl reload crunchd failed"
  local lost=0 p
  for p in "${pids[@]}"; do wait "$p" || lost=$((lost + 1)); done
  [ $lost -eq 0 ] || fail "$lost of ${#pids[@]} tasks running during the reload failed"
  [ "$(prop MainPID)" = "$main_before" ] || fail "reload replaced the main process"
  wait_for 10 journal_has "configuration reloaded" ||
    fail "the journal does not show 'configuration reloaded'"
  is_active || fail "not active after reload"
  [[ "$(prop StatusText)" == *workers* ]] || fail "StatusText after reload is '$(prop StatusText)'"
}

check_plugins() {
  ensure_started || return
  local toml=/etc/crunchd/crunchd.toml dir=/usr/local/lib/crunchd/plugins f
  mkdir -p "$NSPAWN_ROOT$dir"
  for f in wordfreq imagekit; do
    cp "$build_dir/plugins/$f.so" "$NSPAWN_ROOT$dir/" || {
      fail "cannot copy $build_dir/plugins/$f.so into the container"
      return
    }
  done
  in_ct 10 sed -i "s|^# paths = \[\]\$|paths = [\"$dir/wordfreq.so\", \"$dir/imagekit.so\"]|" "$toml"
  in_ct 10 grep -q "^paths = \[\"$dir/wordfreq.so" "$toml" || {
    fail "cannot set [plugins] paths in $toml"
    return
  }
  # Tasks of a built-in kind run through the reload that replaces every worker.
  local pids=() i
  for i in 1 2 3 4; do
    nspawn_run timeout 60 crunchctl --address "$ADDRESS" run spin -p ms=1500 >/dev/null 2>&1 &
    pids+=($!)
  done
  sleep 0.3
  in_ct 30 systemctl reload crunchd || fail "systemctl reload crunchd failed"
  local lost=0 p
  for p in "${pids[@]}"; do wait "$p" || lost=$((lost + 1)); done
  [ $lost -eq 0 ] || fail "$lost of ${#pids[@]} tasks running during the plugin reload failed"
  wait_for 30 journal_has "reload: every worker serves the new kinds" ||
    fail "the journal does not show the workers replaced with the plugins' kinds"
  local out
  out=$(printf 'b a B, c b! a' | in_ct 60 crunchctl --address "$ADDRESS" run text.wordfreq -p top=2 --input - 2>&1)
  [ "$out" = "$(printf '3\tb\n2\ta')" ] || fail "text.wordfreq under the service: '$out'"
  out=$(in_ct 60 bash -c "printf 'P5\n4 4\n255\n%016d' 0 | crunchctl --address $ADDRESS run image.resize -p width=2 -p height=2 --input - | head -c 2" 2>&1)
  [ "$out" = "P5" ] || fail "image.resize under the service: '$out'"
  out=$(crunchctl kinds 2>&1)
  [[ "$out" == *"from plugin wordfreq"* ]] || fail "crunchctl kinds does not show the plugin: $out"
  say "plugin kinds served: $(grep -oE '^(text|image)\.[a-z]+' <<<"$out" | tr '\n' ' ')"

  # Rebuilt on disk, not reloaded, and every worker dies: the replacements
  # still load the file the running kinds came from, which crunchd holds open
  # (through /proc/self/fd, under the unit's ProtectProc= and ProcSubset=).
  cp "$build_dir/plugins/imagekit.so" "$NSPAWN_ROOT$dir/wordfreq.so.new" &&
    mv "$NSPAWN_ROOT$dir/wordfreq.so.new" "$NSPAWN_ROOT$dir/wordfreq.so" ||
    fail "cannot replace $dir/wordfreq.so in the container"
  local before victim
  before=$(worker_pids)
  for victim in $before; do in_ct 10 kill -KILL "$victim"; done
  all_replaced() {
    local now
    now=$(worker_pids)
    [ "$(wc -l <<<"$now")" = "$(wc -l <<<"$before")" ] && [ -z "$(comm -12 <(echo "$before") <(echo "$now"))" ]
  }
  wait_for 30 all_replaced || fail "workers not replaced in 30 s (now: $(worker_pids | tr '\n' ' '))"
  out=$(printf 'b a B, c b! a' | in_ct 60 crunchctl --address "$ADDRESS" run text.wordfreq -p top=2 --input - 2>&1)
  [ "$out" = "$(printf '3\tb\n2\ta')" ] || fail "text.wordfreq from a worker started after its file was replaced: '$out'"
  ! journal_has "the CPU kinds differ" || fail "a worker loaded the replaced plugin file, not the one held"

  # Removed again: the kinds go with the next reload.
  in_ct 10 sed -i "s|^paths = \[\"$dir/wordfreq.so.*\$|# paths = []|" "$toml"
  in_ct 30 systemctl reload crunchd || fail "systemctl reload crunchd (plugins removed) failed"
  wordfreq_gone() {
    local kinds
    kinds=$(crunchctl kinds 2>/dev/null) && ! grep -q text.wordfreq <<<"$kinds"
  }
  wait_for 30 wordfreq_gone || fail "text.wordfreq still listed 30 s after its plugin was removed"
  out=$(crunchctl run text.wordfreq --input /dev/null 2>&1) && fail "text.wordfreq still runs after its removal"
  [[ "$out" == *NOT_FOUND* ]] || fail "text.wordfreq after its removal: '$out'"
}

check_stop() {
  ensure_started || return
  local pid
  nspawn_run timeout 60 crunchctl --address "$ADDRESS" run sleep -p ms=3000 >/dev/null 2>&1 &
  pid=$!
  sleep 1
  local t=$SECONDS
  in_ct 90 systemctl stop crunchd || fail "systemctl stop crunchd failed"
  timing "systemctl stop crunchd (draining a 3 s task)" $((SECONDS - t))
  wait "$pid" || fail "the task running when stop began did not finish (it should have been drained)"
  journal_has "draining" ||
    fail "the journal does not show the drain ('draining')"
  [ "$(prop ActiveState)" = inactive ] || fail "ActiveState after stop is $(prop ActiveState)"
  [ "$(prop Result)" = success ] || fail "Result after stop is $(prop Result), expected success"
}

check_watchdog() {
  ensure_started || return
  local main restarts
  main=$(prop MainPID)
  restarts=$(prop NRestarts)
  [ "$(prop WatchdogUSec)" != 0 ] || fail "WatchdogUSec is 0"
  local t=$SECONDS
  in_ct 10 kill -STOP "$main"
  # WatchdogSec=10, then SIGABRT (TimeoutAbortSec=10), RestartSec=1, start.
  restarted() { [ "$(prop NRestarts)" != "$restarts" ] && is_active && [ "$(prop MainPID)" != "$main" ]; }
  if wait_for 60 restarted; then
    timing "watchdog restart after SIGSTOP" $((SECONDS - t))
  else
    fail "not restarted within 60 s of SIGSTOP (NRestarts=$(prop NRestarts), MainPID=$(prop MainPID))"
    in_ct 10 kill -CONT "$main"
    return
  fi
  journal_has "watchdog timeout" ||
    fail "the journal does not show systemd's 'Watchdog timeout'"
  crunchctl status >/dev/null || fail "crunchctl status after the watchdog restart failed"
}

check_socket() {
  in_ct 90 systemctl stop crunchd.service crunchd.socket
  in_ct 30 systemctl start crunchd.socket || {
    fail "systemctl start crunchd.socket failed"
    return
  }
  [ "$(prop ActiveState)" = inactive ] || fail "crunchd.service is $(prop ActiveState) before any call"
  local mode
  mode=$(in_ct 10 stat -c '%a %G' $SOCKET)
  [ "$mode" = "660 crunchd" ] || fail "the socket unit's socket is '$mode', expected '660 crunchd'"
  local t=$SECONDS
  as_user member status >/dev/null || fail "the first crunchctl status (member) through the activated socket failed"
  timing "first call through crunchd.socket (starts the service)" $((SECONDS - t))
  is_active || fail "crunchd.service not active after the first call"
  journal_has "serving the socket\(s\) systemd passed" ||
    fail "crunchd did not log that it serves the passed socket"
  crunchctl run fib -p n=15 >/dev/null || fail "fib through the activated socket failed"
  if as_user outsider status >/dev/null 2>&1; then
    fail "an outsider could use the activated socket"
  fi
  # Stopping the service leaves the socket to systemd: the next call starts it again.
  in_ct 90 systemctl stop crunchd.service
  in_ct 10 test -S $SOCKET || fail "stopping the service removed systemd's socket file"
  crunchctl status >/dev/null || fail "a call after stopping the service did not start it again"
  in_ct 90 systemctl stop crunchd.socket crunchd.service
}

check_upgrade() {
  ensure_started || return
  # The operator's edit of the conffile: the metrics endpoint on.
  in_ct 10 sed -i '/^\[metrics\]$/,$ s/^# listen = ""$/listen = "127.0.0.1:9464"/' \
    /etc/crunchd/crunchd.toml
  in_ct 10 grep -qx 'listen = "127.0.0.1:9464"' /etc/crunchd/crunchd.toml ||
    fail "cannot turn metrics on in /etc/crunchd/crunchd.toml (no '# listen = \"\"' under [metrics]?)"
  local main pid
  main=$(prop MainPID)
  nspawn_run timeout 60 crunchctl --address "$ADDRESS" run sleep -p ms=2000 >/dev/null 2>&1 &
  pid=$!
  sleep 1
  cp "$upgrade_deb" "$NSPAWN_ROOT/root/" || {
    fail "cannot copy $upgrade_deb into the container"
    return
  }
  local t=$SECONDS
  if ! in_ct 300 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o Dpkg::Options::=--force-confold "/root/$(basename "$upgrade_deb")" \
    >"$NSPAWN_RUN_DIR/apt-upgrade.log" 2>&1; then
    cat "$NSPAWN_RUN_DIR/apt-upgrade.log" >&2
    fail "apt-get install of the newer .deb failed"
    return
  fi
  timing "upgrade to $upgrade_version (drains, restarts)" $((SECONDS - t))
  wait "$pid" || fail "the task running during the upgrade did not end well (it should be drained)"
  local version
  version=$(in_ct 10 dpkg-query -W -f='${Version}' crunchd)
  [ "$version" = "$upgrade_version" ] || fail "dpkg says crunchd $version after the upgrade, expected $upgrade_version"
  wait_for 30 is_active || fail "not active after the upgrade (ActiveState=$(prop ActiveState))"
  [ "$(prop MainPID)" != "$main" ] || fail "the upgrade did not restart crunchd (MainPID still $main)"
  in_ct 10 grep -qx 'listen = "127.0.0.1:9464"' /etc/crunchd/crunchd.toml ||
    fail "the upgrade lost the edit to /etc/crunchd/crunchd.toml"
  crunchctl run fib -p n=10 >/dev/null || fail "fib after the upgrade failed"
  # No curl in the container: bash's /dev/tcp speaks the HTTP/1.0 it takes.
  local metrics
  metrics=$(in_ct 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/9464 &&
    printf "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3 && cat <&3')
  [[ "$metrics" == *" 200 OK"* ]] || fail "GET /metrics did not answer 200: $(head -c 300 <<<"$metrics")"
  [[ "$metrics" == *'crunchd_tasks_ended_total{kind="fib",pool="cpu",code="OK"} 1'* ]] ||
    fail "the metrics do not count the fib task: $(grep crunchd_tasks_ended <<<"$metrics")"
  # Back to the packaged configuration for the checks after this one.
  in_ct 10 sed -i 's/^listen = "127.0.0.1:9464"$/# listen = ""/' /etc/crunchd/crunchd.toml
  in_ct 60 systemctl restart crunchd || fail "restart after restoring crunchd.toml failed"
}

check_security() {
  local out
  out=$(in_ct 60 systemd-analyze security crunchd.service --no-pager 2>&1)
  echo "$out" | grep -E '✗' | sed 's/^/    /'
  say "$(echo "$out" | grep 'Overall exposure level')"
}

# --- main -------------------------------------------------------------------

nspawn_check_host || {
  echo "FAIL: the systemd test cannot run on this machine (see above)" >&2
  exit 1
}

t=$SECONDS
say "building the .deb in $build_dir (cpack)"
rm -f "$build_dir"/packages/crunchd_*.deb
if ! (cd "$build_dir" && cpack -G DEB >"$build_dir/packages-cpack.log" 2>&1); then
  cat "$build_dir/packages-cpack.log" >&2
  echo "FAIL: cpack failed" >&2
  exit 1
fi
deb=$(ls "$build_dir"/packages/crunchd_*_amd64.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || {
  echo "FAIL: cpack made no crunchd_*_amd64.deb in $build_dir/packages" >&2
  exit 1
}
# The same build as a newer version, for the upgrade check.
upgrade_version="$(dpkg-deb -f "$deb" Version)+upgrade"
rm -rf "$build_dir/packages-upgrade"
if ! (cd "$build_dir" && cpack -G DEB -D CPACK_PACKAGE_VERSION="$upgrade_version" \
  -D CPACK_PACKAGE_DIRECTORY="$build_dir/packages-upgrade" >>"$build_dir/packages-cpack.log" 2>&1); then
  cat "$build_dir/packages-cpack.log" >&2
  echo "FAIL: cpack of the upgrade .deb failed" >&2
  exit 1
fi
upgrade_deb=$(ls "$build_dir"/packages-upgrade/crunchd_*_amd64.deb 2>/dev/null | head -n1)
[ -n "$upgrade_deb" ] || {
  echo "FAIL: cpack made no upgrade .deb in $build_dir/packages-upgrade" >&2
  exit 1
}
depends=$(dpkg-deb -f "$deb" Depends)
recommends=$(dpkg-deb -f "$deb" Recommends)
timing "cpack ($(basename "$deb"))" $((SECONDS - t))
say "Depends: $depends"
say "Recommends: $recommends"

t=$SECONDS
# The cached root holds what `apt install ./crunchd_*.deb` pulls in, so that
# a run downloads nothing.
root=$(nspawn_prepare_root "$depends, $recommends") || {
  echo "FAIL: cannot make the container's root (see above)" >&2
  exit 1
}
timing "container root ($root)" $((SECONDS - t))

t=$SECONDS
nspawn_boot "$root" 120 || {
  echo "FAIL: cannot boot a systemd container here with systemd-nspawn (see above)" >&2
  exit 1
}
timing "boot" $((SECONDS - t))

for current in "${checks[@]}"; do
  if ! declare -F "check_$current" >/dev/null; then
    echo "unknown check '$current'; checks: ${all_checks[*]}" >&2
    exit 2
  fi
  t=$SECONDS
  say "== $current"
  n_failed=${#failed[@]}
  "check_$current"
  if [ ${#failed[@]} -eq "$n_failed" ]; then
    say "ok $current ($((SECONDS - t)) s)"
  else
    say "FAILED $current ($((SECONDS - t)) s)"
  fi
  # Later checks need the package.
  if [ "$current" = install ] && [ ${#failed[@]} -ne 0 ]; then break; fi
done

if [ ${#failed[@]} -ne 0 ]; then
  say "FAILED checks: $(printf '%s\n' "${failed[@]}" | sort -u | tr '\n' ' ')"
  exit 1
fi
say "all checks passed: ${checks[*]}"
