"""The clients' security arguments against a real crunchd that wants a bearer
token on every call and serves TCP over TLS (a certificate made here with the
openssl CLI) besides its unix socket."""

from __future__ import annotations

import asyncio
import pathlib
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

import crunch
import crunch.aio
from conftest import _crunchd_path

TOKEN = "py-test-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_certificates(directory: pathlib.Path) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=crunch-py-test-ca"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ):
        subprocess.run(["openssl", *argv], cwd=directory, check=True, capture_output=True)


class SecureDaemon:
    def __init__(self, unix: str, tcp: str, ca: bytes) -> None:
        self.unix = unix
        self.tcp = tcp
        self.ca = ca


@pytest.fixture(scope="module")
def secure_daemon() -> Iterator[SecureDaemon]:
    with tempfile.TemporaryDirectory(prefix="crunchd-py-sec-") as tmp:
        root = pathlib.Path(tmp)
        _make_certificates(root)
        token = root / "token"
        token.write_text(TOKEN + "\n")
        token.chmod(0o600)
        (root / "crunchd.toml").write_text(
            f'[server]\ntls_cert_file = "{root}/server.pem"\ntls_key_file = "{root}/server.key"\n'
            f'token_file = "{token}"\n[io]\ndata_dir = "{root}"\n'
        )
        unix = f"unix:{root}/crunchd.sock"
        tcp = f"127.0.0.1:{_free_port()}"
        with open(root / "crunchd.log", "wb") as log:
            process = subprocess.Popen(
                [_crunchd_path(), "--config", str(root / "crunchd.toml"), "--listen", unix,
                 "--listen", tcp, "--workers", "1"],
                stdout=subprocess.DEVNULL, stderr=log,
            )
        try:
            give_up = time.monotonic() + 30
            while True:
                assert process.poll() is None, (root / "crunchd.log").read_text()
                try:
                    with crunch.Client(unix, timeout=1, token=TOKEN) as c:
                        if all(w["state"] == "idle" for w in c.status()["workers"]):
                            break
                except crunch.TaskError:
                    assert time.monotonic() < give_up, (root / "crunchd.log").read_text()
                    time.sleep(0.05)
            yield SecureDaemon(unix, tcp, (root / "ca.pem").read_bytes())
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def test_token_on_the_unix_socket(secure_daemon: SecureDaemon) -> None:
    with crunch.Client(secure_daemon.unix) as c:
        with pytest.raises(crunch.UnauthenticatedError, match="requires a bearer token"):
            c.status()
    with crunch.Client(secure_daemon.unix, token="wrong-token-0123456789") as c:
        with pytest.raises(crunch.UnauthenticatedError, match="bearer token is wrong"):
            c.run("noop")
        with pytest.raises(crunch.UnauthenticatedError):
            list(c.stream([("noop", b"", {})]))
    with crunch.Client(secure_daemon.unix, token=TOKEN) as c:
        assert c.run("fib", n=10) == b"55"
        assert [r.output for r in c.stream([("fib", b"", {"n": 5})])] == [b"5"]


def test_tls_over_tcp(secure_daemon: SecureDaemon) -> None:
    with crunch.Client(secure_daemon.tcp, timeout=5, token=TOKEN) as c:
        with pytest.raises(crunch.UnavailableError):  # Plaintext to a TLS port.
            c.status()
    with crunch.Client(secure_daemon.tcp, root_certificates=secure_daemon.ca) as c:
        with pytest.raises(crunch.UnauthenticatedError):
            c.status()
    with crunch.Client(
        secure_daemon.tcp, token=TOKEN, root_certificates=secure_daemon.ca
    ) as c:
        assert c.run("fib", n=10) == b"55"
        task = c.submit("fib", n=12)
        assert c.wait(task) == b"144"


def test_aio_client_and_executor(secure_daemon: SecureDaemon) -> None:
    async def main() -> None:
        async with crunch.aio.Client(
            secure_daemon.tcp, token=TOKEN, root_certificates=secure_daemon.ca
        ) as c:
            assert await c.run("fib", n=10) == b"55"
        async with crunch.aio.Client(secure_daemon.unix) as c:
            with pytest.raises(crunch.UnauthenticatedError):
                await c.run("noop")

    asyncio.run(asyncio.wait_for(main(), 30))
    with crunch.Executor(
        secure_daemon.tcp, token=TOKEN, root_certificates=secure_daemon.ca
    ) as executor:
        assert executor.submit("fib", n=10).result(timeout=30) == b"55"


def test_bad_security_arguments() -> None:
    with pytest.raises(ValueError, match="token must be a non-empty str"):
        crunch.Client("unix:/nonexistent.sock", token=" ")
    with pytest.raises(ValueError, match="go together"):
        crunch.Client("localhost:1", private_key=b"key")
