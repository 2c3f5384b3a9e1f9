//! The broker's lifecycle with the controller: register, heartbeat, get unfenced.
//!
//! Each process start registers with a new incarnation id and receives a broker epoch (the
//! offset of its registration record). It then heartbeats every
//! `broker.heartbeat.interval.ms` with the metadata offset it has applied; once that offset
//! has reached its registration the controller unfences it, and once its own image shows the
//! unfencing (with the leaderships it brought) the broker starts serving clients (Kafka's
//! brokers also wait to be caught up and unfenced). A heartbeat refused with
//! STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED means the controller no longer knows this
//! registration: the broker registers again. The controller fences a broker whose heartbeats
//! stop for `broker.session.timeout.ms`.
//!
//! While a registration lives, the broker also holds a session stream open to every voter
//! ([`rivulet_controller::ControllerClient::hold_sessions`]): if this process dies, its kernel
//! closes them and the active controller fences the broker within half a second instead of
//! the session timeout. The streams of a registration are closed when it is replaced and at
//! shutdown (after the controlled shutdown has fenced it, so their close changes nothing).
//!
//! Controlled shutdown (`controlled.shutdown.enable`): before a broker stops, it heartbeats with
//! `want_shut_down` ([`controlled_shutdown`]) while it keeps serving; the controller moves its
//! leaderships to other in-sync replicas and answers `should_shut_down` once that is done and
//! the other brokers have seen it, so clients find the new leaders as soon as this one stops,
//! instead of after the session timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rivulet_controller::{MetadataError, Registration};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metadata::quorum_store::QuorumMetadataStore;
use crate::metadata::{MetadataImage, MetadataStore};

/// How often a fenced broker heartbeats, to be unfenced soon after it catches up.
const FENCED_HEARTBEAT: Duration = Duration::from_millis(100);

/// Whether `image` has registration `broker_epoch` of `broker_id` unfenced.
fn unfenced_in(image: &MetadataImage, broker_id: i32, broker_epoch: i64) -> bool {
    image
        .brokers
        .get(&broker_id)
        .is_some_and(|b| b.epoch == broker_epoch && !b.fenced)
}

/// How long a controlled shutdown may take before the broker stops anyway.
pub const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a broker in controlled shutdown heartbeats until the controller lets it stop.
const SHUTDOWN_HEARTBEAT: Duration = Duration::from_millis(100);

/// Controlled shutdown of broker `broker_id`: heartbeats with `want_shut_down` until the
/// controller answers `should_shut_down` (its leaderships have moved and it is fenced), or
/// `timeout` passes (`MetadataError::Timeout`; the caller stops anyway). A broker that never
/// registered has nothing to move. Requests are served meanwhile: the caller cancels nothing
/// before this returns.
pub async fn controlled_shutdown(
    store: &dyn MetadataStore,
    broker_id: i32,
    timeout: Duration,
) -> Result<(), MetadataError> {
    if store.broker_epoch() < 0 {
        return Ok(());
    }
    let deadline = Instant::now() + timeout;
    let mut failures = 0u32;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let beat = tokio::time::timeout(remaining, store.request_controlled_shutdown(broker_id));
        match beat.await {
            Ok(Ok(true)) => return Ok(()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) if e.is_retriable() => {
                if failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, "controlled shutdown heartbeat failed; retrying");
                }
                failures += 1;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => break,
        }
        let pause = SHUTDOWN_HEARTBEAT.min(deadline.saturating_duration_since(Instant::now()));
        if pause.is_zero() {
            break;
        }
        tokio::time::sleep(pause).await;
    }
    Err(MetadataError::Timeout(format!(
        "the controller did not complete the controlled shutdown within {timeout:?}"
    )))
}

/// What the heartbeat loop of one registration ends with.
enum Next {
    /// Shutting down.
    Stop,
    /// The controller no longer knows the registration: register again.
    Register,
}

