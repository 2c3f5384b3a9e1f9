//! [`ClusterEvent`]: one change of the cluster an operator cares about (a controller elected, a
//! broker fenced, a partition's leader moved, an ISR shrunk, a topic created), worded the same
//! wherever it is shown: the active controller's log, from the records it commits
//! ([`from_records`]), and `rivulet cluster watch`, from successive snapshots of what clients
//! see.
//!
//! Every value is inside the message (`leader of orders-0 moved 3 -> 2 at epoch 7`), so a line
//! reads on its own, without structured fields. A change touching many partitions of a topic
//! (more than one of an internal topic such as `__consumer_offsets`, more than ten of another)
//! is summarized in one line ([`summarize`]).
//!
//! Pure: no I/O, no clock. [`log`] is the one place that writes events to the tracing log.

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// One change of the cluster, as operators read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A node became the active controller (Raft leader) at `epoch` (the Raft term).
    ControllerElected {
        /// The new active controller.
        node: i32,
        /// The controller epoch.
        epoch: i32,
    },
    /// No node is the active controller (an election is under way).
    NoController,
    /// A broker registered (a new process, fenced until it catches up).
    BrokerRegistered(i32),
    /// A broker was fenced: it leads nothing and clients no longer see it.
    BrokerFenced(i32),
    /// A broker was unfenced: it serves clients and may lead partitions.
    BrokerUnfenced(i32),
    /// A broker asked to shut down (controlled shutdown): its leaderships move away.
    BrokerShuttingDown(i32),
    /// A broker is no longer known to the cluster at all.
    BrokerGone(i32),
    /// A topic was created.
    TopicCreated {
        /// Its name.
        topic: String,
        /// Its partition count.
        partitions: usize,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// Its name.
        topic: String,
    },
    /// Partitions were added to a topic (CreatePartitions).
    PartitionsAdded {
        /// The topic.
        topic: String,
        /// Its partition count now.
        partitions: usize,
    },
    /// A partition got a new leader (`from` -1: it had none).
    LeaderMoved {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The previous leader, or -1.
        from: i32,
        /// The new leader.
        to: i32,
        /// The new leader epoch.
        epoch: i32,
    },
    /// A partition lost its leader: no replica can lead it (offline).
    NoLeader {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The leader epoch.
        epoch: i32,
    },
    /// A partition's ISR lost members.
    IsrShrank {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The ISR now.
        isr: Vec<i32>,
    },
    /// A partition's ISR gained members.
    IsrExpanded {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The ISR now.
        isr: Vec<i32>,
    },
    /// A partition's ISR both lost and gained members (a reassignment completing).
    IsrChanged {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The ISR now.
        isr: Vec<i32>,
    },
    /// Summary: the leaders of `count` partitions of `topic` changed (an internal topic).
    LeadersMoved {
        /// The topic.
        topic: String,
        /// How many partitions.
        count: usize,
    },
    /// Summary: the ISRs of `count` partitions of `topic` changed (an internal topic).
    IsrsChanged {
        /// The topic.
        topic: String,
        /// How many partitions.
        count: usize,
    },
}

/// `[1,2,3]`, as Kafka's tools print replica lists.
struct Ids<'a>(&'a [i32]);

impl fmt::Display for Ids<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str("]")
    }
}

