//! [`Group`]: one classic consumer group as its coordinator holds it: state, generation,
//! members, the chosen protocol and leader, and the group's committed offsets.
//!
//! The rules here are pure (no I/O, no clock of their own): which protocol the members agree
//! on, whether a joining member's protocols fit the group, whether every member has rejoined,
//! when a member is still alive, and the conversion to and from the `GroupMetadataValue`
//! record the coordinator writes to `__consumer_offsets`. The coordinator's shard task
//! ([`super::shard`]) drives the state changes.
//!
//! ```text
//!            join                all joined / timeout        leader's SyncGroup written
//!   Empty ---------> PreparingRebalance -------------> CompletingRebalance ---------> Stable
//!     ^                  ^   |  no member left                 |  member joins/leaves  |
//!     |                  |   +--> Empty                        v                       |
//!     |                  +---------------------------------------------------------------+
//!   Dead: deleted (DeleteGroups) or unloaded; never served again
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use rivulet_protocol::group_records::{GroupMetadataValue, MemberMetadata};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::api::{JoinResponse, SyncResponse};

/// How long a new member (one that has never completed a join) may wait in a rebalance
/// before it is dropped (Kafka's `GroupCoordinator.NewMemberJoinTimeoutMs`, KIP-394).
pub const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Kafka's group states, with the names DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Waiting for the members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted or unloaded.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A committed offset (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset the consumer will read next.
    pub offset: i64,
    /// The leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_timestamp: i64,
    /// Where its record sits in `__consumer_offsets`: a later write of the same key wins even
    /// if replication completes in another order.
    pub log_offset: i64,
}

/// One member of a group.
#[derive(Debug)]
pub struct Member {
    /// Id the coordinator gave it.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The client's `client.id`.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `rebalance.timeout.ms` (`max.poll.interval.ms` of the Java client).
    pub rebalance_timeout_ms: i32,
    /// The protocols it supports, in its order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// Its assignment in the current generation.
    pub assignment: Bytes,
    /// The session expires at this instant unless it heartbeats.
    pub session_deadline: Instant,
    /// When it first joined (a new member waits at most [`NEW_MEMBER_JOIN_TIMEOUT`]).
    pub joined_at: Instant,
    /// It has never completed a join.
    pub is_new: bool,
    /// Its JoinGroup, parked until the rebalance completes.
    pub awaiting_join: Option<oneshot::Sender<JoinResponse>>,
    /// Its SyncGroup, parked until the leader's assignment is written.
    pub awaiting_sync: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    /// The metadata it gave for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m)
    }

    /// Whether the session is still alive at `now`: a member parked in JoinGroup or SyncGroup
    /// is (a new one for at most [`NEW_MEMBER_JOIN_TIMEOUT`]); otherwise its heartbeats keep
    /// it (Kafka's `MemberMetadata.shouldKeepAlive`).
    pub fn is_alive(&self, now: Instant) -> bool {
        if self.awaiting_join.is_some() {
            !self.is_new || now < self.joined_at + NEW_MEMBER_JOIN_TIMEOUT
        } else if self.awaiting_sync.is_some() {
            true
        } else {
            now < self.session_deadline
        }
    }

    /// Extends the session from `now`.
    pub fn touch(&mut self, now: Instant) {
        self.session_deadline = now + Duration::from_millis(self.session_timeout_ms.max(0) as u64);
    }

    /// Whether `protocols` are exactly those it already has.
    pub fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A rebalance's join phase in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinPhase {
    /// Identifies this join phase, so a stale timer is ignored.
    pub id: u64,
    /// The initial delay of a new group is still running: the phase waits for it even when
    /// every member has joined.
    pub initial_delay: bool,
    /// Rebalance time left after the current initial delay (ms).
    pub initial_remaining_ms: u64,
    /// A member joined during the current initial delay.
    pub new_member_added: bool,
}

