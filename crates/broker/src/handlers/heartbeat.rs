//! Heartbeat (v0-4): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to
//! rejoin.

use rivulet_protocol::kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::BrokerState;
use crate::group_coordinator::api;

/// Records the heartbeat.
pub async fn handle(state: &BrokerState, req: HeartbeatRequest) -> HeartbeatResponse {
    let error = state
        .groups
        .heartbeat(api::HeartbeatRequest {
            group_id: req.group_id.0.to_string(),
            generation_id: req.generation_id,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        })
        .await;
    HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}
