//! [`SessionStreams`]: per broker, the `BrokerSession` streams open to this voter, and when the
//! last of them closed. Pure state, owned by the controller task and fed by the gRPC service.
//!
//! A registered broker holds one stream open to every voter ([`crate::grpc::client`]). When its
//! process dies the kernel closes its connections, so every voter sees its streams end within
//! moments, long before its heartbeats are missed for `broker.session.timeout.ms`. The active
//! controller fences an unfenced broker once every stream of its current registration to this
//! voter has been closed for a grace period (a broken connection of a live broker is replaced
//! within it), and only once per closure: a live broker fenced this way is unfenced again by its
//! next heartbeat and is not fenced again until a stream it reopened closes.
//!
//! ```text
//!   opened(b, e)       e newer than tracked: track e, 1 open     e older: ignored
//!                      e tracked: one more open, closure forgotten
//!   closed(b, e, t)    e tracked: one fewer open; none left -> closed at t
//!   due(image, now)    unfenced in image with epoch e, 0 open, closed >= grace ago -> fence
//! ```
//!
//! Every voter keeps this state (brokers open streams to all of them), so a voter that becomes
//! the active controller fences a broker whose streams closed while it followed, e.g. a broker
//! that died together with the previous controller, right after its election.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::image::MetadataImage;

/// One broker's streams to this voter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    /// The registration (broker epoch) the streams belong to: the newest seen.
    epoch: i64,
    /// How many of its streams are open.
    open: usize,
    /// When the last one closed, while none is open and the closure is not acted on yet.
    closed_at: Option<Instant>,
}

/// The `BrokerSession` streams of every broker to this voter (module doc).
#[derive(Debug, Default)]
pub struct SessionStreams {
    brokers: HashMap<i32, Streams>,
}

impl SessionStreams {
    /// A stream of registration `epoch` of `broker` opened.
    pub fn opened(&mut self, broker: i32, epoch: i64) {
        let none = Streams {
            epoch,
            open: 0,
            closed_at: None,
        };
        let s = self.brokers.entry(broker).or_insert(none);
        if epoch > s.epoch {
            // A new registration: the old one's streams no longer count.
            *s = none;
        }
        if epoch == s.epoch {
            s.open += 1;
            s.closed_at = None;
        }
    }

    /// A stream of registration `epoch` of `broker` closed at `at`.
    pub fn closed(&mut self, broker: i32, epoch: i64, at: Instant) {
        let Some(s) = self.brokers.get_mut(&broker) else {
            return;
        };
        if s.epoch != epoch || s.open == 0 {
            return;
        }
        s.open -= 1;
        if s.open == 0 {
            s.closed_at = Some(at);
        }
    }

    /// The brokers to fence now: unfenced in `image`, registered with the epoch their streams
    /// belonged to, every stream closed, the last at least `grace` before `now`. Closures of
    /// brokers `image` has fenced already are forgotten: they are acted on.
    pub fn due(&mut self, image: &MetadataImage, now: Instant, grace: Duration) -> Vec<i32> {
        let mut due = Vec::new();
        for (broker, s) in &mut self.brokers {
            let Some(closed_at) = s.closed_at else {
                continue;
            };
            let Some(b) = image.brokers.get(broker).filter(|b| b.epoch == s.epoch) else {
                continue;
            };
            if b.fenced {
                s.closed_at = None;
            } else if now.saturating_duration_since(closed_at) >= grace {
                due.push(*broker);
            }
        }
        due.sort_unstable();
        due
    }

    /// `broker` was fenced for its closed streams: that closure is acted on.
    pub fn acted_on(&mut self, broker: i32) {
        if let Some(s) = self.brokers.get_mut(&broker) {
            s.closed_at = None;
        }
    }

