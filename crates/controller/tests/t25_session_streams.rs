//! Fencing by session streams, through the gRPC service brokers use: a broker's streams reach
//! the voters through a [`Proxy`] whose connections the test resets, as the kernel closes a
//! dead process's connections. The voters see the streams end (the response channel's sender
//! is closed when the connection dies), and the active controller fences the broker within
//! about the grace (500 ms), not `broker.session.timeout.ms` (9 s, the default here).

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rivulet_controller::{Assignment, ControllerClient, MetadataImage, NewTopic, Voter};
use support::proxy::Proxy;
use support::{two_live_brokers, TestQuorum, WAIT};

/// Far below the 9 s session timeout, far above the 500 ms grace plus a tick and a commit.
const FAST: Duration = Duration::from_secs(3);

fn client(voters: Vec<Voter>) -> ControllerClient {
    ControllerClient::new("test-cluster".into(), &voters, Duration::from_secs(10)).unwrap()
}

/// Registers brokers 1 and 2, unfences them, and creates topic `t` with one partition on
/// `[1, 2]` (led by 1); returns their epochs.
async fn setup(c: &ControllerClient) -> (i64, i64) {
    let (e1, e2) = two_live_brokers(c).await;
    let topic = NewTopic {
        name: "t".into(),
        assignment: Assignment::Manual(vec![vec![1, 2]]),
        configs: BTreeMap::new(),
    };
    let (results, _) = c.create_topics(&[topic], false).await.unwrap();
    assert_eq!(results[0].as_ref().unwrap().partitions[0].leader, 1);
    (e1, e2)
}

/// Proxies in front of every voter of `q`, and a client that reaches the voters through them.
async fn proxied(q: &TestQuorum) -> (Vec<Proxy>, ControllerClient) {
    let mut proxies = Vec::new();
    let mut voters = Vec::new();
    for v in q.voters() {
        let proxy = Proxy::start(v.address.parse().unwrap()).await;
        voters.push(Voter {
            id: v.id,
            address: proxy.address().to_string(),
        });
        proxies.push(proxy);
    }
    (proxies, client(voters))
}

