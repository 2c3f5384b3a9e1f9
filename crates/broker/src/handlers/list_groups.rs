//! ListGroups (v0-5): the groups this broker coordinates. v4+ filters by state
//! (case-insensitive, KIP-518), v5+ by type (KIP-848; every group here is `classic`).

use rivulet_protocol::kafka_protocol::messages::list_groups_response::ListedGroup;
use rivulet_protocol::kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
use crate::broker::BrokerState;

/// The type of every group this broker runs.
const CLASSIC: &str = "classic";

/// Lists the groups.
pub async fn handle(state: &BrokerState, req: ListGroupsRequest) -> ListGroupsResponse {
    let (error, groups) = state.groups.list().await;
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
    let groups = groups
        .into_iter()
        .filter(|g| states.is_empty() || states.contains(&g.state.to_lowercase()))
        .filter(|_| types.is_empty() || types.iter().any(|t| t == CLASSIC))
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(CLASSIC))
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_groups(groups)
}