/// A broker id, or `none` for -1.
struct Node(i32);

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            f.write_str("none")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl fmt::Display for ClusterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClusterEvent::*;
        match self {
            ControllerElected { node, epoch } => {
                write!(f, "controller elected: node {node} at epoch {epoch}")
            }
            NoController => f.write_str("no active controller"),
            BrokerRegistered(b) => write!(f, "broker {b} registered"),
            BrokerFenced(b) => write!(f, "broker {b} fenced"),
            BrokerUnfenced(b) => write!(f, "broker {b} unfenced"),
            BrokerShuttingDown(b) => write!(f, "broker {b} is shutting down"),
            BrokerGone(b) => write!(f, "broker {b} gone"),
            TopicCreated { topic, partitions } => {
                let s = if *partitions == 1 { "" } else { "s" };
                write!(f, "topic {topic} created ({partitions} partition{s})")
            }
            TopicDeleted { topic } => write!(f, "topic {topic} deleted"),
            PartitionsAdded { topic, partitions } => {
                write!(f, "topic {topic} now has {partitions} partitions")
            }
            LeaderMoved {
                topic,
                partition,
                from,
                to,
                epoch,
            } => write!(
                f,
                "leader of {topic}-{partition} moved {} -> {to} at epoch {epoch}",
                Node(*from)
            ),
            NoLeader {
                topic,
                partition,
                epoch,
            } => write!(f, "{topic}-{partition} has no leader (epoch {epoch})"),
            IsrShrank {
                topic,
                partition,
                isr,
            } => write!(f, "ISR of {topic}-{partition} shrank to {}", Ids(isr)),
            IsrExpanded {
                topic,
                partition,
                isr,
            } => write!(f, "ISR of {topic}-{partition} expanded to {}", Ids(isr)),
            IsrChanged {
                topic,
                partition,
                isr,
            } => write!(f, "ISR of {topic}-{partition} changed to {}", Ids(isr)),
            LeadersMoved { topic, count } => {
                write!(f, "moved the leaders of {count} {topic} partitions")
            }
            IsrsChanged { topic, count } => {
                write!(f, "changed the ISR of {count} {topic} partitions")
            }
        }
    }
}

impl ClusterEvent {
    /// The event of a partition whose leader went from `from` to `to` (`None` when it did not
    /// change).
    pub fn leader_change(
        topic: &str,
        partition: i32,
        from: i32,
        to: i32,
        epoch: i32,
    ) -> Option<ClusterEvent> {
        if from == to {
            return None;
        }
        let topic = topic.to_owned();
        Some(if to < 0 {
            ClusterEvent::NoLeader {
                topic,
                partition,
                epoch,
            }
        } else {
            ClusterEvent::LeaderMoved {
                topic,
                partition,
                from,
                to,
                epoch,
            }
        })
    }

    /// The event of a partition whose ISR went from `before` to `after` (`None` when it holds
    /// the same brokers).
    pub fn isr_change(
        topic: &str,
        partition: i32,
        before: &[i32],
        after: &[i32],
    ) -> Option<ClusterEvent> {
        let lost = before.iter().any(|b| !after.contains(b));
        let gained = after.iter().any(|b| !before.contains(b));
        let topic = topic.to_owned();
        let isr = after.to_vec();
        match (lost, gained) {
            (false, false) => None,
            (true, false) => Some(ClusterEvent::IsrShrank {
                topic,
                partition,
                isr,
            }),
            (false, true) => Some(ClusterEvent::IsrExpanded {
                topic,
                partition,
                isr,
            }),
            (true, true) => Some(ClusterEvent::IsrChanged {
                topic,
                partition,
                isr,
            }),
        }
    }

    /// The topic of a per-partition event.
    fn partition_topic(&self) -> Option<(&str, bool)> {
        use ClusterEvent::*;
        match self {
            LeaderMoved { topic, .. } | NoLeader { topic, .. } => Some((topic, true)),
            IsrShrank { topic, .. } | IsrExpanded { topic, .. } | IsrChanged { topic, .. } => {
                Some((topic, false))
            }
            _ => None,
        }
    }
}

/// Kafka's internal topics, whose many partitions are summarized rather than listed.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

/// How many per-partition events of one kind a topic may have in one batch before they are
/// summarized (a broker fenced with thousands of leaderships gives one line, not thousands).
pub const LISTED_PER_TOPIC: usize = 10;

