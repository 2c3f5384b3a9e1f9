//! DescribeGroups (v0-5): each group's state, protocol and members (with their metadata and
//! assignments once Stable). An unknown group is reported as `Dead` with no error, as Kafka
//! does; a group coordinated elsewhere gets NOT_COORDINATOR.

use rivulet_protocol::kafka_protocol::messages::describe_groups_response::{
    DescribedGroup, DescribedGroupMember,
};
use rivulet_protocol::kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::str_bytes;
use crate::broker::BrokerState;

/// `authorized_operations` when the client did not ask for them.
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Describes the groups.
pub async fn handle(state: &BrokerState, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let mut groups = Vec::with_capacity(req.groups.len());
    for id in req.groups {
        let described = match state.groups.describe(&id.0).await {
            Ok(g) => DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(str_bytes(g.state))
                .with_protocol_type(str_bytes(&g.protocol_type))
                .with_protocol_data(str_bytes(&g.protocol))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_group_instance_id(
                                    m.group_instance_id.as_deref().map(str_bytes),
                                )
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            Err(e) => DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(e.code())
                .with_group_state(str_bytes("")),
        };
        groups.push(described.with_authorized_operations(OPERATIONS_OMITTED));
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
