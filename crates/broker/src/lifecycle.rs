//! The broker's lifecycle with the controller: register, heartbeat, get unfenced.
//!
//! Each process start registers with a new incarnation id and receives a broker epoch (the
//! offset of its registration record). It then heartbeats every
//! `broker.heartbeat.interval.ms` with the metadata offset it has applied; once that offset
//! has reached its registration the controller unfences it, and the broker starts serving
//! clients (Kafka's brokers also wait to be caught up and unfenced). A heartbeat refused with
//! STALE_BROKER_EPOCH or BROKER_ID_NOT_REGISTERED means the controller no longer knows this
//! registration: the broker registers again. The controller fences a broker whose heartbeats
//! stop for `broker.session.timeout.ms`.

use std::sync::Arc;
use std::time::Duration;

use rivulet_controller::{MetadataError, Registration};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metadata::quorum_store::QuorumMetadataStore;
use crate::metadata::MetadataStore;

/// How often a fenced broker heartbeats, to be unfenced soon after it catches up.
const FENCED_HEARTBEAT: Duration = Duration::from_millis(100);

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
                    reply.is_fenced
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
