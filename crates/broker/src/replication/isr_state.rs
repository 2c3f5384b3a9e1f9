//! [`IsrState`]: what a partition leader knows of its followers, and the rules built on it: the
//! high watermark, when a follower joins the ISR and when it leaves.
//!
//! Pure state, no I/O, so every rule is unit-tested. The [`crate::partition::Partition`] holds it
//! under a short mutex while it is the leader.
//!
//! The rules are Kafka's (`Partition.scala`, `Replica.scala`):
//! - a follower's log end offset is the offset it last fetched from;
//! - a follower is *caught up* at a fetch when it asked from the leader's log end, or from at
//!   least the leader's log end of its previous fetch (then it was caught up at that earlier
//!   moment); it leaves the ISR once it has not been caught up for `replica.lag.time.max.ms`;
//! - it joins the ISR when its log end reaches the high watermark and the start of the current
//!   leader epoch (so it holds everything the new leader may have to keep);
//! - the high watermark is the smallest log end over the ISR, counting ISR changes still in
//!   flight to the controller in the larger direction (a pending expansion includes the new
//!   member, a pending shrink still includes the leaving one), and never moves backwards.

use std::collections::BTreeMap;

use crate::metadata::PartitionImage;

/// A follower's progress as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The offset it last fetched from (-1 before its first fetch in this leader epoch).
    pub log_end_offset: i64,
    /// When it was last caught up with the leader's log end (ms).
    pub last_caught_up_ms: i64,
    /// The leader's log end at its previous fetch.
    last_fetch_leader_leo: i64,
    /// When it fetched last (ms).
    last_fetch_ms: i64,
}

impl FollowerProgress {
    fn new(last_caught_up_ms: i64) -> Self {
        FollowerProgress {
            log_end_offset: -1,
            last_caught_up_ms,
            last_fetch_leader_leo: -1,
            last_fetch_ms: -1,
        }
    }
}

/// An ISR change a leader proposes to the controller, with the leader and partition epochs it
/// is based on (the controller refuses it if either moved on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    /// The proposed ISR.
    pub isr: Vec<i32>,
    /// The leader epoch the leader acts under.
    pub leader_epoch: i32,
    /// The partition epoch of the committed state the change starts from.
    pub partition_epoch: i32,
}

/// A replica that asked to fetch is not one of the partition's replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("broker {0} is not a replica of this partition")]
pub struct NotAReplica(pub i32);

/// The leader's view of one partition's replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrState {
    leader: i32,
    /// The leader epoch this state belongs to.
    pub leader_epoch: i32,
    /// The partition epoch of the committed state.
    pub partition_epoch: i32,
    /// Assigned replicas (including any being added by a reassignment).
    pub replicas: Vec<i32>,
    /// The committed ISR.
    pub isr: Vec<i32>,
    /// An ISR proposed to the controller and not yet committed.
    pub pending: Option<Vec<i32>>,
    /// The leader's log end when it took this epoch: where this epoch's records start.
    pub epoch_start_offset: i64,
    followers: BTreeMap<i32, FollowerProgress>,
}

impl IsrState {
    /// The state of a new leader `leader` for `p`, whose log ends at `log_end_offset`. ISR
    /// members count as caught up now, so none is dropped before it had a chance to fetch.
    pub fn new(leader: i32, p: &PartitionImage, log_end_offset: i64, now_ms: i64) -> Self {
        let mut state = IsrState {
            leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending: None,
            epoch_start_offset: log_end_offset,
            followers: BTreeMap::new(),
        };
        state.update(p, now_ms);
        state
    }

    /// Takes a newer committed state of the partition under the same leader epoch (an ISR
    /// change, a reassignment). A pending change is settled by any new partition epoch.
    pub fn update(&mut self, p: &PartitionImage, now_ms: i64) {
        if p.partition_epoch == self.partition_epoch {
            return;
        }
        self.partition_epoch = p.partition_epoch;
        self.replicas = p.replicas.clone();
        self.isr = p.isr.clone();
        self.pending = None;
        let leader = self.leader;
        self.followers
            .retain(|id, _| p.replicas.contains(id) && *id != leader);
        for r in &p.replicas {
            if *r != leader {
                let caught_up = if p.isr.contains(r) { now_ms } else { -1 };
                self.followers
                    .entry(*r)
                    .or_insert_with(|| FollowerProgress::new(caught_up));
            }
        }
    }

    /// A follower's progress, if it is one.
    pub fn follower(&self, id: i32) -> Option<&FollowerProgress> {
        self.followers.get(&id)
    }