/// Polls `cond` every 10 ms until it holds; fails after `within` naming `what`. Returns how
/// long it took.
async fn wait_until<F, Fut>(what: &str, within: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts `cond` holds on every poll for `period`.
async fn holds_for(what: &str, period: Duration, cond: impl Fn() -> bool) {
    let end = Instant::now() + period;
    while Instant::now() < end {
        assert!(cond(), "{what} stopped holding");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fenced(image: &MetadataImage, broker: i32) -> bool {
    image.brokers[&broker].fenced
}

fn leader(image: &MetadataImage) -> i32 {
    image.partition("t", 0).unwrap().leader
}

/// Waits until voter `id` counts `n` open session streams of `broker`.
async fn wait_streams(q: &TestQuorum, id: i32, broker: i32, n: usize) {
    let c = q.controller(id).clone();
    wait_until(
        &format!("{n} open session streams of broker {broker} on voter {id}"),
        WAIT,
        || {
            let c = c.clone();
            async move { c.open_session_streams(broker).await.ok() == Some(n) }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_connections_die_is_fenced_at_once_and_unfenced_by_its_next_heartbeat() {
    let q = TestQuorum::start(1).await;
    let voter = q.wait_for_leader(None).await;
    let direct = client(q.voters().to_vec());
    let (e1, _) = setup(&direct).await;
    let (proxies, via_proxy) = proxied(&q).await;
    let held = tokio::spawn(async move { via_proxy.hold_sessions(1, e1).await });
    wait_streams(&q, voter, 1, 1).await;

    // The connection dies (reset, as when the broker's process is killed) and stays dead.
    let c = q.controller(voter).clone();
    proxies[0].cut();
    let took = wait_until("broker 1 fenced", WAIT, || {
        let image = c.image();
        async move { fenced(&image, 1) }
    })
    .await;
    eprintln!("broker 1 fenced {took:?} after its connection died");
    assert!(took < FAST, "fenced after {took:?}, not at once");
    let image = c.image();
    assert_eq!(
        leader(&image),
        2,
        "the partition moved to the other ISR member"
    );
    assert!(!fenced(&image, 2));

    // The broker is alive: its next heartbeat (caught up) unfences it, and the closure that
    // fenced it does not fence it again, though its streams cannot reopen yet.
    let reply = direct.heartbeat(1, e1, i64::MAX).await.unwrap();
    assert!(!reply.is_fenced, "unfenced by its heartbeat");
    holds_for("broker 1 unfenced", Duration::from_millis(1500), || {
        !fenced(&c.image(), 1)
    })
    .await;

    // Its streams reopen once the connection can be made again; a later death fences again.
    proxies[0].heal();
    wait_streams(&q, voter, 1, 1).await;
    proxies[0].cut();
    wait_until("broker 1 fenced again", FAST, || {
        let image = c.image();
        async move { fenced(&image, 1) }
    })
    .await;
    held.abort();
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reopened_within_the_grace_fences_nobody() {
    let q = TestQuorum::start(1).await;
    let voter = q.wait_for_leader(None).await;
    let direct = client(q.voters().to_vec());
    let (e1, _) = setup(&direct).await;
    let (proxies, via_proxy) = proxied(&q).await;
    let held = tokio::spawn(async move { via_proxy.hold_sessions(1, e1).await });
    wait_streams(&q, voter, 1, 1).await;
    let offset = q.controller(voter).image().offset;
    // A transient reset: the broker reconnects at once.
    proxies[0].reset();
    wait_streams(&q, voter, 1, 0).await;
    wait_streams(&q, voter, 1, 1).await;
    let c = q.controller(voter).clone();
    holds_for("broker 1 unfenced", Duration::from_millis(1500), || {
        !fenced(&c.image(), 1)
    })
    .await;
    assert_eq!(c.image().offset, offset, "nothing was written");
    held.abort();
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_closed_after_a_controlled_shutdown_change_nothing() {
    let q = TestQuorum::start(1).await;
    let voter = q.wait_for_leader(None).await;
    let direct = client(q.voters().to_vec());
    let (e1, e2) = setup(&direct).await;
    let held = tokio::spawn({
        let direct = direct.clone();
        async move { direct.hold_sessions(1, e1).await }
    });
    wait_streams(&q, voter, 1, 1).await;
    // Broker 1 shuts down in a controlled way: its leadership moves, it is fenced.
    let deadline = Instant::now() + WAIT;
    loop {
        // Broker 2 reports the latest offset, which the controller waits for.
        let offset = q.controller(voter).image().offset;
        direct.heartbeat(2, e2, offset).await.unwrap();
        let reply = direct.heartbeat_shutdown(1, e1, offset).await.unwrap();
        if reply.should_shut_down {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "controlled shutdown did not complete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = q.controller(voter).clone();
    let image = c.image();
    assert!(fenced(&image, 1));
    assert_eq!(leader(&image), 2);
    // Then its process stops: dropping the streams (as the broker does at shutdown) closes
    // them on the voter, and that writes nothing more.
    held.abort();
    let _ = held.await;
    wait_streams(&q, voter, 1, 0).await;
    holds_for("nothing written", Duration::from_millis(1500), || {
        c.image().offset == image.offset
    })
    .await;
    assert!(fenced(&c.image(), 1));
    q.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_fences_a_broker_that_died_with_the_old_one() {
    let mut q = TestQuorum::start(3).await;
    let old = q.wait_for_leader(None).await;
    let direct = client(q.voters().to_vec());
    let (e1, e2) = setup(&direct).await;
    let (proxies, via_proxy) = proxied(&q).await;
    let held = tokio::spawn(async move { via_proxy.hold_sessions(1, e1).await });
    for id in q.running() {
        wait_streams(&q, id, 1, 1).await;
    }
    // Both brokers heartbeat every 300 ms (to every voter) until broker 1 dies; broker 2 goes
    // on, so only broker 1's session could expire, 9 s after its last heartbeat.
    let beats = tokio::spawn({
        let direct = direct.clone();
        async move {
            loop {
                let _ = direct.heartbeat(2, e2, i64::MAX).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    direct.heartbeat(1, e1, i64::MAX).await.unwrap();

    // Broker 1 dies together with the active controller.
    let t0 = Instant::now();
    for p in &proxies {
        p.cut();
    }
    q.kill(old).await;
    let new = q.wait_for_leader(Some(old)).await;
    let elected = t0.elapsed();
    let c = q.controller(new).clone();
    wait_until("broker 1 fenced by the new controller", WAIT, || {
        let image = c.image();
        async move { fenced(&image, 1) }
    })
    .await;
    let took = t0.elapsed();
    eprintln!("new controller {new} elected after {elected:?}; broker 1 fenced after {took:?}");
    // The election takes up to 4 election timeouts (3.2 s here); the session would expire 9 s
    // after the last heartbeat.
    assert!(
        took < Duration::from_secs(6),
        "fenced after {took:?}: the session expiry, not the closed streams"
    );
    assert!(took < elected + FAST, "fenced soon after the election");
    let image = c.image();
    assert_eq!(leader(&image), 2);
    assert!(!fenced(&image, 2));
    beats.abort();
    held.abort();
    q.stop().await;
}
