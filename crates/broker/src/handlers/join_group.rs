//! JoinGroup (v0-9): a member joins (or rejoins) a classic group and waits until the
//! rebalance's join phase completes; the leader gets every member's metadata to assign from.
//! v0 has no rebalance timeout (the session timeout stands in, as in Kafka); v4+ members
//! without an id first get one with MEMBER_ID_REQUIRED (KIP-394); v5+ carry
//! `group.instance.id` (static membership, KIP-345).

use rivulet_protocol::kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use rivulet_protocol::kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{str_bytes, ClientInfo};
use crate::broker::BrokerState;
use crate::group_coordinator::api::JoinRequest;

/// Joins the group.
pub async fn handle(
    state: &BrokerState,
    client: &ClientInfo,
    req: JoinGroupRequest,
    version: i16,
) -> JoinGroupResponse {
    let request = JoinRequest {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        client_id: client.client_id.clone(),
        client_host: client.host.clone(),
        require_known_member_id: version >= 4,
    };
    let r = state.groups.join(request).await;
    JoinGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_generation_id(r.generation_id)
        .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
        .with_protocol_name(r.protocol_name.as_deref().map(str_bytes))
        .with_leader(str_bytes(&r.leader))
        .with_skip_assignment(r.skip_assignment && version >= 9)
        .with_member_id(str_bytes(&r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