    /// Records a fetch by follower `replica` from `fetch_offset` at `now_ms`, when the leader's
    /// log ends at `leader_leo`.
    pub fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> Result<(), NotAReplica> {
        let f = self
            .followers
            .get_mut(&replica)
            .ok_or(NotAReplica(replica))?;
        if fetch_offset >= leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if f.last_fetch_leader_leo >= 0 && fetch_offset >= f.last_fetch_leader_leo {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_leo = leader_leo;
        f.last_fetch_ms = now_ms;
        Ok(())
    }

    /// The smallest log end over the maximal ISR: the committed one widened by a pending
    /// change (the leader's own log end is `leader_leo`). A member that has not fetched yet in
    /// this epoch holds it at -1. Runs on every append and follower fetch, so it allocates
    /// nothing: a member in both lists is simply counted twice.
    pub fn high_watermark_candidate(&self, leader_leo: i64) -> i64 {
        self.isr
            .iter()
            .chain(self.pending.iter().flatten())
            .map(|r| {
                if *r == self.leader {
                    leader_leo
                } else {
                    self.followers.get(r).map_or(-1, |f| f.log_end_offset)
                }
            })
            .min()
            .unwrap_or(leader_leo)
    }

    fn proposal(&self, isr: Vec<i32>) -> IsrProposal {
        IsrProposal {
            isr,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
        }
    }

    /// The ISR to propose if `replica` may join it now (high watermark `hw`), or `None`.
    pub fn expansion(&self, replica: i32, hw: i64) -> Option<IsrProposal> {
        if self.pending.is_some() || self.isr.contains(&replica) {
            return None;
        }
        let f = self.followers.get(&replica)?;
        if f.log_end_offset >= hw && f.log_end_offset >= self.epoch_start_offset {
            let mut isr = self.isr.clone();
            isr.push(replica);
            Some(self.proposal(isr))
        } else {
            None
        }
    }

    /// The ISR to propose without the followers not caught up for `lag_max_ms`, or `None`.
    pub fn shrink(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            *r != self.leader
                && self
                    .followers
                    .get(r)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
        };
        if !self.isr.iter().any(lagging) {
            return None;
        }
        Some(self.proposal(self.isr.iter().copied().filter(|r| !lagging(r)).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(isr: &[i32], partition_epoch: i32) -> PartitionImage {
        PartitionImage {
            index: 0,
            leader: 1,
            leader_epoch: 5,
            partition_epoch,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            ..PartitionImage::default()
        }
    }

    #[test]
    fn high_watermark_is_the_smallest_isr_log_end_and_waits_for_first_fetches() {
        let mut s = IsrState::new(1, &image(&[1, 2, 3], 0), 100, 0);
        assert_eq!(
            s.high_watermark_candidate(100),
            -1,
            "followers not heard from"
        );
        s.record_fetch(2, 100, 100, 10).unwrap();
        s.record_fetch(3, 90, 100, 10).unwrap();
        assert_eq!(s.high_watermark_candidate(120), 90);
        // A follower outside the ISR does not hold it back.
        s.update(&image(&[1, 2], 1), 20);
        assert_eq!(s.high_watermark_candidate(120), 100);
        assert_eq!(s.record_fetch(9, 0, 0, 0), Err(NotAReplica(9)));
    }

    #[test]
    fn a_pending_change_counts_in_the_larger_direction() {
        let mut s = IsrState::new(1, &image(&[1, 2], 0), 100, 0);
        s.record_fetch(2, 100, 100, 1).unwrap();
        s.record_fetch(3, 80, 100, 1).unwrap();
        s.pending = Some(vec![1, 2, 3]);
        assert_eq!(s.high_watermark_candidate(100), 80);
        s.pending = Some(vec![1]);
        assert_eq!(s.high_watermark_candidate(100), 100);
    }

    #[test]
    fn a_follower_joins_once_at_the_high_watermark_and_the_epoch_start() {
        let mut s = IsrState::new(1, &image(&[1, 2], 0), 50, 0);
        s.record_fetch(3, 40, 60, 1).unwrap();
        assert_eq!(s.expansion(3, 40), None, "below the epoch start offset");
        s.record_fetch(3, 55, 60, 2).unwrap();
        assert_eq!(s.expansion(3, 58), None, "below the high watermark");
        assert_eq!(s.expansion(3, 55).map(|p| p.isr), Some(vec![1, 2, 3]));
        s.pending = Some(vec![1, 2, 3]);
        assert_eq!(s.expansion(3, 55), None, "one change in flight at a time");
        assert_eq!(s.expansion(2, 0), None, "already in the ISR");
    }

    #[test]
    fn a_follower_that_stops_catching_up_leaves_after_the_lag_time() {
        let mut s = IsrState::new(1, &image(&[1, 2, 3], 0), 100, 1_000);
        // Follower 2 keeps up; 3 fetches but stays behind the moving log end.
        for t in [1_100, 1_200, 1_300] {
            let leo = t / 10;
            s.record_fetch(2, leo, leo, t).unwrap();
            s.record_fetch(3, 50, leo, t).unwrap();
        }
        assert_eq!(s.shrink(1_300, 30_000), None);
        assert_eq!(s.shrink(31_001, 30_000).map(|p| p.isr), Some(vec![1, 2]));
        // Reaching the previous fetch's log end counts as caught up at that fetch.
        s.record_fetch(3, 130, 140, 31_100).unwrap();
        assert_eq!(s.follower(3).map(|f| f.last_caught_up_ms), Some(1_300));
        s.record_fetch(3, 140, 150, 31_200).unwrap();
        assert_eq!(s.follower(3).map(|f| f.last_caught_up_ms), Some(31_100));
    }

    #[test]
    fn a_new_partition_epoch_settles_the_pending_change_and_tracks_new_replicas() {
        let mut s = IsrState::new(1, &image(&[1, 2, 3], 0), 0, 0);
        s.pending = Some(vec![1, 2]);
        let mut next = image(&[1, 2], 1);
        next.replicas = vec![1, 2, 4];
        s.update(&next, 5);
        assert_eq!(s.pending, None);
        assert!(s.follower(3).is_none());
        assert_eq!(s.follower(4).map(|f| f.log_end_offset), Some(-1));
    }
}
