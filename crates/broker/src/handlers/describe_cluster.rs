//! DescribeCluster: the brokers (as reached through the client's listener), the cluster id and
//! the active controller.

use rivulet_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::{message, str_bytes, ConnectionInfo};
use crate::broker::BrokerState;

/// Kafka's endpoint type for brokers (controllers are 2).
const BROKERS: i8 = 1;

/// Describes the cluster.
pub fn handle(
    state: &BrokerState,
    conn: &ConnectionInfo,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let image = state.store.image();
    let resp = DescribeClusterResponse::default()
        .with_endpoint_type(req.endpoint_type)
        .with_cluster_id(str_bytes(&image.cluster_id))
        .with_controller_id(BrokerId(image.controller_id))
        .with_cluster_authorized_operations(i32::MIN);
    if req.endpoint_type != BROKERS {
        return resp
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(message("The broker does not support controller endpoints"));
    }
    let brokers = image
        .brokers
        .values()
        .filter(|b| req.include_fenced_brokers || !b.fenced)
        .filter_map(|b| {
            let (host, port) = state.endpoint(b, &conn.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(str_bytes(&host))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.as_deref().map(str_bytes))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    resp.with_brokers(brokers)
}