/// Replaces a topic's per-partition events of one kind (leaders, ISRs) by one summary at the
/// place of the first: for an internal topic when there is more than one, for any other when
/// there are more than [`LISTED_PER_TOPIC`]; everything else is kept in order.
pub fn summarize(events: Vec<ClusterEvent>) -> Vec<ClusterEvent> {
    let mut counts: BTreeMap<(String, bool), usize> = BTreeMap::new();
    for e in &events {
        if let Some((topic, leaders)) = e.partition_topic() {
            *counts.entry((topic.to_owned(), leaders)).or_default() += 1;
        }
    }
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let Some((topic, leaders)) = e.partition_topic() else {
            out.push(e);
            continue;
        };
        let listed = if is_internal_topic(topic) {
            1
        } else {
            LISTED_PER_TOPIC
        };
        let key = (topic.to_owned(), leaders);
        match counts.get(&key).copied() {
            Some(count) if count > listed => {
                let (topic, leaders) = key.clone();
                out.push(if leaders {
                    ClusterEvent::LeadersMoved { topic, count }
                } else {
                    ClusterEvent::IsrsChanged { topic, count }
                });
                // Later events of the same kind are in the summary.
                counts.insert(key, 0);
            }
            Some(0) => {}
            _ => out.push(e),
        }
    }
    out
}

/// The events `records` cause when applied to `image` (the image they were decided against),
/// in record order, summarized ([`summarize`]). A topic created in the batch gets one event,
/// not one per partition; records about unknown topics give none.
pub fn from_records(image: &MetadataImage, records: &[MetadataRecord]) -> Vec<ClusterEvent> {
    // Topics created in this batch: id -> (name, partitions seen).
    let mut created: Vec<(Uuid, String, usize)> = Vec::new();
    let mut grown: BTreeMap<Uuid, usize> = BTreeMap::new();
    let mut events = Vec::new();
    for record in records {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                events.push(ClusterEvent::BrokerRegistered(r.broker_id))
            }
            MetadataRecord::FenceBroker { broker_id, .. } => {
                events.push(ClusterEvent::BrokerFenced(*broker_id))
            }
            MetadataRecord::UnfenceBroker { broker_id, .. } => {
                events.push(ClusterEvent::BrokerUnfenced(*broker_id))
            }
            MetadataRecord::BrokerControlledShutdown { broker_id, .. } => {
                events.push(ClusterEvent::BrokerShuttingDown(*broker_id))
            }
            MetadataRecord::Topic(t) => created.push((t.id, t.name.clone(), 0)),
            MetadataRecord::PartitionChange(p) => {
                if let Some(c) = created.iter_mut().find(|c| c.0 == p.topic_id) {
                    c.2 += 1;
                    continue;
                }
                let Some(topic) = image.topic_by_id(&p.topic_id) else {
                    continue;
                };
                let Some(before) = topic.partitions.get(p.partition as usize) else {
                    // A partition added by CreatePartitions.
                    let count = grown.entry(topic.id).or_insert(topic.partitions.len());
                    *count = (*count).max(p.partition as usize + 1);
                    continue;
                };
                events.extend(ClusterEvent::leader_change(
                    &topic.name,
                    p.partition,
                    before.leader,
                    p.leader,
                    p.leader_epoch,
                ));
                events.extend(ClusterEvent::isr_change(
                    &topic.name,
                    p.partition,
                    &before.isr,
                    &p.isr,
                ));
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(topic) = image.topic_by_id(topic_id) {
                    events.push(ClusterEvent::TopicDeleted {
                        topic: topic.name.clone(),
                    });
                }
            }
            MetadataRecord::TopicConfigs { .. }
            | MetadataRecord::ProducerIdBlock { .. }
            | MetadataRecord::Unknown => {}
        }
    }
    for (_, topic, partitions) in created {
        events.push(ClusterEvent::TopicCreated { topic, partitions });
    }
    for (id, partitions) in grown {
        if let Some(topic) = image.topic_by_id(&id) {
            events.push(ClusterEvent::PartitionsAdded {
                topic: topic.name.clone(),
                partitions,
            });
        }
    }
    summarize(events)
}

