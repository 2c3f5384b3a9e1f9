"""Fixtures that run one `rivulet server` for the Python client tests.

The binary is not built here: `RIVULET_BIN` names it, or `target/debug/rivulet` under the repo
root (`scripts/test` builds it). The server gets free loopback ports and a temporary data dir,
is waited for with bounded polling, and is stopped by its PID (SIGTERM, then SIGKILL). Its log
(stderr) goes to a file that is attached to the report of every failing test.
"""

from __future__ import annotations

import ctypes
import gc
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
START_ATTEMPTS = 3
LOG_TAIL_LINES = 200


@dataclass
class Broker:
    """A running `rivulet server`: where to reach it and where its files are."""

    process: subprocess.Popen
    host: str
    port: int
    data_dir: Path
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"


def rivulet_bin() -> Path:
    configured = os.environ.get("RIVULET_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "rivulet"
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"rivulet binary not found at {path}: run `cargo build -p rivulet` "
            "(scripts/test does) or set RIVULET_BIN",
            pytrace=False,
        )
    return path


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago (the kernel picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM the broker if pytest dies without tearing down.
    (preexec_fn is safe here: the session fixture starts the server before any client thread.)"""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:
        pass


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start(binary: Path, data_dir: Path, log_path: Path) -> Broker | None:
    """Starts one server; None if it exited before listening (a port taken meanwhile)."""
    port, controller_port = free_ports(2)
    cmd = [
        str(binary),
        "server",
        "--set",
        f"log.dirs={data_dir}",
        "--set",
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        # A new group's first rebalance waits this long for more members (Kafka: 3000 ms);
        # the group tests start many groups. Everything else keeps Kafka's defaults.
        "--set",
        "group.initial.rebalance.delay.ms=100",
    ]
    env = dict(os.environ, NO_COLOR="1")
    env.setdefault("RUST_LOG", "info")
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=data_dir.parent,
            preexec_fn=_die_with_parent,
        )
    broker = Broker(process, "127.0.0.1", port, data_dir, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            if "Address already in use" in broker.log_tail():
                return None
            pytest.fail(
                f"rivulet server exited with {process.returncode} before listening:\n"
                + broker.log_tail(),
                pytrace=False,
            )
        if _accepts(broker.host, broker.port):
            return broker
        time.sleep(0.1)
    _stop(process)
    pytest.fail(
        f"rivulet server did not accept connections on {broker.bootstrap} within "
        f"{START_TIMEOUT_S:.0f}s:\n" + broker.log_tail(),
        pytrace=False,
    )


def _stop(process: subprocess.Popen) -> str | None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns what went wrong, if anything."""
    if process.poll() is not None:
        return f"rivulet server had already exited with {process.returncode}"
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)
        return f"rivulet server ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s and was killed"
    if code != 0:
        return f"rivulet server exited with {code} after SIGTERM"
    return None


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):
    """One single-node broker for the whole session; each test uses its own topics."""
    binary = rivulet_bin()
    root = tmp_path_factory.mktemp("rivulet")
    started = None
    for attempt in range(START_ATTEMPTS):
        data_dir = root / f"data{attempt}"
        data_dir.mkdir()
        started = _start(binary, data_dir, root / f"server{attempt}.log")
        if started is not None:
            break
    if started is None:
        pytest.fail(f"ports taken {START_ATTEMPTS} times in a row, logs in {root}", pytrace=False)
    yield started
    # Client handles still unreferenced-but-alive (cycles) would otherwise try to reconnect to
    # the stopped server and log errors at exit: release them while it still runs.
    gc.collect()
    problem = _stop(started.process)
    if problem:
        pytest.fail(
            f"{problem}; server log {started.log_path}:\n{started.log_tail()}", pytrace=False
        )


@pytest.fixture(scope="session")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail(
            "kcat is not installed: `apt-get install -y kcat` (.ci/run installs it)",
            pytrace=False,
        )
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Attaches the server log's tail to the report of a failing test."""
    report = yield
    if report.failed:
        broker = item.funcargs.get("broker") if hasattr(item, "funcargs") else None
        if isinstance(broker, Broker):
            report.sections.append(
                (
                    f"rivulet server log ({broker.log_path}, last {LOG_TAIL_LINES} lines)",
                    broker.log_tail(),
                )
            )
    return report
