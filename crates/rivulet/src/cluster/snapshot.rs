//! [`ClusterSnapshot`]: the cluster as one broker describes it at one moment (Metadata,
//! DescribeCluster v2, DescribeQuorum), and the filter that hides what the user did not ask
//! for. Built from decoded responses by a pure function, so tests need no broker.

use std::collections::{BTreeMap, BTreeSet};

use rivulet_controller::events::is_internal_topic;
use rivulet_protocol::kafka_protocol::messages::{
    DescribeClusterResponse, DescribeQuorumResponse, MetadataResponse,
};

/// A broker's state as the cluster reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BrokerState {
    /// Registered and unfenced: serving clients.
    Up,
    /// Registered but fenced (its session expired, or it is still catching up).
    Fenced,
    /// Known to the quorum (a voter, or a partition's replica) but not registered.
    Gone,
}

impl BrokerState {
    /// The word the status table shows.
    pub fn word(self) -> &'static str {
        match self {
            BrokerState::Up => "up",
            BrokerState::Fenced => "fenced",
            BrokerState::Gone => "gone",
        }
    }
}

/// One broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// `host:port` on the listener the tool connected through, when registered.
    pub address: Option<String>,
    /// Up, fenced or gone.
    pub state: BrokerState,
}

/// One partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partition {
    /// Leader id, or -1.
    pub leader: i32,
    /// Leader epoch (-1 when the broker does not say).
    pub leader_epoch: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

/// One topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topic {
    /// Kafka's internal topics (`__consumer_offsets`).
    pub internal: bool,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, Partition>,
}

/// The cluster as one broker describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSnapshot {
    /// The cluster id, if the broker says.
    pub cluster_id: Option<String>,
    /// The active controller, or -1.
    pub controller: i32,
    /// The controller epoch, when DescribeQuorum answered.
    pub controller_epoch: Option<i32>,
    /// The quorum's voters, when DescribeQuorum answered.
    pub voters: Vec<i32>,
    /// The metadata log's high watermark, when DescribeQuorum answered.
    pub high_watermark: Option<i64>,
    /// Brokers by id.
    pub brokers: BTreeMap<i32, Broker>,
    /// Topics by name.
    pub topics: BTreeMap<String, Topic>,
}

/// What the user asked to see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Show internal topics too.
    pub include_internal: bool,
    /// Only these topics (all when empty).
    pub topics: Vec<String>,
}

impl Filter {
    /// Whether `name` (internal or not) is shown.
    pub fn shows(&self, name: &str, internal: bool) -> bool {
        if !self.topics.is_empty() {
            return self.topics.iter().any(|t| t == name);
        }
        self.include_internal || !internal
    }
}

impl ClusterSnapshot {
    /// The snapshot with only the topics `filter` shows.
    pub fn filtered(mut self, filter: &Filter) -> ClusterSnapshot {
        self.topics.retain(|name, t| filter.shows(name, t.internal));
        self
    }

    /// How many topics `filter` hides.
    pub fn hidden_topics(&self, filter: &Filter) -> usize {
        self.topics
            .iter()
            .filter(|(name, t)| !filter.shows(name, t.internal))
            .count()
    }
}

