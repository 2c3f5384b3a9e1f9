//! The metadata follower: keeps the broker's image in step with the quorum's committed log.
//!
//! It opens a `FetchMetadata` stream after the image's offset, on the local controller when
//! this node is one, else on the voters in turn, and applies what arrives: a snapshot replaces
//! the image, deltas apply in order. A stream that breaks is reopened from the last applied
//! offset, so nothing is applied twice or skipped.
//!
//! Epoch fencing: a delta whose controller epoch is older than the one the image already holds
//! is refused with STALE_CONTROLLER_EPOCH (terms never go back along a Raft log, so such a
//! delta can only come from a confused or stale peer), and the stream is dropped.

use std::sync::Arc;
use std::time::Duration;

use rivulet_controller::records::MetadataDelta;
use rivulet_controller::MetadataUpdate;
use tokio_util::sync::CancellationToken;

use super::quorum_store::QuorumMetadataStore;
use super::{MetadataError, MetadataImage, MetadataStore};

/// The image after `update`, or why `update` is refused. `None`: nothing new.
pub fn apply_update(
    current: &MetadataImage,
    update: MetadataUpdate,
) -> Result<Option<MetadataImage>, MetadataError> {
    match update {
        MetadataUpdate::Snapshot(image) => {
            if image.offset <= current.offset {
                return Ok(None);
            }
            check_epoch(current, image.controller_epoch)?;
            Ok(Some(*image))
        }
        MetadataUpdate::Deltas(deltas) => {
            let fresh: Vec<&MetadataDelta> = deltas
                .iter()
                .filter(|d| d.offset > current.offset)
                .collect();
            if fresh.is_empty() {
                return Ok(None);
            }
            let mut next = current.clone();
            for d in fresh {
                check_epoch(&next, d.controller_epoch)?;
                next.apply_delta(d);
            }
            Ok(Some(next))
        }
    }
}

fn check_epoch(current: &MetadataImage, epoch: i32) -> Result<(), MetadataError> {
    if epoch < current.controller_epoch {
        return Err(MetadataError::StaleControllerEpoch {
            got: epoch,
            current: current.controller_epoch,
        });
    }
    Ok(())
}

/// Follows the quorum until `shutdown`. `local_controller` is this node's id if it is a voter.
pub async fn run(
    store: Arc<QuorumMetadataStore>,
    broker_id: i32,
    local_controller: i32,
    shutdown: CancellationToken,
) {
    let mut attempt = 0usize;
    loop {
        let after = store.image().offset;
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return,
            s = store.client().fetch_metadata(broker_id, local_controller, after, attempt) => s,
        };
        match opened {
            Ok(mut stream) => loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = stream.next() => n,
                };
                match next {
                    Ok(Some(update)) => match apply_update(&store.image(), update) {
                        Ok(Some(image)) => {
                            attempt = 0;
                            store.publish(Arc::new(image));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "refusing metadata from a controller");
                            attempt += 1;
                            break;
                        }
                    },
                    Ok(None) => {
                        attempt += 1;
                        break;
                    }
                    Err(e) => {
                        if attempt.is_multiple_of(50) {
                            tracing::warn!(error = %e, "metadata stream from a controller broke; reopening");
                        }
                        attempt += 1;
                        break;
                    }
                }
            },
            Err(e) => {
                if attempt % 50 == 1 {
                    tracing::warn!(error = %e, "cannot follow the metadata log yet");
                }
                attempt += 1;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rivulet_controller::records::MetadataRecord;

    fn delta(offset: i64, epoch: i32) -> MetadataDelta {
        MetadataDelta {
            offset,
            controller_epoch: epoch,
            controller_id: 1,
            records: Arc::from(vec![MetadataRecord::ProducerIdBlock {
                broker_id: 1,
                first: offset,
                size: 1,
            }]),
        }
    }

    #[test]
    fn deltas_apply_once_and_in_order() {
        let image = MetadataImage::empty("c");
        let next = apply_update(
            &image,
            MetadataUpdate::Deltas(vec![delta(0, 1), delta(1, 1)]),
        )
        .unwrap()
        .unwrap();
        assert_eq!((next.offset, next.next_producer_id), (1, 2));
        // A replay of what was applied changes nothing.
        assert!(
            apply_update(&next, MetadataUpdate::Deltas(vec![delta(1, 1)]))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_delta_from_an_older_controller_epoch_is_refused() {
        let image = MetadataImage::empty("c");
        let at_epoch_3 = apply_update(&image, MetadataUpdate::Deltas(vec![delta(0, 3)]))
            .unwrap()
            .unwrap();
        let e = apply_update(&at_epoch_3, MetadataUpdate::Deltas(vec![delta(1, 2)])).unwrap_err();
        assert_eq!(
            e,
            MetadataError::StaleControllerEpoch { got: 2, current: 3 }
        );
        assert_eq!(e.code(), 11, "STALE_CONTROLLER_EPOCH");
    }
}
