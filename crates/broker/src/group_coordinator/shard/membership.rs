//! The classic group protocol on a shard: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the
//! rebalance they drive, the timers that bound it, DescribeGroups and ListGroups. The rules
//! and error codes follow Kafka's (classic) `GroupCoordinator`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use rivulet_protocol::group_records::MAX_STRING_BYTES;
use rivulet_protocol::kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{AfterWrite, Shard, Timer};
use crate::group_coordinator::api::*;
use crate::group_coordinator::group::{Group, GroupState, JoinPhase, Member};
use crate::group_coordinator::records;
use crate::now_ms;

impl Shard {
    pub(super) async fn join(
        &mut self,
        req: JoinRequest,
        reply: oneshot::Sender<JoinResponse>,
        now: Instant,
    ) {
        let fail = |reply: oneshot::Sender<JoinResponse>, e: ResponseError, id: &str| {
            let _ = reply.send(JoinResponse::error(e, id));
        };
        if req.group_id.is_empty() {
            return fail(reply, ResponseError::InvalidGroupId, &req.member_id);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return fail(reply, ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        // Every string stored in the group's record must fit an int16 length.
        let too_long = |s: &str| s.len() > MAX_STRING_BYTES;
        if too_long(&req.protocol_type)
            || req.protocols.iter().any(|(n, _)| too_long(n))
            || req.group_instance_id.as_deref().is_some_and(too_long)
            || too_long(&req.member_id)
        {
            return fail(reply, ResponseError::InvalidRequest, &req.member_id);
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return fail(reply, ResponseError::UnknownMemberId, &req.member_id);
            }
            self.groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms()),
            );
        }
        let Some(group) = self.groups.get(&req.group_id) else {
            return fail(reply, ResponseError::UnknownMemberId, &req.member_id);
        };
        if group.state == GroupState::Dead {
            return fail(
                reply,
                ResponseError::CoordinatorNotAvailable,
                &req.member_id,
            );
        }
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return fail(
                reply,
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            );
        }
        let known = !req.member_id.is_empty()
            && (group.members.contains_key(&req.member_id)
                || group.pending_members.contains_key(&req.member_id));
        let full = group.members.len() >= self.config.max_size.max(0) as usize;
        if full && !known {
            return fail(reply, ResponseError::GroupMaxSizeReached, &req.member_id);
        }
        if req.member_id.is_empty() {
            self.join_unknown_member(req, reply, now).await
        } else {
            self.join_known_member(req, reply, now).await
        }
    }

    async fn join_unknown_member(
        &mut self,
        req: JoinRequest,
        reply: oneshot::Sender<JoinResponse>,
        now: Instant,
    ) {
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let new_id = format!(
            "{}-{}",
            truncate(prefix, MEMBER_ID_PREFIX_MAX),
            uuid::Uuid::new_v4()
        );
        let group_id = req.group_id.clone();
        if let Some(instance) = req.group_instance_id.clone() {
            let old_id = self
                .groups
                .get(&group_id)
                .and_then(|g| g.static_member(&instance))
                .map(str::to_owned);
            if let Some(old_id) = old_id {
                return self
                    .rejoin_static_member(req, reply, old_id, new_id, now)
                    .await;
            }
        } else if req.require_known_member_id {
            // KIP-394: hand out an id; the member is counted once it joins with it.
            let Some(group) = self.groups.get_mut(&group_id) else {
                return;
            };
            let deadline = now + session(req.session_timeout_ms);
            group.pending_members.insert(new_id.clone(), deadline);
            self.schedule(
                Timer::Pending {
                    group: group_id,
                    member: new_id.clone(),
                },
                session(req.session_timeout_ms),
            );
            let _ = reply.send(JoinResponse::error(
                ResponseError::MemberIdRequired,
                &new_id,
            ));
            return;
        }
        Box::pin(self.add_member_and_rebalance(req, new_id, reply, now)).await;
    }

    /// A static member rejoins with a new id (KIP-345): the old id is fenced; in a stable
    /// group whose protocol does not change it gets its assignment back without a rebalance.
    async fn rejoin_static_member(
        &mut self,
        req: JoinRequest,
        reply: oneshot::Sender<JoinResponse>,
        old_id: String,
        new_id: String,
        now: Instant,
    ) {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let Some(mut member) = group.members.remove(&old_id) else {
            return;
        };
        if let Some(parked) = member.awaiting_join.take() {
            let _ = parked.send(JoinResponse::error(
                ResponseError::FencedInstanceId,
                &old_id,
            ));
        }
        if let Some(parked) = member.awaiting_sync.take() {
            let _ = parked.send(SyncResponse::error(ResponseError::FencedInstanceId));
        }
        member.protocols = req.protocols.clone();
        member.member_id = new_id.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.touch(now);
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), new_id.clone());
        }
        if group.pending_sync.remove(&old_id) {
            group.pending_sync.insert(new_id.clone());
        }
        if group.leader.as_deref() == Some(old_id.as_str()) {
            group.leader = Some(new_id.clone());
        }
        let session_timeout = session(member.session_timeout_ms);
        group.members.insert(new_id.clone(), member);
        self.schedule(
            Timer::Session {
                group: req.group_id.clone(),
                member: new_id.clone(),
            },
            session_timeout,
        );
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        match group.state {
            GroupState::Stable if group.select_protocol() == group.protocol => {
                let is_leader = group.leader.as_deref() == Some(new_id.as_str());
                let response = JoinResponse {
                    error: None,
                    generation_id: group.generation,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol.clone(),
                    leader: group.leader.clone().unwrap_or_default(),
                    skip_assignment: is_leader,
                    member_id: new_id,
                    members: if is_leader {
                        joined_members(group)
                    } else {
                        Vec::new()
                    },
                };
                let record = records::group_metadata(&group.id, &group.to_record(None));
                self.write(vec![record], AfterWrite::StaticRejoin { reply, response })
                    .await;
            }
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                // The protocol would change, or the group is mid-rebalance: rebalance with
                // the member's new metadata.
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.awaiting_join = Some(reply);
                }
                self.prepare_rebalance(&req.group_id, "static member rejoined");
                self.maybe_complete_join(&req.group_id, now).await;
            }
            GroupState::PreparingRebalance => {
                if let Some(m) = group.members.get_mut(&new_id) {
                    m.awaiting_join = Some(reply);
                }
                self.maybe_complete_join(&req.group_id, now).await;
            }
            GroupState::Dead => {
                let _ = reply.send(JoinResponse::error(
                    ResponseError::CoordinatorNotAvailable,
                    &new_id,
                ));
            }
        }
    }

    async fn add_member_and_rebalance(
        &mut self,
        req: JoinRequest,
        member_id: String,
        reply: oneshot::Sender<JoinResponse>,
        now: Instant,
    ) {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        let mut member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            protocols: req.protocols,
            assignment: Bytes::new(),
            session_deadline: now,
            joined_at: now,
            is_new: true,
            awaiting_join: Some(reply),
            awaiting_sync: None,
        };
        member.touch(now);
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type);
        }
        if group.leader.is_none() {
            group.leader = Some(member_id.clone());
        }
        let timeout = session(member.session_timeout_ms);
        group.members.insert(member_id.clone(), member);
        let state = group.state;
        if let Some(j) = group.join.as_mut() {
            j.new_member_added = true;
        }
        self.schedule(
            Timer::Session {
                group: req.group_id.clone(),
                member: member_id,
            },
            timeout,
        );
        if state != GroupState::PreparingRebalance {
            self.prepare_rebalance(&req.group_id, "member joined");
        }
        // A new member in a rebalance that waits for nobody else completes it.
        self.maybe_complete_join(&req.group_id, now).await;
    }

    async fn join_known_member(
        &mut self,
        req: JoinRequest,
        reply: oneshot::Sender<JoinResponse>,
        now: Instant,
    ) {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return;
        };
        if group.pending_members.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return Box::pin(self.add_member_and_rebalance(req, id, reply, now)).await;
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            let _ = reply.send(JoinResponse::error(
                ResponseError::FencedInstanceId,
                &req.member_id,
            ));
            return;
        }
        let state = group.state;
        let Some(member) = group.members.get_mut(&req.member_id) else {
            let _ = reply.send(JoinResponse::error(
                ResponseError::UnknownMemberId,
                &req.member_id,
            ));
            return;
        };
        member.touch(now);
        let unchanged = member.same_protocols(&req.protocols);
        let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
        match state {
            GroupState::PreparingRebalance => {
                update_member(member, &req, reply);
                self.maybe_complete_join(&req.group_id, now).await;
            }
            GroupState::CompletingRebalance if unchanged => {
                // A retried JoinGroup whose response was lost: answer with the generation.
                let _ = reply.send(join_response(group, &req.member_id));
            }
            GroupState::Stable if unchanged && !is_leader => {
                let _ = reply.send(join_response(group, &req.member_id));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member(member, &req, reply);
                self.prepare_rebalance(&req.group_id, "member changed its protocols");
                self.maybe_complete_join(&req.group_id, now).await;
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(JoinResponse::error(
                    ResponseError::UnknownMemberId,
                    &req.member_id,
                ));
            }
        }
    }

    /// Starts a join phase: members must rejoin within the longest rebalance timeout; a new
    /// group first waits `group.initial.rebalance.delay.ms` for more members. Callers then
    /// call [`Shard::maybe_complete_join`], as Kafka's `tryCompleteElseWatch`: a phase that
    /// waits for nobody (the only member rejoined, or the last one left) completes at once.
    pub(super) fn prepare_rebalance(&mut self, group_id: &str, reason: &str) {
        let initial_delay = self.config.initial_rebalance_delay_ms.max(0) as u64;
        self.next_phase += 1;
        let phase_id = self.next_phase;
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state == GroupState::CompletingRebalance {
            // The assignment being made is void: parked SyncGroups learn it now.
            for m in group.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(parked) = m.awaiting_sync.take() {
                    let _ = parked.send(SyncResponse::error(ResponseError::RebalanceInProgress));
                }
            }
            group.pending_sync.clear();
        }
        let rebalance_ms = group.max_rebalance_timeout().as_millis() as u64;
        let (phase, delay) = if group.state == GroupState::Empty && initial_delay > 0 {
            let first = initial_delay.min(rebalance_ms);
            (
                JoinPhase {
                    id: phase_id,
                    initial_delay: true,
                    initial_remaining_ms: rebalance_ms.saturating_sub(first),
                    new_member_added: false,
                },
                first,
            )
        } else {
            (
                JoinPhase {
                    id: phase_id,
                    initial_delay: false,
                    initial_remaining_ms: 0,
                    new_member_added: false,
                },
                rebalance_ms,
            )
        };
        tracing::info!(
            group = %group.id,
            generation = group.generation,
            members = group.members.len(),
            reason,
            "preparing to rebalance"
        );
        group.join = Some(phase);
        group.transition(GroupState::PreparingRebalance, now_ms());
        self.schedule(
            Timer::Join {
                group: group_id.to_owned(),
                phase: phase_id,
            },
            Duration::from_millis(delay),
        );
    }

    /// Completes the join phase if every member has rejoined (not during an initial delay).
    pub(super) async fn maybe_complete_join(&mut self, group_id: &str, now: Instant) {
        let ready = self.groups.get(group_id).is_some_and(|g| {
            g.state == GroupState::PreparingRebalance
                && g.all_members_joined()
                && g.join.is_some_and(|j| !j.initial_delay)
        });
        if ready {
            self.complete_join(group_id, now).await;
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the generation advances,
    /// and every parked JoinGroup is answered (the leader with all members' metadata).
    pub(super) async fn complete_join(&mut self, group_id: &str, now: Instant) {
        if let Some(record) = self.finish_join(group_id, now) {
            self.write(vec![record], AfterWrite::Nothing).await;
        }
    }

    /// The state change of [`Shard::complete_join`]; returns the group record to write when
    /// the group ends up Empty.
    fn finish_join(&mut self, group_id: &str, now: Instant) -> Option<records::KeyValue> {
        let group = self.groups.get_mut(group_id)?;
        if group.state != GroupState::PreparingRebalance {
            return None;
        }
        group.join = None;
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %group.id, member = %id, "member did not rejoin in time; removed");
            group.remove_member(id);
        }
        group.pending_members.clear();
        group.generation += 1;
        if group.members.is_empty() {
            group.protocol = None;
            group.leader = None;
            group.transition(GroupState::Empty, now_ms());
            tracing::info!(group = %group.id, generation = group.generation, "group is empty");
            return Some(records::group_metadata(&group.id, &group.to_record(None)));
        }
        group.protocol = group.select_protocol();
        if !group
            .leader
            .as_ref()
            .is_some_and(|l| group.members.contains_key(l))
        {
            group.leader = group.members.keys().next().cloned();
        }
        group.transition(GroupState::CompletingRebalance, now_ms());
        group.pending_sync = group.members.keys().cloned().collect();
        tracing::info!(
            group = %group.id,
            generation = group.generation,
            protocol = group.protocol.as_deref().unwrap_or(""),
            members = group.members.len(),
            "join phase complete; awaiting the leader's assignment"
        );
        let leader = group.leader.clone().unwrap_or_default();
        let all = joined_members(group);
        let generation = group.generation;
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol.clone();
        let sync_timeout = group.max_rebalance_timeout();
        for m in group.members.values_mut() {
            m.is_new = false;
            m.touch(now);
            if let Some(parked) = m.awaiting_join.take() {
                let _ = parked.send(JoinResponse {
                    error: None,
                    generation_id: generation,
                    protocol_type: protocol_type.clone(),
                    protocol_name: protocol_name.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: m.member_id.clone(),
                    members: if m.member_id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        self.schedule(
            Timer::Sync {
                group: group_id.to_owned(),
                generation,
            },
            sync_timeout,
        );
        None
    }

    pub(super) async fn sync(
        &mut self,
        req: SyncRequest,
        reply: oneshot::Sender<SyncResponse>,
        now: Instant,
    ) {
        let fail = |reply: oneshot::Sender<SyncResponse>, e| {
            let _ = reply.send(SyncResponse::error(e));
        };
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return fail(reply, ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return fail(reply, ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return fail(reply, ResponseError::FencedInstanceId);
        }
        if !group.members.contains_key(&req.member_id) {
            return fail(reply, ResponseError::UnknownMemberId);
        }
        if req.generation_id != group.generation {
            return fail(reply, ResponseError::IllegalGeneration);
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != group.protocol_type.as_ref());
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != group.protocol.as_ref());
        if type_mismatch || name_mismatch {
            return fail(reply, ResponseError::InconsistentGroupProtocol);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(reply, ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(reply, ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let protocol_type = group.protocol_type.clone();
                let protocol_name = group.protocol.clone();
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.touch(now);
                    let _ = reply.send(SyncResponse {
                        error: None,
                        protocol_type,
                        protocol_name,
                        assignment: m.assignment.clone(),
                    });
                }
            }
            GroupState::CompletingRebalance => {
                group.pending_sync.remove(&req.member_id);
                let is_leader = group.leader.as_deref() == Some(req.member_id.as_str());
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.touch(now);
                    m.awaiting_sync = Some(reply);
                }
                if is_leader {
                    let mut assignments: HashMap<String, Bytes> = req
                        .assignments
                        .into_iter()
                        .filter(|(id, _)| group.members.contains_key(id))
                        .collect();
                    for id in group.members.keys() {
                        assignments.entry(id.clone()).or_default();
                    }
                    let record =
                        records::group_metadata(&group.id, &group.to_record(Some(&assignments)));
                    let generation = group.generation;
                    self.write(
                        vec![record],
                        AfterWrite::Sync {
                            group: req.group_id,
                            generation,
                            assignments,
                        },
                    )
                    .await;
                }
            }
        }
    }

    /// The leader's assignment is stored (or could not be): the group becomes Stable and the
    /// parked SyncGroups get their assignments, or they get the error and the group
    /// rebalances.
    pub(super) async fn on_sync_written(
        &mut self,
        group_id: &str,
        generation: i32,
        mut assignments: HashMap<String, Bytes>,
        result: Result<(), ResponseError>,
    ) {
        let Some(group) = self.groups.get_mut(group_id) else {
            return;
        };
        if group.state != GroupState::CompletingRebalance || group.generation != generation {
            return;
        }
        match result {
            Ok(()) => {
                let protocol_type = group.protocol_type.clone();
                let protocol_name = group.protocol.clone();
                for m in group.members.values_mut() {
                    m.assignment = assignments.remove(&m.member_id).unwrap_or_default();
                    if let Some(parked) = m.awaiting_sync.take() {
                        let _ = parked.send(SyncResponse {
                            error: None,
                            protocol_type: protocol_type.clone(),
                            protocol_name: protocol_name.clone(),
                            assignment: m.assignment.clone(),
                        });
                    }
                }
                group.transition(GroupState::Stable, now_ms());
                tracing::info!(group = %group.id, generation, "group is stable");
            }
            Err(e) => {
                for m in group.members.values_mut() {
                    m.assignment = Bytes::new();
                    if let Some(parked) = m.awaiting_sync.take() {
                        let _ = parked.send(SyncResponse::error(e));
                    }
                }
                group.pending_sync.clear();
                // Not from CompletingRebalance: the parked syncs are answered already.
                group.transition(GroupState::Stable, now_ms());
                self.prepare_rebalance(group_id, "the assignment could not be stored");
            }
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        now: Instant,
    ) -> Option<ResponseError> {
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        let state = group.state;
        let generation = group.generation;
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        match state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            _ if req.generation_id != generation => Some(ResponseError::IllegalGeneration),
            GroupState::PreparingRebalance => {
                member.touch(now);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.touch(now);
                None
            }
        }
    }

    pub(super) async fn leave(
        &mut self,
        group_id: &str,
        members: Vec<LeavingMember>,
        now: Instant,
    ) -> LeaveResponse {
        let Some(group) = self.groups.get_mut(group_id) else {
            return LeaveResponse {
                error: None,
                members: members
                    .into_iter()
                    .map(|m| (m, Some(ResponseError::UnknownMemberId)))
                    .collect(),
            };
        };
        if group.state == GroupState::Dead {
            return LeaveResponse {
                error: Some(ResponseError::CoordinatorNotAvailable),
                members: Vec::new(),
            };
        }
        let mut results = Vec::with_capacity(members.len());
        let mut removed = false;
        for leaving in members {
            let target = match &leaving.group_instance_id {
                Some(instance) => match group.static_member(instance) {
                    None => Err(ResponseError::UnknownMemberId),
                    Some(current)
                        if !leaving.member_id.is_empty() && current != leaving.member_id =>
                    {
                        Err(ResponseError::FencedInstanceId)
                    }
                    Some(current) => Ok(current.to_owned()),
                },
                None => Ok(leaving.member_id.clone()),
            };
            let error = match target {
                Err(e) => Some(e),
                Ok(id) if group.pending_members.remove(&id).is_some() => None,
                Ok(id) => match group.remove_member(&id) {
                    Some(mut m) => {
                        tracing::info!(group = %group_id, member = %id, "member left");
                        if let Some(parked) = m.awaiting_join.take() {
                            let _ = parked
                                .send(JoinResponse::error(ResponseError::UnknownMemberId, &id));
                        }
                        removed = true;
                        None
                    }
                    None => Some(ResponseError::UnknownMemberId),
                },
            };
            results.push((leaving, error));
        }
        if removed {
            self.after_member_removed(group_id, "member left", now)
                .await;
        }
        LeaveResponse {
            error: None,
            members: results,
        }
    }

    /// After a member left or expired: a settled group rebalances; a join phase may now have
    /// everyone it waits for.
    pub(super) async fn after_member_removed(
        &mut self,
        group_id: &str,
        reason: &str,
        now: Instant,
    ) {
        let Some(state) = self.groups.get(group_id).map(|g| g.state) else {
            return;
        };
        match state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group_id, reason);
                self.maybe_complete_join(group_id, now).await;
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(group_id, now).await,
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    pub(super) async fn on_timer(&mut self, timer: Timer) {
        let now = Instant::now();
        match timer {
            Timer::Session { group, member } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                let Some(m) = g.members.get_mut(&member) else {
                    return;
                };
                if m.is_alive(now) {
                    let next = m.session_deadline.max(now + session(m.session_timeout_ms));
                    let after = next.saturating_duration_since(now);
                    self.schedule(Timer::Session { group, member }, after);
                    return;
                }
                tracing::info!(group = %group, member = %member, "member session expired");
                if let Some(mut m) = g.remove_member(&member) {
                    if let Some(parked) = m.awaiting_join.take() {
                        let _ = parked
                            .send(JoinResponse::error(ResponseError::UnknownMemberId, &member));
                    }
                }
                self.after_member_removed(&group, "member session expired", now)
                    .await;
            }
            Timer::Pending { group, member } => {
                let expired = self.groups.get_mut(&group).is_some_and(|g| {
                    let gone = g.pending_members.get(&member).is_some_and(|d| now >= *d);
                    if gone {
                        g.pending_members.remove(&member);
                    }
                    gone
                });
                if expired {
                    self.maybe_complete_join(&group, now).await;
                }
            }
            Timer::Join { group, phase } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                let Some(mut j) = g.join.filter(|j| j.id == phase) else {
                    return;
                };
                if g.state != GroupState::PreparingRebalance {
                    return;
                }
                if j.initial_delay && j.new_member_added && j.initial_remaining_ms > 0 {
                    // Members are still arriving: wait another delay, within the rebalance
                    // timeout (Kafka's InitialDelayedJoin).
                    let delay = (self.config.initial_rebalance_delay_ms.max(0) as u64)
                        .min(j.initial_remaining_ms);
                    j.initial_remaining_ms -= delay;
                    j.new_member_added = false;
                    g.join = Some(j);
                    self.schedule(Timer::Join { group, phase }, Duration::from_millis(delay));
                    return;
                }
                if j.initial_delay {
                    // The delay is over; wait for the rest of the members only if some have
                    // not rejoined (none have in a new group, so this completes).
                    j.initial_delay = false;
                    g.join = Some(j);
                }
                self.complete_join(&group, now).await;
            }
            Timer::Sync { group, generation } => {
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                if g.state != GroupState::CompletingRebalance || g.generation != generation {
                    return;
                }
                let missing: Vec<String> = g.pending_sync.iter().cloned().collect();
                if missing.is_empty() {
                    return;
                }
                for id in &missing {
                    tracing::info!(group = %group, member = %id, "member did not sync in time; removed");
                    g.remove_member(id);
                }
                self.prepare_rebalance(&group, "members did not sync in time");
                self.maybe_complete_join(&group, now).await;
            }
        }
    }

    pub(super) fn describe(&self, group_id: &str) -> DescribedGroup {
        let Some(group) = self.groups.get(group_id) else {
            return DescribedGroup {
                group_id: group_id.to_owned(),
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol.clone().unwrap_or_default();
        DescribedGroup {
            group_id: group.id.clone(),
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    pub(super) fn list(&self) -> Vec<ListedGroup> {
        self.groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| ListedGroup {
                group_id: g.id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect()
    }
}

/// A parked member takes its new JoinGroup's metadata and waits for the join phase.
fn update_member(member: &mut Member, req: &JoinRequest, reply: oneshot::Sender<JoinResponse>) {
    member.protocols = req.protocols.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    if let Some(old) = member.awaiting_join.replace(reply) {
        let _ = old.send(JoinResponse::error(
            ResponseError::RebalanceInProgress,
            &member.member_id,
        ));
    }
}

/// The current generation's JoinGroup answer for `member_id`.
fn join_response(group: &Group, member_id: &str) -> JoinResponse {
    let is_leader = group.leader.as_deref() == Some(member_id);
    JoinResponse {
        error: None,
        generation_id: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_owned(),
        members: if is_leader {
            joined_members(group)
        } else {
            Vec::new()
        },
    }
}

/// Every member with its metadata for the group's protocol (what the leader assigns from).
fn joined_members(group: &Group) -> Vec<crate::group_coordinator::api::JoinedMember> {
    let protocol = group.protocol.as_deref().unwrap_or("");
    group
        .members
        .values()
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata(protocol).cloned().unwrap_or_default(),
        })
        .collect()
}

/// The longest client id or instance id kept at the front of a member id.
const MEMBER_ID_PREFIX_MAX: usize = 1024;

/// `s` cut to at most `max` bytes, at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn session(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}
