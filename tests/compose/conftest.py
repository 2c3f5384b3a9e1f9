"""The compose cluster the tests in this directory share.

It is built from `RIVULET_BIN` (or `target/debug/rivulet`, which `scripts/test` builds) into a
private image and compose project (see cluster.py) and is removed at the end of the session
whatever happened; clusters left by a run that crashed are removed first. Without a Docker
engine the tests are skipped, except under CI=true, where that is an error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import NODES, REPO, ComposeCluster, docker_available  # noqa: E402


def pytest_collection_modifyitems(items):
    # The fault suite leaves nodes restarted and leaders moved: it runs last.
    items.sort(key=lambda item: "test_faults" in item.nodeid)


@pytest.fixture(scope="session")
def compose_cluster():
    if not docker_available():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Docker engine answers `docker info`")
        pytest.skip("no Docker engine: the compose tests need one")
    binary = Path(os.environ.get("RIVULET_BIN") or REPO / "target/debug/rivulet")
    if not binary.exists():
        pytest.fail(f"rivulet binary not found at {binary}: run `cargo build -p rivulet`")
    ComposeCluster.remove_stale()
    cluster = ComposeCluster(binary)
    try:
        cluster.image_size = cluster.build_image()
        cluster.up()
        yield cluster
    except BaseException:
        for n in NODES:
            print(f"---- logs of {cluster.container(n)} ----\n{cluster.logs(n)}", file=sys.stderr)
        raise
    finally:
        cluster.close()