    /// How many streams of `broker`'s tracked registration are open (tests, diagnostics).
    pub fn open_streams(&self, broker: i32) -> usize {
        self.brokers.get(&broker).map_or(0, |s| s.open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::testing::Cluster;
    use crate::records::MetadataRecord;

    const GRACE: Duration = Duration::from_millis(500);

    /// Brokers 1..=3, registered (epochs from the image) and unfenced.
    fn cluster() -> Cluster {
        Cluster::new(&[1, 2, 3])
    }

    fn epoch(c: &Cluster, broker: i32) -> i64 {
        c.image.brokers[&broker].epoch
    }

    #[test]
    fn a_broker_whose_only_stream_closed_is_due_after_the_grace() {
        let c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        s.opened(1, epoch(&c, 1));
        s.opened(2, epoch(&c, 2));
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
        s.closed(1, epoch(&c, 1), t0);
        assert!(
            s.due(&c.image, t0 + GRACE / 2, GRACE).is_empty(),
            "within the grace"
        );
        assert_eq!(s.due(&c.image, t0 + GRACE, GRACE), vec![1]);
        // Still due until acted on (a failed proposal is retried).
        assert_eq!(s.due(&c.image, t0 + GRACE * 2, GRACE), vec![1]);
        s.acted_on(1);
        assert!(s.due(&c.image, t0 + GRACE * 3, GRACE).is_empty());
    }

    #[test]
    fn a_stream_reopened_within_the_grace_keeps_the_broker() {
        let c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        let e = epoch(&c, 1);
        s.opened(1, e);
        s.closed(1, e, t0);
        s.opened(1, e);
        assert_eq!(s.open_streams(1), 1);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
    }

    #[test]
    fn one_stream_of_two_closing_is_not_a_death() {
        // A reconnect can open the new stream before the voter sees the old one close.
        let c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        let e = epoch(&c, 1);
        s.opened(1, e);
        s.opened(1, e);
        s.closed(1, e, t0);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
        s.closed(1, e, t0 + GRACE);
        assert!(s.due(&c.image, t0 + GRACE * 3 / 2, GRACE).is_empty());
        assert_eq!(s.due(&c.image, t0 + GRACE * 2, GRACE), vec![1]);
    }

    #[test]
    fn only_streams_of_the_current_registration_count() {
        let mut c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        let old = epoch(&c, 1);
        s.opened(1, old);
        // The broker registers again; its new streams have not reached this voter yet when the
        // old one closes.
        c.register(1);
        s.closed(1, old, t0);
        assert!(
            s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty(),
            "the old registration's stream closing fences nothing"
        );
        // Its new streams, then a late open and close of an old one, which is ignored.
        let new = epoch(&c, 1);
        s.opened(1, new);
        s.opened(1, old);
        s.closed(1, old, t0);
        assert_eq!(s.open_streams(1), 1);
        s.closed(1, new, t0);
        assert!(
            s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty(),
            "the new registration is fenced until it catches up"
        );
        c.unfence(1);
        assert_eq!(s.due(&c.image, t0 + GRACE * 10, GRACE), Vec::<i32>::new());
    }

    #[test]
    fn a_stream_of_a_registration_the_image_does_not_have_yet_is_tracked() {
        // A follower voter may see a new registration's stream before it applies the record.
        let mut c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        let next = c.image.offset + 1;
        s.opened(1, next);
        s.closed(1, next, t0);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
        c.register(1);
        assert_eq!(epoch(&c, 1), next);
        c.unfence(1);
        assert_eq!(s.due(&c.image, t0 + GRACE * 10, GRACE), vec![1]);
    }

    #[test]
    fn a_closure_while_fenced_is_forgotten_and_never_fences_later() {
        let mut c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        let e = epoch(&c, 1);
        s.opened(1, e);
        // Fenced by something else (its session expired, a controlled shutdown).
        c.commit(vec![MetadataRecord::FenceBroker {
            broker_id: 1,
            broker_epoch: e,
        }]);
        s.closed(1, e, t0);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
        // Unfenced again by a heartbeat: the old closure does not fence it.
        c.unfence(1);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
        // Until a stream it reopens closes.
        s.opened(1, e);
        s.closed(1, e, t0 + GRACE * 10);
        assert_eq!(s.due(&c.image, t0 + GRACE * 11, GRACE), vec![1]);
    }

    #[test]
    fn unknown_brokers_and_unmatched_closes_change_nothing() {
        let c = cluster();
        let mut s = SessionStreams::default();
        let t0 = Instant::now();
        s.closed(1, epoch(&c, 1), t0);
        s.opened(9, 5);
        s.closed(9, 5, t0);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
        // More closes than opens (a duplicate event) never go below zero.
        let e = epoch(&c, 2);
        s.opened(2, e);
        s.closed(2, e, t0);
        s.closed(2, e, t0);
        s.opened(2, e);
        assert_eq!(s.open_streams(2), 1);
        assert!(s.due(&c.image, t0 + GRACE * 10, GRACE).is_empty());
    }
}
