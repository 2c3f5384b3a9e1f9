//! SyncGroup (v0-5): the leader hands in the assignment, every member gets its own once the
//! assignment is stored in `__consumer_offsets`. v5 checks the protocol type and name.

use rivulet_protocol::kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::broker::BrokerState;
use crate::group_coordinator::api::SyncRequest;

/// Syncs the member.
pub async fn handle(state: &BrokerState, req: SyncGroupRequest) -> SyncGroupResponse {
    let request = SyncRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let r = state.groups.sync_group(request).await;
    SyncGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_protocol_type(r.protocol_type.as_deref().map(str_bytes))
        .with_protocol_name(r.protocol_name.as_deref().map(str_bytes))
        .with_assignment(r.assignment)
}