/// The snapshot the three answers describe. `cluster` is DescribeCluster v2 with fenced
/// brokers (without it only Metadata's unfenced brokers are known); `quorum` gives the
/// controller's epoch and the voters.
pub fn from_responses(
    metadata: &MetadataResponse,
    cluster: Option<&DescribeClusterResponse>,
    quorum: Option<&DescribeQuorumResponse>,
) -> ClusterSnapshot {
    let mut s = ClusterSnapshot {
        cluster_id: metadata.cluster_id.as_ref().map(|c| c.to_string()),
        controller: metadata.controller_id.0,
        ..ClusterSnapshot::default()
    };
    for b in &metadata.brokers {
        s.brokers.insert(
            b.node_id.0,
            Broker {
                address: Some(format!("{}:{}", b.host, b.port)),
                state: BrokerState::Up,
            },
        );
    }
    if let Some(c) = cluster.filter(|c| c.error_code == 0) {
        s.cluster_id = Some(c.cluster_id.to_string());
        for b in &c.brokers {
            let state = if b.is_fenced {
                BrokerState::Fenced
            } else {
                BrokerState::Up
            };
            s.brokers.insert(
                b.broker_id.0,
                Broker {
                    address: Some(format!("{}:{}", b.host, b.port)),
                    state,
                },
            );
        }
    }
    let quorum = quorum
        .and_then(|q| q.topics.first())
        .and_then(|t| t.partitions.first())
        .filter(|p| p.error_code == 0);
    if let Some(p) = quorum {
        s.controller = p.leader_id.0;
        s.controller_epoch = Some(p.leader_epoch);
        s.high_watermark = Some(p.high_watermark);
        s.voters = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        s.voters.sort_unstable();
    }
    let mut known: BTreeSet<i32> = s.voters.iter().copied().collect();
    for t in &metadata.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        let mut topic = Topic {
            internal: t.is_internal || is_internal_topic(&name),
            partitions: BTreeMap::new(),
        };
        for p in &t.partitions {
            let partition = Partition {
                leader: p.leader_id.0,
                leader_epoch: p.leader_epoch,
                replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                isr: p.isr_nodes.iter().map(|b| b.0).collect(),
            };
            known.extend(&partition.replicas);
            topic.partitions.insert(p.partition_index, partition);
        }
        s.topics.insert(name, topic);
    }
    // Only a broker that answers DescribeCluster v2 lists fenced brokers: without it a broker
    // missing from Metadata may just be fenced, so nothing is called gone.
    if cluster.is_some() {
        for id in known {
            s.brokers.entry(id).or_insert(Broker {
                address: None,
                state: BrokerState::Gone,
            });
        }
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rivulet_protocol::kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use rivulet_protocol::kafka_protocol::messages::describe_quorum_response::{
        PartitionData as QuorumPartition, ReplicaState, TopicData as QuorumTopic,
    };
    use rivulet_protocol::kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use rivulet_protocol::kafka_protocol::messages::{BrokerId, TopicName};
    use rivulet_protocol::kafka_protocol::protocol::StrBytes;

    fn text(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_owned())
    }

    fn ids(v: &[i32]) -> Vec<BrokerId> {
        v.iter().map(|b| BrokerId(*b)).collect()
    }

    /// A Metadata answer: brokers 1 and 2 up, 3 fenced (absent), `orders` with two partitions,
    /// `__consumer_offsets` with one.
    pub(crate) fn metadata() -> MetadataResponse {
        let partition = |i: i32, leader: i32, replicas: &[i32], isr: &[i32]| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(4)
                .with_replica_nodes(ids(replicas))
                .with_isr_nodes(ids(isr))
        };
        MetadataResponse::default()
            .with_cluster_id(Some(text("c1")))
            .with_controller_id(BrokerId(1))
            .with_brokers(
                [1, 2]
                    .iter()
                    .map(|id| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(*id))
                            .with_host(text("localhost"))
                            .with_port(9000 + id)
                    })
                    .collect(),
            )
            .with_topics(vec![
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(text("orders"))))
                    .with_partitions(vec![
                        partition(0, 1, &[1, 2, 3], &[1, 2]),
                        partition(1, 2, &[2, 3, 4], &[2]),
                    ]),
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(text("__consumer_offsets"))))
                    .with_is_internal(true)
                    .with_partitions(vec![partition(0, 1, &[1], &[1])]),
            ])
    }

    pub(crate) fn describe_cluster() -> DescribeClusterResponse {
        DescribeClusterResponse::default()
            .with_cluster_id(text("c1"))
            .with_brokers(
                [(1, false), (2, false), (3, true)]
                    .iter()
                    .map(|(id, fenced)| {
                        DescribeClusterBroker::default()
                            .with_broker_id(BrokerId(*id))
                            .with_host(text("localhost"))
                            .with_port(9000 + id)
                            .with_is_fenced(*fenced)
                    })
                    .collect(),
            )
    }

    pub(crate) fn describe_quorum(leader: i32, epoch: i32) -> DescribeQuorumResponse {
        DescribeQuorumResponse::default().with_topics(vec![QuorumTopic::default()
            .with_topic_name(TopicName(text("__cluster_metadata")))
            .with_partitions(vec![QuorumPartition::default()
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(epoch)
                .with_high_watermark(120)
                .with_current_voters(
                    [3, 1, 2]
                        .iter()
                        .map(|id| ReplicaState::default().with_replica_id(BrokerId(*id)))
                        .collect(),
                )])])
    }

    #[test]
    fn all_three_answers() {
        let s = from_responses(
            &metadata(),
            Some(&describe_cluster()),
            Some(&describe_quorum(2, 7)),
        );
        assert_eq!(s.cluster_id.as_deref(), Some("c1"));
        assert_eq!((s.controller, s.controller_epoch), (2, Some(7)));
        assert_eq!(s.voters, [1, 2, 3]);
        assert_eq!(s.high_watermark, Some(120));
        let states: Vec<(i32, BrokerState, Option<&str>)> = s
            .brokers
            .iter()
            .map(|(id, b)| (*id, b.state, b.address.as_deref()))
            .collect();
        assert_eq!(
            states,
            [
                (1, BrokerState::Up, Some("localhost:9001")),
                (2, BrokerState::Up, Some("localhost:9002")),
                (3, BrokerState::Fenced, Some("localhost:9003")),
                (4, BrokerState::Gone, None),
            ]
        );
        let orders = &s.topics["orders"];
        assert!(!orders.internal);
        assert_eq!(
            orders.partitions[&1],
            Partition {
                leader: 2,
                leader_epoch: 4,
                replicas: vec![2, 3, 4],
                isr: vec![2],
            }
        );
        assert!(s.topics["__consumer_offsets"].internal);
    }

    #[test]
    fn metadata_alone_knows_up_brokers_and_the_controller_id() {
        let s = from_responses(&metadata(), None, None);
        assert_eq!((s.controller, s.controller_epoch), (1, None));
        assert_eq!(s.brokers.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert!(s.voters.is_empty());
    }

    #[test]
    fn filters() {
        let s = from_responses(&metadata(), None, None);
        let default = Filter::default();
        assert_eq!(s.hidden_topics(&default), 1);
        let shown = s.clone().filtered(&default);
        assert_eq!(shown.topics.keys().collect::<Vec<_>>(), ["orders"]);
        let all = Filter {
            include_internal: true,
            topics: vec![],
        };
        assert_eq!(s.clone().filtered(&all).topics.len(), 2);
        let one = Filter {
            include_internal: false,
            topics: vec!["__consumer_offsets".into()],
        };
        assert_eq!(
            s.filtered(&one).topics.keys().collect::<Vec<_>>(),
            ["__consumer_offsets"],
            "a topic named explicitly shows even if internal"
        );
    }
}
