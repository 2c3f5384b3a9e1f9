//! DescribeQuorum (KIP-595; v2 adds KIP-853's nodes): the metadata quorum, partition
//! `__cluster_metadata-0`: its leader (the active controller) and epoch, high watermark, and the
//! voters' and observers' progress.
//!
//! Kafka's brokers forward this request to the active controller. Here every node answers from
//! what it knows: a voter from its own Raft state ([`rivulet_controller::QuorumView`]), with
//! replication progress only when it is the Raft leader; a broker-only node from its metadata
//! image (controller id and epoch) and the configured voters. Unknown values are -1, as in
//! Kafka. Any request other than exactly `__cluster_metadata` partition 0 gets
//! UNKNOWN_TOPIC_OR_PARTITION for each partition it names, as Kafka's `KafkaRaftClient` does.

use std::net::SocketAddr;

use rivulet_controller::{MetadataImage, QuorumState, ReplicaProgress};
use rivulet_protocol::kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use rivulet_protocol::kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use rivulet_protocol::kafka_protocol::ResponseError;

use super::str_bytes;
use crate::broker::BrokerState;
use crate::config::BrokerConfig;

/// The metadata log's topic, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Describes the quorum (with the voters' endpoints from v2 on).
pub fn handle(
    state: &BrokerState,
    req: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let image = state.store.image();
    let quorum = match &state.quorum {
        Some(view) => view.describe(),
        None => from_image(&image, &state.config),
    };
    let resp = respond(&req, quorum, &image);
    let answered = resp
        .topics
        .iter()
        .any(|t| t.partitions.iter().any(|p| p.error_code == 0));
    if version >= 2 && answered {
        let own = state.quorum.as_ref().map(|q| q.address());
        resp.with_nodes(voter_nodes(&state.config, own))
    } else {
        resp
    }
}

/// The quorum as a broker-only node knows it: the active controller and epoch from its image,
/// the configured voters with nothing known of their progress.
fn from_image(image: &MetadataImage, config: &BrokerConfig) -> QuorumState {
    let mut voters: Vec<i32> = config
        .controller_quorum_voters
        .iter()
        .map(|v| v.id)
        .collect();
    voters.sort_unstable();
    voters.dedup();
    QuorumState {
        leader_id: image.controller_id,
        leader_epoch: image.controller_epoch,
        high_watermark: if image.offset >= 0 {
            image.offset + 1
        } else {
            -1
        },
        voters: voters.into_iter().map(ReplicaProgress::unknown).collect(),
        observers: Vec::new(),
    }
}

/// The response to `req` given `quorum`: pure, so tests need no running node.
pub fn respond(
    req: &DescribeQuorumRequest,
    mut quorum: QuorumState,
    image: &MetadataImage,
) -> DescribeQuorumResponse {
    let valid = matches!(req.topics.as_slice(), [t]
        if t.topic_name.0.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0));
    if !valid {
        let code = ResponseError::UnknownTopicOrPartition.code();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                PartitionData::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                                    .with_error_message(None)
                                    .with_leader_id(BrokerId(-1))
                                    .with_leader_epoch(-1)
                                    .with_high_watermark(-1)
                            })
                            .collect(),
                    )
            })
            .collect();
        return DescribeQuorumResponse::default()
            .with_error_message(None)
            .with_topics(topics);
    }
    // Registered brokers outside the voters follow the metadata too: Kafka's observers.
    for b in image.brokers.keys() {
        let known = quorum.voters.iter().chain(&quorum.observers);
        if !known.map(|r| r.replica_id).any(|id| id == *b) {
            quorum.observers.push(ReplicaProgress::unknown(*b));
        }
    }
    quorum.observers.sort_by_key(|r| r.replica_id);
    let replica = |r: &ReplicaProgress| {
        ReplicaState::default()
            .with_replica_id(BrokerId(r.replica_id))
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(r.last_fetch_timestamp)
            .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
    };
    let partition = PartitionData::default()
        .with_partition_index(0)
        .with_error_message(None)
        .with_leader_id(BrokerId(quorum.leader_id))
        .with_leader_epoch(quorum.leader_epoch)
        .with_high_watermark(quorum.high_watermark)
        .with_current_voters(quorum.voters.iter().map(replica).collect())
        .with_observers(quorum.observers.iter().map(replica).collect());
    DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
}

