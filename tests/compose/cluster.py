"""The docker compose cluster of the top-level docker-compose.yml, driven by the tests.

A `ComposeCluster` runs a private copy of that file: its own compose project, container-name
prefix, image tag and free host ports, so it never touches a cluster the user runs and two runs
never collide. `close()` (also run at exit and on SIGTERM) removes its containers, network,
volumes and image whatever state they are in. Faults are Docker's own: `docker kill`, `docker
pause`, `docker network disconnect`.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
NODES = (1, 2, 3)


def compose_command() -> list[str]:
    """`docker compose` (v2) if present, else `docker-compose` (v1)."""
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither 'docker compose' nor 'docker-compose' is installed")


def docker_available() -> bool:
    """Whether a Docker engine answers."""
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    return probe.returncode == 0


def free_port() -> int:
    """A TCP port free on the host right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Runs a command with a time bound, capturing its output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result


def remove_project(compose: list[str], project: str, env: dict[str, str]) -> None:
    """Removes a compose project's containers, network, volumes and image (`env` names them:
    RIVULET_PREFIX, RIVULET_IMAGE); never raises."""
    for n in NODES:  # a paused container cannot be removed
        subprocess.run(
            ["docker", "unpause", f"{env['RIVULET_PREFIX']}-{n}"], capture_output=True, check=False
        )
    cmd = [*compose, "-f", str(COMPOSE_FILE), "-p", project, "down", "-v", "--remove-orphans"]
    try:
        subprocess.run(
            [*cmd, "-t", "5"], capture_output=True, text=True, timeout=120, env=env, check=False
        )
    except Exception as e:  # noqa: BLE001 - cleanup goes on whatever failed
        print(f"compose down failed: {e}", file=sys.stderr)
    subprocess.run(["docker", "rmi", "-f", env["RIVULET_IMAGE"]], capture_output=True, check=False)


class ComposeCluster:
    """A private 3-node compose cluster built from `binary`."""

    def __init__(self, binary: Path, name: str | None = None, env: dict[str, str] | None = None):
        self.binary = binary
        self.project = name or f"rivfault{os.getpid()}"
        self.image = f"rivulet:{self.project}"
        self.ports = {n: free_port() for n in NODES}
        self.compose = compose_command()
        self.env = dict(os.environ)
        self.env.update(
            RIVULET_IMAGE=self.image,
            RIVULET_PREFIX=self.project,
            COMPOSE_PROJECT_NAME=self.project,
            **{f"RIVULET_PORT_{n}": str(p) for n, p in self.ports.items()},
        )
        self.env.update(env or {})
        self.closed = False
        atexit.register(self.close)
        previous = signal.getsignal(signal.SIGTERM)

        def on_term(signum, frame):
            self.close()
            if callable(previous):
                previous(signum, frame)
            sys.exit(143)

        signal.signal(signal.SIGTERM, on_term)

    # ---- lifecycle ---------------------------------------------------------------------------

    @staticmethod
    def remove_stale() -> list[str]:
        """Removes the clusters of earlier runs whose process is gone (one that crashed before
        its cleanup ran): projects named rivfault<pid> with no such pid alive."""
        removed = []
        labels = run(
            ["docker", "ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}'],
            check=False,
        ).stdout.split()
        for project in sorted(set(labels)):
            pid = project.removeprefix("rivfault")
            if not project.startswith("rivfault") or not pid.isdigit():
                continue
            if Path(f"/proc/{pid}").exists():
                continue
            env = dict(os.environ, RIVULET_PREFIX=project, RIVULET_IMAGE=f"rivulet:{project}")
            remove_project(compose_command(), project, env)
            removed.append(project)
        return removed

    def _compose(self, *args: str, timeout: float = 180, check: bool = True):
        cmd = [*self.compose, "-f", str(COMPOSE_FILE), "-p", self.project, *args]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=self.env, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()[-2000:]}")
        return result

    def build_image(self) -> int:
        """Builds the image from `binary` with deploy/build-image.sh; returns its size in bytes."""
        run(
            [str(REPO / "deploy/build-image.sh"), "--binary", str(self.binary), "--tag", self.image],
            timeout=300,
        )
        return int(run(["docker", "image", "inspect", "--format", "{{.Size}}", self.image]).stdout)

    def up(self, timeout: float = 120) -> None:
        """Starts the three nodes and waits until each is healthy."""
        self._compose("up", "-d")
        self.wait_healthy(NODES, timeout)

    def close(self) -> None:
        """Removes containers, network, volumes and image (idempotent, never raises)."""
        if self.closed:
            return
        self.closed = True
        remove_project(self.compose, self.project, self.env)

    # ---- addresses ---------------------------------------------------------------------------

    def container(self, node: int) -> str:
        return f"{self.project}-{node}"

    @property
    def network(self) -> str:
        # docker-compose.yml names it <prefix>-net.
        return f"{self.project}-net"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"localhost:{self.ports[n]}" for n in NODES)

    def node_of_port(self, port: int) -> int | None:
        return next((n for n, p in self.ports.items() if p == port), None)

    # ---- state -------------------------------------------------------------------------------

    def health(self, node: int) -> str:
        fmt = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"
        r = run(["docker", "inspect", "--format", fmt, self.container(node)], check=False)
        return r.stdout.strip() if r.returncode == 0 else "missing"

    def wait_healthy(self, nodes=NODES, timeout: float = 120) -> float:
        """Waits until `nodes` are healthy; returns the seconds it took."""
        start = time.monotonic()
        while True:
            states = {n: self.health(n) for n in nodes}
            if all(s == "healthy" for s in states.values()):
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"nodes not healthy after {timeout}s: {states}")
            time.sleep(0.5)

    def exec(self, node: int, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs the image's rivulet binary inside `node` with `args`."""
        return run(
            ["docker", "exec", self.container(node), "/usr/local/bin/rivulet", *args],
            timeout=timeout,
            check=False,
        )

    def inspect(self, node: int) -> dict:
        return json.loads(run(["docker", "inspect", self.container(node)]).stdout)[0]

    def logs(self, node: int, tail: int = 200) -> str:
        r = run(["docker", "logs", "--tail", str(tail), self.container(node)], check=False)
        return r.stdout + r.stderr

    # ---- faults ------------------------------------------------------------------------------

    def kill(self, node: int) -> None:
        run(["docker", "kill", self.container(node)])

    def start(self, node: int) -> None:
        run(["docker", "start", self.container(node)])

    def pause(self, node: int) -> None:
        # runc's cgroup freezer gives up ("unable to freeze") when a task will not stop in time,
        # as one in a disk wait on a loaded machine may not; it thaws the container again, so
        # asking once more is safe.
        for attempt in range(5):
            r = run(["docker", "pause", self.container(node)], check=False)
            if r.returncode == 0:
                return
            if "unable to freeze" not in r.stderr or attempt == 4:
                raise RuntimeError(
                    f"docker pause {self.container(node)} failed: {r.stderr.strip()[-2000:]}"
                )
            time.sleep(0.5)

    def unpause(self, node: int) -> None:
        run(["docker", "unpause", self.container(node)])

    def disconnect(self, node: int) -> None:
        run(["docker", "network", "disconnect", self.network, self.container(node)])

    def connect(self, node: int) -> None:
        # The service name is an alias on the network: it must be given again.
        run(
            [
                "docker", "network", "connect", "--alias", f"rivulet-{node}",
                self.network, self.container(node),
            ]
        )