/// Registers, heartbeats and holds the session streams until `shutdown`; `unfenced` turns
/// true whenever the controller last said this broker is unfenced.
pub async fn run(
    store: Arc<QuorumMetadataStore>,
    registration: Registration,
    interval: Duration,
    unfenced: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let client = store.client().clone();
    let mut failures = 0u32;
    loop {
        let epoch = loop {
            let attempt = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = client.register_broker(&registration) => r,
            };
            match attempt {
                Ok(epoch) => break epoch,
                Err(e) => {
                    if failures.is_multiple_of(20) {
                        tracing::info!(error = %e, "broker registration not accepted yet; retrying");
                    }
                    failures += 1;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(interval.min(Duration::from_millis(500))) => {}
                    }
                }
            }
        };
        store.set_broker_epoch(epoch);
        tracing::info!(
            broker = registration.broker_id,
            broker_epoch = epoch,
            "registered with the controller"
        );
        let heartbeats = async {
            loop {
                let offset = store.image().offset;
                let beat = tokio::select! {
                    _ = shutdown.cancelled() => return Next::Stop,
                    r = client.heartbeat(registration.broker_id, epoch, offset) => r,
                };
                let fenced = match beat {
                    Ok(reply) => {
                        failures = 0;
                        // Unfenced once this broker's own image says so too: the entry that
                        // unfenced it also holds the leaderships it got, which its partitions
                        // must see first.
                        reply.is_fenced
                            || !unfenced_in(&store.image(), registration.broker_id, epoch)
                    }
                    Err(
                        MetadataError::StaleBrokerEpoch { .. }
                        | MetadataError::BrokerIdNotRegistered(_),
                    ) => {
                        tracing::warn!(
                            broker = registration.broker_id,
                            "the controller no longer knows this registration; registering again"
                        );
                        unfenced.send_replace(false);
                        return Next::Register;
                    }
                    Err(e) => {
                        if failures.is_multiple_of(20) {
                            tracing::warn!(error = %e, "heartbeat failed");
                        }
                        failures += 1;
                        *unfenced.borrow()
                    }
                };
                if unfenced.send_replace(!fenced) == fenced && !fenced {
                    tracing::info!(
                        broker = registration.broker_id,
                        "unfenced by the controller"
                    );
                }
                let wait = if fenced { FENCED_HEARTBEAT } else { interval };
                tokio::select! {
                    _ = shutdown.cancelled() => return Next::Stop,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        };
        // The registration's session streams live as long as its heartbeats: dropping them
        // here closes them.
        let next = tokio::select! {
            next = heartbeats => next,
            never = client.hold_sessions(registration.broker_id, epoch) => match never {},
        };
        match next {
            Next::Stop => return,
            Next::Register => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The lifecycle against a real in-process controller (one voter), reached through a relay
    //! whose connections the test resets: the broker process lives on while its connections
    //! die, as in a transient network fault.

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use rivulet_controller::{ControllerClient, ControllerConfig, ControllerNode, Voter};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::metadata::follower;

    const WAIT: Duration = Duration::from_secs(20);

    /// A TCP relay whose connections can be reset (RST) and new ones refused for a while.
    struct Relay {
        address: SocketAddr,
        cut: Arc<Mutex<CancellationToken>>,
        refusing: Arc<AtomicBool>,
        accept: tokio::task::JoinHandle<()>,
    }

    impl Relay {
        async fn start(target: SocketAddr) -> Relay {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let cut = Arc::new(Mutex::new(CancellationToken::new()));
            let refusing = Arc::new(AtomicBool::new(false));
            let accept = tokio::spawn({
                let (cut, refusing) = (Arc::clone(&cut), Arc::clone(&refusing));
                async move {
                    while let Ok((inbound, _)) = listener.accept().await {
                        if refusing.load(Ordering::SeqCst) {
                            let _ = inbound.set_zero_linger();
                            continue;
                        }
                        let token = cut.lock().unwrap().clone();
                        tokio::spawn(async move {
                            let Ok(mut outbound) = TcpStream::connect(target).await else {
                                return;
                            };
                            let mut inbound = inbound;
                            tokio::select! {
                                _ = token.cancelled() => {}
                                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            }
                            let _ = inbound.set_zero_linger();
                            let _ = outbound.set_zero_linger();
                        });
                    }
                }
            });
            Relay {
                address,
                cut,
                refusing,
                accept,
            }
        }

        /// Resets every connection and refuses new ones until `heal`.
        fn cut(&self) {
            self.refusing.store(true, Ordering::SeqCst);
            let mut token = self.cut.lock().unwrap();
            token.cancel();
            *token = CancellationToken::new();
        }

        fn heal(&self) {
            self.refusing.store(false, Ordering::SeqCst);
        }
    }

    impl Drop for Relay {
        fn drop(&mut self) {
            self.accept.abort();
            self.cut.lock().unwrap().cancel();
        }
    }

    async fn wait_until(what: &str, cond: impl Fn() -> bool) -> Duration {
        let start = Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < WAIT,
                "{what} did not happen within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        start.elapsed()
    }

    async fn wait_streams(node: &ControllerNode, n: usize) {
        let start = Instant::now();
        while node.controller().open_session_streams(1).await.ok() != Some(n) {
            assert!(
                start.elapsed() < WAIT,
                "{n} open session streams not reached"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_live_broker_fenced_for_its_closed_streams_is_unfenced_by_its_heartbeats() {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let voters = vec![Voter {
            id: 1,
            address: address.to_string(),
        }];
        let config = ControllerConfig::new(1, "lifecycle-test".into(), voters, dir.path().into());
        let node = ControllerNode::start(config, listener).await.unwrap();
        let relay = Relay::start(address).await;
        let client = ControllerClient::new(
            "lifecycle-test".into(),
            &[Voter {
                id: 1,
                address: relay.address.to_string(),
            }],
            Duration::from_secs(10),
        )
        .unwrap();
        let store = QuorumMetadataStore::new(client, Duration::from_secs(5));
        let shutdown = CancellationToken::new();
        tokio::spawn(follower::run(Arc::clone(&store), 1, -1, shutdown.clone()));
        let (unfenced_tx, mut unfenced) = watch::channel(false);
        let lifecycle = tokio::spawn(run(
            Arc::clone(&store),
            Registration {
                broker_id: 1,
                incarnation_id: uuid::Uuid::new_v4(),
                endpoints: vec![("PLAINTEXT".into(), "127.0.0.1".into(), 9092)],
                rack: None,
            },
            Duration::from_millis(300),
            unfenced_tx,
            shutdown.clone(),
        ));
        tokio::time::timeout(WAIT, unfenced.wait_for(|u| *u))
            .await
            .expect("unfenced in time")
            .unwrap();
        let epoch = store.broker_epoch();
        wait_streams(&node, 1).await;

        // Every connection of the broker dies and stays dead for a while: fenced (its session,
        // 9 s, has not expired).
        let controller = node.controller().clone();
        let is_fenced = || controller.image().brokers[&1].fenced;
        relay.cut();
        let took = wait_until("the broker fenced", is_fenced).await;
        assert!(took < Duration::from_secs(3), "fenced after {took:?}");

        // The connection comes back: the same registration heartbeats and is unfenced again,
        // and its streams reopen.
        relay.heal();
        wait_until("the broker unfenced again", || !is_fenced()).await;
        wait_streams(&node, 1).await;
        tokio::time::timeout(WAIT, unfenced.wait_for(|u| *u))
            .await
            .expect("the broker sees itself unfenced")
            .unwrap();
        assert_eq!(
            store.broker_epoch(),
            epoch,
            "no new registration was needed"
        );
        assert_eq!(controller.image().brokers[&1].epoch, epoch);

        // Shutdown closes the streams.
        shutdown.cancel();
        lifecycle.await.unwrap();
        wait_streams(&node, 0).await;
        node.shutdown().await;
    }
}
