"""What the suite scripts of docs/benchmarks.md share: servers, load, and the section protocol.

Every suite is a script in bench/ that takes `--build-dir DIR` (the binaries in
DIR/bin, never rebuilt) and `--quick` (a smoke test: it runs, the figures mean
nothing), prints its generated markdown block on stdout and its progress on
stderr, and with `--targets FILE` appends one JSON line per target to FILE
(suite, what, figure, target, met), from which scripts/bench writes the summary
table. Stdlib only: these run under /usr/bin/python3.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_common_args(parser):
    """--build-dir, --quick and --targets, as every suite takes them."""
    parser.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                        help="the build whose bin/ holds the binaries (default: build/)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: a few tasks, one repetition; checks it runs")
    parser.add_argument("--targets", metavar="FILE",
                        help="append one JSON line per target to FILE (for scripts/bench)")


def command(script):
    """This run's command line for the docs: `script` and its arguments, less --targets FILE."""
    import shlex
    argv, out = sys.argv[1:], []
    while argv:
        arg = argv.pop(0)
        if arg == "--targets":
            argv = argv[1:]
        elif not arg.startswith("--targets="):
            out.append(arg)
    return shlex.join([script] + out)


def logger(suite):
    def log(msg):
        print(f"[{suite}] {msg}", file=sys.stderr, flush=True)
    return log


def loadavg():
    return "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def median(values):
    return statistics.median(values)


def met(cond):
    return "met" if cond else "**missed**"


def by_how_much(value, target, higher_is_better=True, unit="x"):
    """'met' or '**missed** (0.62x of 3x)': how far a figure is from its target."""
    ok = value >= target if higher_is_better else value <= target
    if ok:
        return "met"
    if unit == "x":
        share = value / target
        return f"**missed** ({share:.3f} of the target)" if share >= 0.995 else \
            f"**missed** ({share:.2f} of the target)"
    return f"**missed** by {abs(value - target):,.0f} {unit}"


def record_target(path, suite, what, figure, target, ok, how=None):
    """Appends one target to the --targets file; `how` is by_how_much()'s verdict.

    ok=None records a figure that is tracked but has no target (it is listed in
    the summary and not counted as met or missed)."""
    if not path:
        return
    with open(path, "a") as f:
        f.write(json.dumps({"suite": suite, "what": what, "figure": figure, "target": target,
                            "met": None if ok is None else bool(ok),
                            "how": how or met(ok)}) + "\n")


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def context_switches(pid):
    """Voluntary + involuntary context switches of every thread of a process."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            pass
    return total


def children(pid):
    """The live child processes of pid (crunchd's workers)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(entry))
    return out


class Server:
    """One server process on a Unix socket, started and stopped around a repetition."""

    def __init__(self, name, argv, socket_path):
        self.name = name
        self.argv = argv
        self.socket_path = socket_path
        self.address = f"unix:{socket_path}"
        self.proc = None

    def start(self):
        # stderr to a file, not a pipe: a server blocked on a full pipe would stall the run.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: "
                                   f"{self._log_text()}")
            if self._connectable():
                # crunchd listens before its workers are up; callers warm up.
                time.sleep(0.5)
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.socket_path} within 15 s")

    def _connectable(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket_path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def usage(self):
        """(CPU ticks, context switches) of the server and its children so far."""
        pids = [self.proc.pid] + children(self.proc.pid)
        return sum(cpu_ticks(p) for p in pids), sum(context_switches(p) for p in pids)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.returncode not in (0, -signal.SIGTERM):
            print(f"{self.name} exited with {self.proc.returncode}: {self._log_text()}",
                  file=sys.stderr)
        self.log.close()

    def _log_text(self):
        self.log.seek(0)
        return self.log.read().strip()[-2000:]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def crunchd(build_dir, tmp, workers, name="crunchd", toml=None):
    """A Server for build_dir/bin/crunchd --workers N on a socket in tmp; `toml`, if
    given, is written to tmp/NAME.toml and passed with --config."""
    sock = os.path.join(tmp, f"{name}.sock")
    argv = [os.path.join(build_dir, "bin", "crunchd"), "--listen", f"unix:{sock}",
            "--workers", str(workers), "--log-level", "warn"]
    if toml:
        config = os.path.join(tmp, f"{name}.toml")
        with open(config, "w") as f:
            f.write(toml)
        argv += ["--config", config]
    return Server(name, argv, sock)


def crunchd_command(workers, config=False):
    """How crunchd was started, for the docs."""
    extra = " --config CONFIG" if config else ""
    return f"crunchd --listen unix:SOCKET --workers {workers} --log-level warn{extra}"


def run_json(argv, log=None):
    """Runs a tool that prints one JSON line last on stdout; returns it parsed."""
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): "
                           f"{out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
