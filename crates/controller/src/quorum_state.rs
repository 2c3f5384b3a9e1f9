//! What this voter knows of the metadata quorum, in DescribeQuorum's terms (KIP-595): the
//! leader and its epoch, the high watermark, and each voter's progress.
//!
//! Raft's index is the metadata offset, so Kafka's exclusive offsets are index + 1: a log whose
//! last entry is at index 41 has log end offset 42, and the high watermark is one past the last
//! entry applied here. Replication progress (a voter's log end, when it last fetched and was
//! last caught up) is known only on the Raft leader; elsewhere those values are -1, Kafka's
//! "unknown". A follower knows its own log end.
//!
//! [`describe`] is pure (tests call it with made-up progress); [`QuorumView`] is the narrow
//! handle the broker holds, reading openraft's metrics (a `watch` borrow, no lock held across
//! an await) and [`PeerContacts`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::ServerState;

use crate::raft::network::PeerContacts;
use crate::raft::Raft;

/// One replica of the metadata log as DescribeQuorum reports it (-1: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaProgress {
    /// The node id.
    pub replica_id: i32,
    /// Its log end offset (exclusive).
    pub log_end_offset: i64,
    /// When it last fetched from the leader (ms since the Unix epoch).
    pub last_fetch_timestamp: i64,
    /// When it last had everything the leader had (ms since the Unix epoch).
    pub last_caught_up_timestamp: i64,
}

impl ReplicaProgress {
    /// A replica this node knows nothing about.
    pub fn unknown(replica_id: i32) -> ReplicaProgress {
        ReplicaProgress {
            replica_id,
            log_end_offset: -1,
            last_fetch_timestamp: -1,
            last_caught_up_timestamp: -1,
        }
    }
}

/// The quorum as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    /// The leader (active controller), or -1.
    pub leader_id: i32,
    /// The leader epoch: the controller epoch, the Raft term.
    pub leader_epoch: i32,
    /// One past the last entry applied here (-1: nothing yet).
    pub high_watermark: i64,
    /// The voters, in id order.
    pub voters: Vec<ReplicaProgress>,
    /// Raft learners (non-voting replicas), in id order.
    pub observers: Vec<ReplicaProgress>,
}

/// The Raft numbers [`describe`] needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftProgress {
    /// This node.
    pub node_id: u64,
    /// This node is the Raft leader.
    pub is_leader: bool,
    /// The leader this node knows of.
    pub current_leader: Option<u64>,
    /// The current term.
    pub term: u64,
    /// The index of the last entry in the local log.
    pub last_log_index: Option<u64>,
    /// The index of the last entry applied to the local state machine.
    pub last_applied: Option<u64>,
    /// Voter ids.
    pub voters: Vec<u64>,
    /// Learner ids.
    pub learners: Vec<u64>,
    /// On the leader: the index each replica is known to hold (its matched index).
    pub matched: Option<BTreeMap<u64, Option<u64>>>,
}

fn exclusive(index: Option<u64>) -> i64 {
    index.map_or(-1, |i| i as i64 + 1)
}

/// The quorum as `p` shows it at `now_ms`; `last_contact` says when a peer last answered the
/// leader.
pub fn describe(
    p: &RaftProgress,
    last_contact: impl Fn(u64) -> Option<i64>,
    now_ms: i64,
) -> QuorumState {
    let leader_end = exclusive(p.last_log_index);
    let replica = |id: u64| -> ReplicaProgress {
        let replica_id = id as i32;
        if id == p.node_id {
            let mut own = ReplicaProgress::unknown(replica_id);
            own.log_end_offset = leader_end;
            if p.is_leader {
                // Kafka's leader reports itself as fetching and caught up now.
                own.last_fetch_timestamp = now_ms;
                own.last_caught_up_timestamp = now_ms;
            }
            return own;
        }
        let Some(matched) = p.matched.as_ref().filter(|_| p.is_leader) else {
            return ReplicaProgress::unknown(replica_id);
        };
        let end = matched
            .get(&id)
            .copied()
            .flatten()
            .map_or(-1, |i| i as i64 + 1);
        let contact = last_contact(id).unwrap_or(-1);
        ReplicaProgress {
            replica_id,
            log_end_offset: end,
            last_fetch_timestamp: contact,
            // Its last answer came after it held everything the leader has now.
            last_caught_up_timestamp: if end >= 0 && end == leader_end {
                contact
            } else {
                -1
            },
        }
    };
    let mut voters: Vec<u64> = p.voters.clone();
    voters.sort_unstable();
    let mut learners: Vec<u64> = p.learners.clone();
    learners.sort_unstable();
    QuorumState {
        leader_id: p.current_leader.map_or(-1, |l| l as i32),
        leader_epoch: p.term as i32,
        high_watermark: exclusive(p.last_applied),
        voters: voters.into_iter().map(replica).collect(),
        observers: learners.into_iter().map(replica).collect(),
    }
}

