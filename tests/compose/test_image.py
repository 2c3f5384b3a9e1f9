"""The image: FROM scratch, small, non-root, and compose service names resolve inside it."""

from cluster import NODES


def test_the_image_is_small(compose_cluster):
    size_mib = compose_cluster.image_size / 2**20
    print(f"image size: {size_mib:.1f} MiB")
    # The stripped binary plus glibc: a debug build is larger than a release one.
    assert size_mib < 80


def test_nodes_run_as_an_unprivileged_user(compose_cluster):
    for n in NODES:
        info = compose_cluster.inspect(n)
        assert info["Config"]["User"] == "65532:65532"
        pid = info["State"]["Pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids == ["65532"] * 4, uids


def test_service_names_resolve_inside_the_image(compose_cluster):
    # The quorum itself formed over service names (controller.quorum.voters=1@rivulet-1:9093,...);
    # here a client inside node 1 reaches the other nodes by their service names too.
    for other in (2, 3):
        r = compose_cluster.exec(1, "cluster", "status", "--bootstrap", f"rivulet-{other}:9092")
        assert r.returncode == 0, r.stderr
        for n in NODES:
            assert f"rivulet-{n}:9092" in r.stdout, r.stdout
    # librdkafka inside the image resolves them too.
    r = compose_cluster.exec(
        1,
        "perf", "metadata",
        "--bootstrap-servers", "rivulet-2:9092,rivulet-3:9092",
        "--expect-brokers", "3",
        "--timeout", "20s",
    )
    assert r.returncode == 0, r.stderr


def test_the_healthcheck_says_why(compose_cluster):
    r = compose_cluster.exec(2, "cluster", "health")
    assert r.returncode == 0 and "healthy: broker 2 up" in r.stdout, (r.stdout, r.stderr)
    r = compose_cluster.exec(2, "cluster", "health", "--node-id", "7")
    assert r.returncode != 0 and "broker 7 is not registered" in r.stderr, r.stderr


def test_every_node_is_healthy_and_published_on_its_port(compose_cluster):
    from confluent_kafka import Consumer

    client = Consumer({"bootstrap.servers": compose_cluster.bootstrap, "group.id": "probe"})
    try:
        brokers = client.list_topics(timeout=10).brokers
    finally:
        client.close()
    assert {b.id: (b.host, b.port) for b in brokers.values()} == {
        n: ("localhost", compose_cluster.ports[n]) for n in NODES
    }
