//! [`TestCluster`]: several `rivulet server` processes on loopback forming one cluster (every
//! node broker and controller), with kill -9, restart, and reads of each node's metadata.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rivulet_protocol::kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use super::{free_port, tail, RawClient, StartError, TestBroker};

/// One partition as a node's Metadata response describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Error code of the partition entry.
    pub error: i16,
    /// Leader id (-1: none).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Replicas.
    pub replicas: Vec<i32>,
    /// ISR.
    pub isr: Vec<i32>,
}

/// What one node says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// Brokers listed (unfenced), by id.
    pub brokers: Vec<i32>,
    /// Active controller.
    pub controller: i32,
    /// Topics: id and partitions.
    pub topics: BTreeMap<String, (uuid::Uuid, Vec<PartitionView>)>,
}

/// A cluster of nodes 1..=n.
pub struct TestCluster {
    /// The nodes, `nodes[i]` has node id `i + 1`.
    pub nodes: Vec<TestBroker>,
}

impl TestCluster {
    /// Starts `n` nodes with `settings` added to each, and waits until every one serves. A port
    /// picked free can be taken before a node binds it (another test's outgoing connection gets
    /// it as its ephemeral port): then the whole cluster starts again on fresh ports.
    pub fn start(n: i32, settings: &[(&str, &str)]) -> TestCluster {
        for attempt in 1..=5 {
            match Self::try_start(n, settings) {
                Ok(c) => return c,
                Err(log) if attempt < 5 => {
                    eprintln!(
                        "a cluster port was taken (attempt {attempt}); retrying:\n{}",
                        tail(&log, 5)
                    )
                }
                Err(log) => panic!("a cluster port stayed taken:\n{}", tail(&log, 40)),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// One attempt of [`Self::start`]: `Err` (with the log) when a port was in use.
    fn try_start(n: i32, settings: &[(&str, &str)]) -> Result<TestCluster, String> {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let voters = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (i, (port, controller_port)) in ports.iter().enumerate() {
            let mut s: Vec<(String, String)> = vec![
                ("controller.quorum.voters".into(), voters.clone()),
                ("cluster.id".into(), "rivulet-test-cluster".into()),
            ];
            s.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            nodes.push(TestBroker::unstarted(
                i as i32 + 1,
                *port,
                *controller_port,
                s,
            ));
        }
        let mut offsets = Vec::new();
        for node in &mut nodes {
            match node.spawn() {
                Ok(o) => offsets.push(o),
                Err(StartError::AddressInUse(log)) => return Err(log),
                Err(StartError::Failed(log)) => {
                    panic!("node {} did not start:\n{}", node.node_id(), tail(&log, 40))
                }
            }
        }
        for (node, offset) in nodes.iter_mut().zip(offsets) {
            match node.wait_started(offset) {
                Ok(()) => {}
                Err(StartError::AddressInUse(log)) => return Err(log),
                Err(StartError::Failed(log)) => {
                    panic!("node {} did not start:\n{}", node.node_id(), tail(&log, 60))
                }
            }
        }
        Ok(TestCluster { nodes })
    }

    /// Node `id`.
    pub fn node(&mut self, id: i32) -> &mut TestBroker {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Bootstrap servers of every running node.
    pub fn bootstrap(&mut self) -> String {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then(|| n.bootstrap()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What node `id` answers to Metadata v12 for all topics.
    pub fn view(&self, id: i32) -> ClusterView {
        let node = &self.nodes[(id - 1) as usize];
        let mut client = RawClient::connect(node.addr());
        let response: MetadataResponse = client.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        );
        ClusterView {
            brokers: response.brokers.iter().map(|b| b.node_id.0).collect(),
            controller: response.controller_id.0,
            topics: response
                .topics
                .iter()
                .map(|t| {
                    let mut partitions: Vec<(i32, PartitionView)> = t
                        .partitions
                        .iter()
                        .map(|p| {
                            (
                                p.partition_index,
                                PartitionView {
                                    error: p.error_code,
                                    leader: p.leader_id.0,
                                    leader_epoch: p.leader_epoch,
                                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                                },
                            )
                        })
                        .collect();
                    partitions.sort_by_key(|(i, _)| *i);
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        (t.topic_id, partitions.into_iter().map(|(_, p)| p).collect()),
                    )
                })
                .collect(),
        }
    }

    /// Waits until node `id`'s view satisfies `cond`; returns that view and how long it took.
    pub fn wait_view(
        &self,
        id: i32,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&ClusterView) -> bool,
    ) -> (ClusterView, Duration) {
        let start = Instant::now();
        loop {
            let view = self.view(id);
            if cond(&view) {
                return (view, start.elapsed());
            }
            assert!(
                start.elapsed() < timeout,
                "node {id}: {what} did not happen within {timeout:?}; last view: {view:#?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}