/// A narrow handle on one voter's Raft state, for DescribeQuorum. Cheap to clone.
#[derive(Clone)]
pub struct QuorumView {
    raft: Raft,
    contacts: Arc<PeerContacts>,
    address: SocketAddr,
}

impl QuorumView {
    /// A view of `raft`, whose network records `contacts`, served on `address`.
    pub fn new(raft: Raft, contacts: Arc<PeerContacts>, address: SocketAddr) -> QuorumView {
        QuorumView {
            raft,
            contacts,
            address,
        }
    }

    /// The controller listener this voter is bound to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The quorum as this voter knows it now.
    pub fn describe(&self) -> QuorumState {
        let progress = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            RaftProgress {
                node_id: m.id,
                is_leader: m.state == ServerState::Leader,
                current_leader: m.current_leader,
                term: m.current_term,
                last_log_index: m.last_log_index,
                last_applied: m.last_applied.map(|l| l.index),
                voters: membership.voter_ids().collect(),
                learners: membership.learner_ids().collect(),
                matched: m.replication.as_ref().map(|r| {
                    r.iter()
                        .map(|(id, log)| (*id, log.map(|l| l.index)))
                        .collect()
                }),
            }
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        describe(&progress, |peer| self.contacts.last_contact(peer), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader() -> RaftProgress {
        RaftProgress {
            node_id: 2,
            is_leader: true,
            current_leader: Some(2),
            term: 7,
            last_log_index: Some(41),
            last_applied: Some(41),
            voters: vec![3, 1, 2],
            learners: vec![],
            matched: Some(BTreeMap::from([
                (1, Some(41)),
                (2, Some(41)),
                (3, Some(30)),
            ])),
        }
    }

    #[test]
    fn the_leader_reports_every_voters_progress() {
        let contacts = |peer| match peer {
            1 => Some(1_000),
            3 => Some(900),
            _ => None,
        };
        let q = describe(&leader(), contacts, 5_000);
        assert_eq!(q.leader_id, 2);
        assert_eq!(q.leader_epoch, 7);
        assert_eq!(q.high_watermark, 42);
        assert_eq!(
            q.voters,
            vec![
                ReplicaProgress {
                    replica_id: 1,
                    log_end_offset: 42,
                    last_fetch_timestamp: 1_000,
                    last_caught_up_timestamp: 1_000,
                },
                ReplicaProgress {
                    replica_id: 2,
                    log_end_offset: 42,
                    last_fetch_timestamp: 5_000,
                    last_caught_up_timestamp: 5_000,
                },
                ReplicaProgress {
                    replica_id: 3,
                    log_end_offset: 31,
                    last_fetch_timestamp: 900,
                    last_caught_up_timestamp: -1,
                },
            ]
        );
        assert!(q.observers.is_empty());
    }

    #[test]
    fn a_follower_knows_the_leader_and_its_own_log_end_only() {
        let p = RaftProgress {
            node_id: 1,
            is_leader: false,
            current_leader: Some(2),
            last_log_index: Some(40),
            last_applied: Some(39),
            matched: None,
            ..leader()
        };
        let q = describe(&p, |_| Some(1), 5_000);
        assert_eq!((q.leader_id, q.leader_epoch, q.high_watermark), (2, 7, 40));
        assert_eq!(
            q.voters[0],
            ReplicaProgress {
                replica_id: 1,
                log_end_offset: 41,
                last_fetch_timestamp: -1,
                last_caught_up_timestamp: -1,
            }
        );
        assert_eq!(q.voters[1], ReplicaProgress::unknown(2));
        assert_eq!(q.voters[2], ReplicaProgress::unknown(3));
    }

    #[test]
    fn nothing_known_yet() {
        let p = RaftProgress {
            node_id: 1,
            voters: vec![1],
            ..RaftProgress::default()
        };
        let q = describe(&p, |_| None, 5);
        assert_eq!((q.leader_id, q.leader_epoch, q.high_watermark), (-1, 0, -1));
        assert_eq!(q.voters, vec![ReplicaProgress::unknown(1)]);
    }
}