/// A classic group.
#[derive(Debug)]
pub struct Group {
    /// The group id.
    pub id: String,
    /// Current state.
    pub state: GroupState,
    /// When the state last changed (ms since the epoch).
    pub state_timestamp: i64,
    /// Generation: incremented by every completed join phase.
    pub generation: i32,
    /// `consumer`, `connect`, ...; none for a group that only holds offsets.
    pub protocol_type: Option<String>,
    /// The protocol (assignor) chosen for this generation.
    pub protocol: Option<String>,
    /// The member that computes the assignment.
    pub leader: Option<String>,
    /// Members by id (ordered, so the first joiner is a stable choice of leader).
    pub members: BTreeMap<String, Member>,
    /// Static members: `group.instance.id` -> member id.
    pub static_members: HashMap<String, String>,
    /// Ids handed out with MEMBER_ID_REQUIRED whose second JoinGroup has not come yet, with
    /// the deadline of that wait.
    pub pending_members: HashMap<String, Instant>,
    /// Members expected to send SyncGroup in this generation.
    pub pending_sync: HashSet<String>,
    /// The join phase in progress (state PreparingRebalance).
    pub join: Option<JoinPhase>,
    /// Committed offsets by (topic, partition).
    pub offsets: HashMap<(String, i32), CommittedOffset>,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: String, now_ms: i64) -> Self {
        Group {
            id,
            state: GroupState::Empty,
            state_timestamp: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join: None,
            offsets: HashMap::new(),
        }
    }

    /// Moves to `state` at `now_ms`.
    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_timestamp = now_ms;
    }

    /// Whether `state` is one of `states`.
    pub fn is_in(&self, states: &[GroupState]) -> bool {
        states.contains(&self.state)
    }

    /// The protocols every member supports.
    pub fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut candidates: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            candidates.retain(|c| m.metadata(c).is_some());
        }
        candidates
    }

    /// Whether a member offering `protocols` of `protocol_type` may join: a group with members
    /// needs the same protocol type and at least one protocol in common with all of them
    /// (else INCONSISTENT_GROUP_PROTOCOL).
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidate_protocols()
                .iter()
                .any(|c| protocols.iter().any(|(n, _)| n == c))
    }

    /// The protocol the members agree on: each votes for the first of its preferences that
    /// every member supports; most votes wins, ties going to the earlier candidate.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<usize> = vec![0; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|(n, _)| candidates.iter().position(|c| c == n))
            {
                votes[i] += 1;
            }
        }
        let best = votes.iter().copied().max()?;
        let i = votes.iter().position(|v| *v == best)?;
        candidates.get(i).cloned()
    }

    /// Every member has sent its JoinGroup for this rebalance and no MEMBER_ID_REQUIRED
    /// member is still expected.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// The longest rebalance timeout of the members: how long a join phase waits.
    pub fn max_rebalance_timeout(&self) -> Duration {
        let ms = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max()
            .unwrap_or(0);
        Duration::from_millis(ms as u64)
    }

    /// The member id `instance` maps to, when it is a known static member.
    pub fn static_member(&self, instance: &str) -> Option<&str> {
        self.static_members.get(instance).map(String::as_str)
    }

    /// Checks the `group.instance.id` a request names against `member_id`: FENCED_INSTANCE_ID
    /// when the instance belongs to another member id (Kafka's `isStaticMemberFenced`).
    pub fn is_fenced(&self, instance: Option<&str>, member_id: &str) -> bool {
        match instance.and_then(|i| self.static_member(i)) {
            Some(current) => current != member_id,
            None => false,
        }
    }

    /// Removes a member and its static mapping; returns it.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_member(instance) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// The topics the members subscribe to, when this is a `consumer` group whose members'
    /// subscriptions all parse; `None` when that cannot be told (OffsetDelete then refuses to
    /// delete offsets of any topic while the group has members, as Kafka does).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(m.metadata(protocol)?)?);
        }
        Some(topics)
    }

    /// The record of this group for `__consumer_offsets`, with `assignments` overriding the
    /// members' current ones (the leader's SyncGroup is written before it takes effect).
    pub fn to_record(&self, assignments: Option<&HashMap<String, Bytes>>) -> GroupMetadataValue {
        let protocol = self.protocol.clone();
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberMetadata {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout_ms,
                    session_timeout: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .and_then(|p| m.metadata(p))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: assignments
                        .and_then(|a| a.get(&m.member_id))
                        .cloned()
                        .unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }

    /// Replaces the membership with a loaded record: a group with members is Stable, each
    /// member's session starting at `now`; offsets are kept.
    pub fn load_record(&mut self, record: GroupMetadataValue, now: Instant) {
        self.generation = record.generation;
        self.protocol_type = (!record.protocol_type.is_empty()).then_some(record.protocol_type);
        self.protocol = record.protocol;
        self.leader = record.leader;
        self.state_timestamp = record.current_state_timestamp;
        self.members.clear();
        self.static_members.clear();
        self.pending_members.clear();
        self.pending_sync.clear();
        self.join = None;
        for m in record.members {
            let protocols = match &self.protocol {
                Some(p) => vec![(p.clone(), m.subscription)],
                None => Vec::new(),
            };
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let mut member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout,
                rebalance_timeout_ms: m.rebalance_timeout,
                protocols,
                assignment: m.assignment,
                session_deadline: now,
                joined_at: now,
                is_new: false,
                awaiting_join: None,
                awaiting_sync: None,
            };
            member.touch(now);
            self.members.insert(m.member_id, member);
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }
}