/// Writes each event as one line of the node's log: INFO, except the ISR changes of single
/// internal-topic partitions (DEBUG), which come one AlterPartition at a time and would
/// otherwise flood the log with 50 lines whenever a broker rejoins.
pub fn log(events: &[ClusterEvent]) {
    for e in events {
        match e.partition_topic() {
            Some((topic, false)) if is_internal_topic(topic) => tracing::debug!("{e}"),
            _ => tracing::info!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decisions::fence_broker;
    use crate::decisions::testing::Cluster;
    use crate::image::PartitionImage;

    fn lines(events: &[ClusterEvent]) -> Vec<String> {
        events.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn wording() {
        let e = ClusterEvent::leader_change("orders", 0, 3, 2, 7).unwrap();
        assert_eq!(e.to_string(), "leader of orders-0 moved 3 -> 2 at epoch 7");
        let e = ClusterEvent::leader_change("orders", 1, 3, -1, 5).unwrap();
        assert_eq!(e.to_string(), "orders-1 has no leader (epoch 5)");
        let e = ClusterEvent::leader_change("orders", 1, -1, 2, 6).unwrap();
        assert_eq!(
            e.to_string(),
            "leader of orders-1 moved none -> 2 at epoch 6"
        );
        assert_eq!(ClusterEvent::leader_change("orders", 1, 2, 2, 6), None);
        let e = ClusterEvent::isr_change("orders", 0, &[1, 2, 3], &[1, 2]).unwrap();
        assert_eq!(e.to_string(), "ISR of orders-0 shrank to [1,2]");
        let e = ClusterEvent::isr_change("orders", 0, &[1, 2], &[1, 2, 3]).unwrap();
        assert_eq!(e.to_string(), "ISR of orders-0 expanded to [1,2,3]");
        let e = ClusterEvent::isr_change("orders", 0, &[1, 2], &[2, 3]).unwrap();
        assert_eq!(e.to_string(), "ISR of orders-0 changed to [2,3]");
        assert_eq!(
            ClusterEvent::isr_change("orders", 0, &[1, 2], &[2, 1]),
            None
        );
        assert_eq!(
            ClusterEvent::ControllerElected { node: 2, epoch: 7 }.to_string(),
            "controller elected: node 2 at epoch 7"
        );
        assert_eq!(ClusterEvent::BrokerFenced(3).to_string(), "broker 3 fenced");
        assert_eq!(
            ClusterEvent::TopicCreated {
                topic: "orders".into(),
                partitions: 3
            }
            .to_string(),
            "topic orders created (3 partitions)"
        );
        assert_eq!(
            ClusterEvent::LeadersMoved {
                topic: "__consumer_offsets".into(),
                count: 17
            }
            .to_string(),
            "moved the leaders of 17 __consumer_offsets partitions"
        );
    }

    #[test]
    fn fencing_a_broker_moves_its_leaders_and_shrinks_its_isrs() {
        let mut c = Cluster::new(&[1, 2, 3]);
        c.create_manual("orders", vec![vec![3, 1, 2], vec![1, 2, 3], vec![3, 1, 2]]);
        // Only 3 is in sync for partition 2: nobody else may lead it.
        let p2 = PartitionImage {
            isr: vec![3],
            ..c.partition("orders", 2)
        };
        c.set("orders", p2);
        let records = fence_broker(&c.image, 3, &c.settings);
        let events = from_records(&c.image, &records);
        assert_eq!(
            lines(&events),
            [
                "broker 3 fenced",
                "leader of orders-0 moved 3 -> 1 at epoch 1",
                "ISR of orders-0 shrank to [1,2]",
                "ISR of orders-1 shrank to [1,2]",
                "orders-2 has no leader (epoch 1)",
            ]
        );
    }

    #[test]
    fn creation_deletion_and_growth_are_one_line_each() {
        let mut c = Cluster::new(&[1, 2, 3]);
        let t = NewTopicFixture::records(&c, "orders", 3);
        assert_eq!(
            lines(&from_records(&c.image, &t)),
            ["topic orders created (3 partitions)"]
        );
        c.commit(t);
        let id = c.topic_id("orders");
        let mut p = c.partition("orders", 0);
        p.index = 3;
        let grow = vec![MetadataRecord::PartitionChange(p.to_record(id))];
        assert_eq!(
            lines(&from_records(&c.image, &grow)),
            ["topic orders now has 4 partitions"]
        );
        let remove = vec![MetadataRecord::RemoveTopic { topic_id: id }];
        assert_eq!(
            lines(&from_records(&c.image, &remove)),
            ["topic orders deleted"]
        );
    }

    #[test]
    fn internal_topics_are_summarized() {
        let mut c = Cluster::new(&[1, 2, 3]);
        let offsets: Vec<Vec<i32>> = (0..50)
            .map(|i| match i % 3 {
                0 => vec![1, 2, 3],
                1 => vec![2, 3, 1],
                _ => vec![3, 1, 2],
            })
            .collect();
        c.create_manual("__consumer_offsets", offsets);
        c.create_manual("orders", vec![vec![1, 2]]);
        let records = fence_broker(&c.image, 1, &c.settings);
        let events = from_records(&c.image, &records);
        assert_eq!(
            lines(&events),
            [
                "broker 1 fenced",
                "moved the leaders of 17 __consumer_offsets partitions",
                "changed the ISR of 50 __consumer_offsets partitions",
                "leader of orders-0 moved 1 -> 2 at epoch 1",
                "ISR of orders-0 shrank to [2]",
            ]
        );
        // A single internal partition stays a plain line.
        let one = vec![ClusterEvent::leader_change("__consumer_offsets", 4, 1, 2, 3).unwrap()];
        assert_eq!(summarize(one.clone()), one);
    }

    #[test]
    fn a_topic_with_many_partitions_changed_is_summarized_past_ten() {
        let moves = |n: i32| -> Vec<ClusterEvent> {
            (0..n)
                .map(|p| ClusterEvent::leader_change("orders", p, 1, 2, 3).unwrap())
                .collect()
        };
        assert_eq!(summarize(moves(10)), moves(10));
        assert_eq!(
            lines(&summarize(moves(11))),
            ["moved the leaders of 11 orders partitions"]
        );
    }

    #[test]
    fn a_completed_reassignment_changes_leader_and_isr() {
        let mut c = Cluster::new(&[1, 2, 3, 4]);
        c.create_manual("orders", vec![vec![1, 2]]);
        // The reassignment to [3,4] completes: the ISR becomes the target, 3 leads.
        let before = c.partition("orders", 0);
        let after = PartitionImage {
            leader: 3,
            leader_epoch: before.leader_epoch + 1,
            partition_epoch: before.partition_epoch + 1,
            replicas: vec![3, 4],
            isr: vec![3, 4],
            ..before
        };
        let id = c.topic_id("orders");
        let records = vec![MetadataRecord::PartitionChange(after.to_record(id))];
        assert_eq!(
            lines(&from_records(&c.image, &records)),
            [
                "leader of orders-0 moved 1 -> 3 at epoch 1",
                "ISR of orders-0 changed to [3,4]",
            ]
        );
    }

    /// The records that create a topic, as the controller decides them.
    struct NewTopicFixture;

    impl NewTopicFixture {
        fn records(c: &Cluster, name: &str, partitions: i32) -> Vec<MetadataRecord> {
            let t = crate::decisions::NewTopic {
                name: name.into(),
                assignment: crate::decisions::Assignment::Auto {
                    partitions,
                    replication_factor: 2,
                },
                configs: BTreeMap::new(),
            };
            crate::decisions::create_topic(
                &c.image,
                &t,
                &std::collections::BTreeSet::new(),
                &mut |_| 0,
            )
            .unwrap()
            .1
        }
    }
}
