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

/// Registers and heartbeats until `shutdown`; `unfenced` turns true whenever the controller
/// last said this broker is unfenced.
pub async fn run(
    store: Arc<QuorumMetadataStore>,
    registration: Registration,
    interval: Duration,
    unfenced: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let client = store.client().clone();
    let mut failures = 0u32;
    'register: loop {
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
        loop {
            let offset = store.image().offset;
            let beat = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = client.heartbeat(registration.broker_id, epoch, offset) => r,
            };
            let fenced = match beat {
                Ok(reply) => {
                    failures = 0;
                    // Unfenced once this broker's own image says so too: the entry that unfenced
                    // it also holds the leaderships it got, which its partitions must see first.
                    reply.is_fenced || !unfenced_in(&store.image(), registration.broker_id, epoch)
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
                    continue 'register;
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
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