/// KIP-853's nodes section (v2): each voter's controller listener, from
/// `controller.quorum.voters` under the first of `controller.listener.names`. A single voter
/// that is this node is where its controller listener is bound (`own`), as the node itself
/// finds it (a zero-config node on another port).
pub fn voter_nodes(config: &BrokerConfig, own: Option<SocketAddr>) -> Vec<Node> {
    let listener = config
        .controller_listener_names
        .first()
        .map_or("CONTROLLER", String::as_str);
    let only_self =
        matches!(config.controller_quorum_voters.as_slice(), [v] if v.id == config.node_id);
    config
        .controller_quorum_voters
        .iter()
        .map(|v| {
            let (host, port) = match own.filter(|_| only_self) {
                Some(a) => (a.ip().to_string(), a.port()),
                None => (v.host.clone(), v.port),
            };
            Node::default()
                .with_node_id(BrokerId(v.id))
                .with_listeners(vec![Listener::default()
                    .with_name(str_bytes(listener))
                    .with_host(str_bytes(&host))
                    .with_port(port)])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, ConfigSources};
    use rivulet_protocol::kafka_protocol::messages::describe_quorum_request;
    use rivulet_protocol::kafka_protocol::protocol::StrBytes;

    fn request(topics: &[(&'static str, &[i32])]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    describe_quorum_request::TopicData::default()
                        .with_topic_name(TopicName(StrBytes::from_static_str(name)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    describe_quorum_request::PartitionData::default()
                                        .with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    fn config() -> BrokerConfig {
        let sources = ConfigSources {
            overrides: vec![
                ("node.id".into(), "1".into()),
                (
                    "controller.quorum.voters".into(),
                    "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293".into(),
                ),
            ],
            ..ConfigSources::default()
        };
        BrokerConfig::load(&sources).unwrap()
    }

    fn quorum() -> QuorumState {
        QuorumState {
            leader_id: 2,
            leader_epoch: 7,
            high_watermark: 42,
            voters: (1..=3).map(ReplicaProgress::unknown).collect(),
            observers: vec![],
        }
    }

    #[test]
    fn the_metadata_partition_is_described() {
        let mut image = MetadataImage::empty("c");
        for id in [1, 2, 3, 4] {
            image.brokers.insert(
                id,
                rivulet_controller::BrokerImage {
                    id,
                    epoch: 1,
                    incarnation_id: Default::default(),
                    endpoints: Default::default(),
                    rack: None,
                    fenced: false,
                    in_controlled_shutdown: false,
                },
            );
        }
        let r = respond(&request(&[(METADATA_TOPIC, &[0])]), quorum(), &image);
        assert_eq!(r.error_code, 0);
        let p = &r.topics[0].partitions[0];
        assert_eq!(r.topics[0].topic_name.0.as_str(), METADATA_TOPIC);
        assert_eq!((p.error_code, p.leader_id.0), (0, 2));
        assert_eq!((p.leader_epoch, p.high_watermark), (7, 42));
        let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        assert_eq!(voters, [1, 2, 3]);
        assert!(p.current_voters.iter().all(|v| v.log_end_offset == -1));
        let observers: Vec<i32> = p.observers.iter().map(|v| v.replica_id.0).collect();
        assert_eq!(observers, [4], "a registered broker outside the voters");
    }

    #[test]
    fn anything_else_is_an_unknown_partition() {
        let image = MetadataImage::empty("c");
        for req in [
            request(&[(METADATA_TOPIC, &[1])]),
            request(&[("orders", &[0])]),
            request(&[(METADATA_TOPIC, &[0, 0])]),
            request(&[(METADATA_TOPIC, &[0]), ("orders", &[0])]),
        ] {
            let r = respond(&req, quorum(), &image);
            assert_eq!(r.topics.len(), req.topics.len());
            for (t, asked) in r.topics.iter().zip(&req.topics) {
                assert_eq!(t.topic_name, asked.topic_name);
                assert_eq!(t.partitions.len(), asked.partitions.len());
                for p in &t.partitions {
                    assert_eq!(p.error_code, ResponseError::UnknownTopicOrPartition.code());
                }
            }
        }
        let r = respond(&request(&[]), quorum(), &image);
        assert!(r.topics.is_empty());
    }

    #[test]
    fn nodes_are_the_voters_controller_listeners() {
        let nodes = voter_nodes(&config(), Some("127.0.0.1:5555".parse().unwrap()));
        let listed: Vec<(i32, String, String, u16)> = nodes
            .iter()
            .map(|n| {
                let l = &n.listeners[0];
                (n.node_id.0, l.name.to_string(), l.host.to_string(), l.port)
            })
            .collect();
        assert_eq!(
            listed,
            [
                (1, "CONTROLLER".into(), "127.0.0.1".into(), 9093),
                (2, "CONTROLLER".into(), "127.0.0.1".into(), 9193),
                (3, "CONTROLLER".into(), "127.0.0.1".into(), 9293),
            ]
        );
    }

    #[test]
    fn a_broker_only_node_answers_from_its_image() {
        let mut image = MetadataImage::empty("c");
        image.controller_id = 3;
        image.controller_epoch = 9;
        image.offset = 99;
        let q = from_image(&image, &config());
        assert_eq!((q.leader_id, q.leader_epoch, q.high_watermark), (3, 9, 100));
        assert_eq!(q.voters.len(), 3);
    }
}
