//! DeleteGroups (v0-2): deletes empty groups and their committed offsets (tombstones in
//! `__consumer_offsets`). A group with members gets NON_EMPTY_GROUP, an unknown one
//! GROUP_ID_NOT_FOUND.

use rivulet_protocol::kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use rivulet_protocol::kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::BrokerState;

/// Deletes the groups.
pub async fn handle(state: &BrokerState, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for group in req.groups_names {
        let error = state.groups.delete(&group.0).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
