//! `TestQuorum`: voters on 127.0.0.1 port 0 with temp dirs, offering kill, restart, isolate and
//! heal, and waits on observable conditions with a timeout and a reason.

#![allow(dead_code)]

pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use openraft::RaftMetrics;
use rivulet_controller::{
    Assignment, Controller, ControllerClient, ControllerConfig, ControllerNode, MetadataError,
    NewTopic, Registration, Voter,
};
use tokio::net::TcpListener;

/// How long any wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A topic with `partitions` partitions placed on broker 0 (which [`TestQuorum::wait_for_leader`]
/// registers).
pub fn topic(name: &str, partitions: i32) -> NewTopic {
    NewTopic {
        name: name.into(),
        assignment: Assignment::Manual(vec![vec![0]; partitions as usize]),
        configs: BTreeMap::new(),
    }
}

/// A registration of broker `id` with one PLAINTEXT endpoint and a fresh incarnation.
pub fn registration(id: i32) -> Registration {
    Registration {
        broker_id: id,
        incarnation_id: uuid::Uuid::new_v4(),
        endpoints: vec![("PLAINTEXT".into(), "127.0.0.1".into(), 9092)],
        rack: None,
    }
}

/// Registers and unfences brokers 1 and 2 through `c`; returns their epochs.
pub async fn two_live_brokers(c: &ControllerClient) -> (i64, i64) {
    let e1 = c.register_broker(&registration(1)).await.unwrap();
    let e2 = c.register_broker(&registration(2)).await.unwrap();
    for (id, epoch) in [(1, e1), (2, e2)] {
        let reply = c.heartbeat(id, epoch, i64::MAX).await.unwrap();
        assert!(!reply.is_fenced, "broker {id} unfenced once caught up");
    }
    (e1, e2)
}

/// Quorum tests run one at a time: three voters each fsyncing their log are enough load for a
/// 2-core machine, and parallel quorums there can miss heartbeats and change leaders mid-test.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct TestQuorum {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    dirs: BTreeMap<i32, tempfile::TempDir>,
    voters: Vec<Voter>,
    nodes: BTreeMap<i32, ControllerNode>,
    tweak: fn(&mut ControllerConfig),
}

fn config_for(
    id: i32,
    voters: &[Voter],
    dir: &std::path::Path,
    tweak: fn(&mut ControllerConfig),
) -> ControllerConfig {
    let mut c = ControllerConfig::new(
        id,
        "test-cluster".into(),
        voters.to_vec(),
        dir.join("__cluster_metadata-0"),
    );
    c.heartbeat_interval = Duration::from_millis(100);
    c.election_timeout = Duration::from_millis(800);
    c.write_timeout = Duration::from_secs(2);
    tweak(&mut c);
    c
}

impl TestQuorum {
    pub async fn start(n: i32) -> TestQuorum {
        Self::start_with(n, |_| {}).await
    }