/// The topics of a `ConsumerProtocolSubscription` (any version: they all start with the
/// version and the topic array), read without trusting its counts.
pub fn subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata;
    let take = |buf: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if buf.len() < n {
            return None;
        }
        let (head, tail) = buf.split_at(n);
        *buf = tail;
        Some(head.to_vec())
    };
    let version = take(&mut buf, 2)?;
    if i16::from_be_bytes([version[0], version[1]]) < 0 {
        return None;
    }
    let count = take(&mut buf, 4)?;
    let count = i32::from_be_bytes([count[0], count[1], count[2], count[3]]);
    if count < 0 || count as usize > buf.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = take(&mut buf, 2)?;
        let len = i16::from_be_bytes([len[0], len[1]]);
        let name = take(&mut buf, usize::try_from(len).ok()?)?;
        topics.push(String::from_utf8(name).ok()?);
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        let now = Instant::now();
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"m")))
                .collect(),
            assignment: Bytes::new(),
            session_deadline: now + Duration::from_secs(10),
            joined_at: now,
            is_new: true,
            awaiting_join: None,
            awaiting_sync: None,
        }
    }

    fn group(members: Vec<Member>) -> Group {
        let mut g = Group::new("g".into(), 0);
        g.protocol_type = Some("consumer".into());
        for m in members {
            g.members.insert(m.member_id.clone(), m);
        }
        g
    }

    #[test]
    fn the_protocol_all_members_support_with_most_first_choices_wins() {
        let g = group(vec![
            member("a", &["range", "roundrobin"]),
            member("b", &["roundrobin", "range"]),
            member("c", &["roundrobin", "sticky", "range"]),
        ]);
        assert_eq!(g.candidate_protocols(), vec!["range", "roundrobin"]);
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
    }

    #[test]
    fn a_joiner_needs_the_same_type_and_a_common_protocol() {
        let g = group(vec![member("a", &["range", "roundrobin"])]);
        let p = |names: &[&str]| -> Vec<(String, Bytes)> {
            names
                .iter()
                .map(|n| (n.to_string(), Bytes::new()))
                .collect()
        };
        assert!(g.supports_protocols("consumer", &p(&["roundrobin"])));
        assert!(!g.supports_protocols("consumer", &p(&["cooperative-sticky"])));
        assert!(!g.supports_protocols("connect", &p(&["range"])));
        assert!(!g.supports_protocols("", &p(&["range"])));
        assert!(Group::new("e".into(), 0).supports_protocols("connect", &p(&["x"])));
        assert!(!Group::new("e".into(), 0).supports_protocols("consumer", &[]));
    }

    #[test]
    fn removing_the_leader_picks_another_and_drops_the_static_mapping() {
        let mut a = member("a", &["range"]);
        a.group_instance_id = Some("i-a".into());
        let mut g = group(vec![a, member("b", &["range"])]);
        g.static_members.insert("i-a".into(), "a".into());
        g.leader = Some("a".into());
        assert!(g.is_fenced(Some("i-a"), "x"));
        assert!(!g.is_fenced(Some("i-a"), "a"));
        assert!(!g.is_fenced(Some("unknown"), "x"));
        g.remove_member("a");
        assert_eq!(g.leader.as_deref(), Some("b"));
        assert!(g.static_members.is_empty());
    }

    #[test]
    fn a_member_parked_in_join_or_sync_stays_alive() {
        let now = Instant::now();
        let mut m = member("a", &["range"]);
        m.session_deadline = now;
        m.joined_at = now;
        assert!(!m.is_alive(now));
        let (tx, _rx) = oneshot::channel();
        m.awaiting_sync = Some(tx);
        assert!(m.is_alive(now));
        m.awaiting_sync = None;
        let (tx, _rx) = oneshot::channel();
        m.awaiting_join = Some(tx);
        assert!(m.is_alive(now));
        assert!(!m.is_alive(now + NEW_MEMBER_JOIN_TIMEOUT));
        m.is_new = false;
        assert!(m.is_alive(now + NEW_MEMBER_JOIN_TIMEOUT));
    }

    #[test]
    fn a_record_round_trip_restores_a_stable_group() {
        let mut g = group(vec![member("a", &["range"]), member("b", &["range"])]);
        g.generation = 4;
        g.protocol = Some("range".into());
        g.leader = Some("a".into());
        let mut assignments = HashMap::new();
        assignments.insert("b".to_string(), Bytes::from_static(b"assigned"));
        let record = g.to_record(Some(&assignments));
        let mut loaded = Group::new("g".into(), 0);
        loaded.load_record(record, Instant::now());
        assert_eq!(loaded.state, GroupState::Stable);
        assert_eq!(loaded.generation, 4);
        assert_eq!(loaded.leader.as_deref(), Some("a"));
        assert_eq!(
            loaded.members["b"].assignment,
            Bytes::from_static(b"assigned")
        );
        assert_eq!(
            loaded.members["a"].metadata("range"),
            Some(&Bytes::from_static(b"m"))
        );
    }

    #[test]
    fn subscriptions_parse_without_trusting_counts() {
        let mut buf = vec![0, 1, 0, 0, 0, 2];
        for t in ["orders", "users"] {
            buf.extend_from_slice(&(t.len() as i16).to_be_bytes());
            buf.extend_from_slice(t.as_bytes());
        }
        buf.extend_from_slice(&[0, 0, 0, 0]); // user data and the rest: ignored
        assert_eq!(
            subscription_topics(&buf),
            Some(vec!["orders".to_string(), "users".to_string()])
        );
        assert_eq!(subscription_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
        for cut in 0..buf.len() - 4 {
            if cut != 6 + 8 + 7 {
                assert!(subscription_topics(&buf[..cut]).is_none_or(|t| t.len() < 2));
            }
        }
    }
}
