//! LeaveGroup (v0-5): members leave, and the group rebalances without them. v0-2 name one
//! member; v3+ a batch, each with its own error (static members by `group.instance.id`,
//! KIP-345).

use rivulet_protocol::kafka_protocol::messages::leave_group_response::MemberResponse;
use rivulet_protocol::kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::str_bytes;
use crate::broker::BrokerState;
use crate::group_coordinator::api::LeavingMember;

/// Removes the members.
pub async fn handle(
    state: &BrokerState,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let members: Vec<LeavingMember> = if version >= 3 {
        req.members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let r = state.groups.leave(&req.group_id.0, members).await;
    if version < 3 {
        // One member: its error is the response's.
        let error = r.error.or_else(|| r.members.first().and_then(|(_, e)| *e));
        return LeaveGroupResponse::default().with_error_code(error.map_or(0, |e| e.code()));
    }
    LeaveGroupResponse::default()
        .with_error_code(r.error.map_or(0, |e| e.code()))
        .with_members(
            r.members
                .into_iter()
                .map(|(m, e)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(&m.member_id))
                        .with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                        .with_error_code(e.map_or(0, |e| e.code()))
                })
                .collect(),
        )
}