    pub async fn start_with(n: i32, tweak: fn(&mut ControllerConfig)) -> TestQuorum {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn")
            .try_init();
        let mut listeners = Vec::new();
        let mut voters = Vec::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            voters.push(Voter {
                id,
                address: l.local_addr().unwrap().to_string(),
            });
            listeners.push((id, l));
        }
        let turn = ONE_AT_A_TIME.lock().await;
        let mut q = TestQuorum {
            _turn: turn,
            dirs: BTreeMap::new(),
            voters,
            nodes: BTreeMap::new(),
            tweak,
        };
        for (id, l) in listeners {
            let dir = tempfile::tempdir().unwrap();
            let node = ControllerNode::start(config_for(id, &q.voters, dir.path(), tweak), l)
                .await
                .unwrap();
            q.dirs.insert(id, dir);
            q.nodes.insert(id, node);
        }
        q
    }

    pub fn running(&self) -> Vec<i32> {
        self.nodes.keys().copied().collect()
    }

    pub fn controller(&self, id: i32) -> &Controller {
        self.nodes[&id].controller()
    }

    /// Stops a node abruptly (its sled dir stays).
    pub async fn kill(&mut self, id: i32) {
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await;
        }
    }

    /// Starts a stopped node again from its dir, on its old address.
    pub async fn restart(&mut self, id: i32) {
        let address = self
            .voters
            .iter()
            .find(|v| v.id == id)
            .unwrap()
            .address
            .clone();
        let deadline = Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(&address).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind {address}: {e}"),
            }
        };
        let dir = self.dirs[&id].path().to_path_buf();
        let node = ControllerNode::start(config_for(id, &self.voters, &dir, self.tweak), listener)
            .await
            .unwrap();
        self.nodes.insert(id, node);
    }

    /// Cuts `id` off from every other voter, both ways.
    pub fn isolate(&self, id: i32) {
        for (other, node) in &self.nodes {
            if *other == id {
                for v in &self.voters {
                    node.filter().block(v.id as u64);
                }
            } else {
                node.filter().block(id as u64);
            }
        }
    }

    pub fn heal(&self) {
        for node in self.nodes.values() {
            node.filter().clear();
        }
    }

    /// Waits until one running node other than `not` is the ready leader; returns it.
    pub async fn wait_for_leader(&self, not: Option<i32>) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            let leaders: BTreeSet<i32> = self
                .nodes
                .iter()
                .filter(|(id, _)| Some(**id) != not)
                .filter(|(_, n)| {
                    let m = n.raft().metrics().borrow().clone();
                    m.state == openraft::ServerState::Leader
                        && n.controller().image().controller_epoch as u64 == m.current_term
                })
                .map(|(id, _)| *id)
                .collect();
            if leaders.len() == 1 {
                let leader = *leaders.iter().next().unwrap();
                // Register broker 0 so topics can be placed, once per leader. A leader deposed
                // in between (an election race at start) answers NOT_CONTROLLER: look again.
                if self.ensure_broker(leader).await {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no single leader within {WAIT:?}: {leaders:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Registers broker 0 through `leader` unless it is registered; false if `leader` no
    /// longer leads.
    async fn ensure_broker(&self, leader: i32) -> bool {
        let c = self.controller(leader);
        if c.image().brokers.contains_key(&0) {
            return true;
        }
        let registered = c
            .register_broker(rivulet_controller::decisions::BrokerRegistration {
                broker_id: 0,
                incarnation_id: uuid::Uuid::new_v4(),
                endpoints: BTreeMap::new(),
                rack: None,
            })
            .await;
        match registered {
            Ok(_) => true,
            Err(rivulet_controller::MetadataError::NotController { .. }) => false,
            Err(e) => panic!("registering broker 0: {e}"),
        }
    }

    /// Creates a one-partition topic through whichever node leads, retrying on a leader change
    /// (a retry that finds the topic already there means the first attempt committed); returns
    /// an offset at which the topic exists.
    pub async fn create_on_leader(&self, name: &str) -> i64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let leader = self.wait_for_leader(None).await;
            let c = self.controller(leader);
            let outcome = c.create_topics(vec![topic(name, 1)], false).await;
            match outcome {
                Ok((r, offset)) => match &r[0] {
                    Ok(_) => return offset,
                    Err(MetadataError::TopicAlreadyExists(_)) => return c.image().offset,
                    Err(e) if e.is_retriable() => {}
                    Err(e) => panic!("creating {name}: {e}"),
                },
                Err(e) if e.is_retriable() => {}
                Err(e) => panic!("creating {name}: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "{name} not created within {WAIT:?}"
            );
        }
    }

    /// Waits until every running node has applied `offset`.
    pub async fn wait_all_applied(&self, offset: i64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let behind: Vec<i32> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.controller().image().offset < offset)
                .map(|(id, _)| *id)
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nodes {behind:?} did not apply offset {offset} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until node `id`'s Raft metrics satisfy `cond`.
    pub async fn wait_metrics(
        &self,
        id: i32,
        what: &str,
        cond: impl Fn(&RaftMetrics<u64, openraft::BasicNode>) -> bool,
    ) -> RaftMetrics<u64, openraft::BasicNode> {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = self.nodes[&id].raft().metrics().borrow().clone();
            if cond(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "node {id}: no {what} within {WAIT:?}: {m:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        let ids = self.running();
        for id in ids {
            self.kill(id).await;
        }
    }
}

impl TestQuorum {
    /// The voters of the quorum.
    pub fn voters(&self) -> &[Voter] {
        &self.voters
    }
}
