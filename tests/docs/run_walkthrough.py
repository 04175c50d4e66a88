#!/usr/bin/python3
"""Runs a walk-through in a Markdown document as written, and fails where it does not work.

    run_walkthrough.py DOC.md REPO_DIR BUILD_DIR

The fenced blocks a walk-through step needs are marked with an HTML comment
on the line before them (a reader does not see it):

    <!-- walkthrough: file ~/upper/upper.c -->   write the block to that file
    <!-- walkthrough: run -->                     run the block with bash -e -o pipefail
    <!-- walkthrough: daemon unix:~/x.sock -->    start the block's command in the background
                                                  and wait until crunchd answers there
    <!-- walkthrough: output -->                  every line of the block must appear in the
                                                  output of the last run block

Unmarked blocks are illustration and are skipped. The steps run in a fresh
directory holding `build`, `clients` and `scripts` (links into the source and
build trees, so the document's repository-relative paths work) with HOME set
to a fresh directory, so `~` in a document means a scratch space. Daemons are
stopped with SIGTERM at the end, and must exit cleanly.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!-- walkthrough: (\w+)(?: (.+?))? -->$")
FENCE = re.compile(r"^(```+|~~~+)")


def blocks(text):
    """(line number, directive, argument, block text) for every marked block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i].strip())
        if not m:
            i += 1
            continue
        start = i + 1
        fence = FENCE.match(lines[start]) if start < len(lines) else None
        if not fence:
            raise SystemExit(f"line {i + 1}: '{lines[i]}' is not followed by a fenced block")
        body = []
        j = start + 1
        while j < len(lines) and not lines[j].startswith(fence.group(1)):
            body.append(lines[j])
            j += 1
        if j == len(lines):
            raise SystemExit(f"line {start + 1}: the fenced block never ends")
        yield i + 1, m.group(1), m.group(2), "\n".join(body) + "\n"
        i = j + 1


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    doc, repo, build = (os.path.abspath(a) for a in sys.argv[1:])
    with open(doc, encoding="utf-8") as f:
        steps = list(blocks(f.read()))
    if not steps:
        raise SystemExit(f"{doc}: no walkthrough blocks")

    scratch = tempfile.mkdtemp(prefix="crunch-walkthrough-")
    home = os.path.join(scratch, "home")
    work = os.path.join(scratch, "work")
    os.makedirs(home)
    os.makedirs(work)
    os.symlink(build, os.path.join(work, "build"))
    for name in ("clients", "scripts"):
        os.symlink(os.path.join(repo, name), os.path.join(work, name))
    env = dict(os.environ, HOME=home)
    env.pop("XDG_RUNTIME_DIR", None)
    daemons = []
    last_output = ""
    failed = None
    try:
        for line, directive, arg, body in steps:
            where = f"{os.path.basename(doc)}:{line}"
            print(f"--- {where}: {directive} {arg or ''}", flush=True)
            if directive == "file":
                path = os.path.join(home, arg[2:]) if arg.startswith("~/") else os.path.join(work, arg)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(body)
            elif directive == "run":
                print(body, end="", flush=True)
                p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", body], cwd=work,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, timeout=600)
                print(p.stdout, end="", flush=True)
                last_output = p.stdout
                if p.returncode != 0:
                    failed = f"{where}: the block exited with status {p.returncode}"
                    break
            elif directive == "daemon":
                address = arg.replace("~", home)
                print(body, end="", flush=True)
                log = open(os.path.join(scratch, f"daemon-{len(daemons)}.log"), "w+")
                d = subprocess.Popen(["bash", "-e", "-c", "exec " + body.strip()], cwd=work,
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
                daemons.append((d, log))
                deadline = time.monotonic() + 30
                while True:
                    if d.poll() is not None:
                        log.seek(0)
                        failed = f"{where}: the daemon exited ({d.returncode}):\n{log.read()}"
                        break
                    ping = subprocess.run(
                        [os.path.join(build, "bin", "crunchctl"), "--address", address,
                         "--deadline", "1000", "status"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    if ping.returncode == 0:
                        break
                    if time.monotonic() > deadline:
                        failed = f"{where}: crunchd did not answer at {address} within 30 s"
                        break
                    time.sleep(0.1)
                if failed:
                    break
            elif directive == "output":
                missing = [l.strip() for l in body.splitlines()
                           if l.strip() and l.strip() not in last_output]
                if missing:
                    failed = f"{where}: the last run's output lacks: {missing}"
                    break
            else:
                failed = f"{where}: unknown directive '{directive}'"
                break
    finally:
        for d, log in daemons:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
                try:
                    d.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    d.kill()
                    d.wait()
                    failed = failed or "a daemon did not exit within 30 s of SIGTERM"
            if d.returncode != 0 and not failed:
                log.seek(0)
                failed = f"a daemon exited with status {d.returncode}:\n{log.read()}"
            log.close()
        shutil.rmtree(scratch, ignore_errors=True)
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
        return 1
    print(f"{os.path.basename(doc)}: {len(steps)} steps ran as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
