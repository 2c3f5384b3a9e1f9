//! [`Cluster`]: an image built the way the controller builds it, by applying records, for the
//! decision tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::*;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::{MetadataDelta, MetadataRecord};

/// An image and the settings the decisions run with.
pub struct Cluster {
    /// The image after every committed record.
    pub image: MetadataImage,
    /// Decision settings.
    pub settings: Settings,
}

impl Cluster {
    /// Brokers `brokers`, registered and unfenced.
    pub fn new(brokers: &[i32]) -> Cluster {
        let mut c = Cluster {
            image: MetadataImage::empty("test"),
            settings: Settings::default(),
        };
        for &b in brokers {
            let reg = BrokerRegistration {
                broker_id: b,
                incarnation_id: Uuid::new_v4(),
                endpoints: BTreeMap::from([(
                    "PLAINTEXT".to_string(),
                    ("127.0.0.1".to_string(), 9000 + b as u16),
                )]),
                rack: None,
            };
            let records = register_broker(&c.image, &reg, false, &c.settings).unwrap();
            c.commit(records);
            let records = unfence_broker(&c.image, b, &c.settings);
            c.commit(records);
        }
        c
    }

    /// Applies `records` as the next entry; returns its offset.
    pub fn commit(&mut self, records: Vec<MetadataRecord>) -> i64 {
        let offset = self.image.offset + 1;
        self.image.apply_delta(&MetadataDelta {
            offset,
            controller_epoch: 1,
            controller_id: 1,
            records: Arc::from(records),
        });
        offset
    }

    /// Creates topic `name` with the controller's placement.
    pub fn create(&mut self, name: &str, partitions: i32, rf: i32) -> TopicImage {
        let t = NewTopic {
            name: name.into(),
            assignment: Assignment::Auto {
                partitions,
                replication_factor: rf,
            },
            configs: BTreeMap::new(),
        };
        let (topic, records) = create_topic(&self.image, &t, &BTreeSet::new(), &mut |_| 0).unwrap();
        self.commit(records);
        assert_eq!(self.image.topics[name], topic);
        topic
    }

    /// Partition `i` of `topic`.
    pub fn partition(&self, topic: &str, i: i32) -> PartitionImage {
        self.image.partition(topic, i).unwrap().clone()
    }
}

impl Cluster {
    /// Creates topic `name` with the given replicas per partition (first replica leads).
    pub fn create_manual(&mut self, name: &str, assignment: Vec<Vec<i32>>) -> TopicImage {
        let t = NewTopic {
            name: name.into(),
            assignment: Assignment::Manual(assignment),
            configs: BTreeMap::new(),
        };
        let (topic, records) = create_topic(&self.image, &t, &BTreeSet::new(), &mut |_| 0).unwrap();
        self.commit(records);
        topic
    }

    /// Fences `broker`.
    pub fn fence(&mut self, broker: i32) {
        let records = fence_broker(&self.image, broker, &self.settings);
        self.commit(records);
    }

    /// Registers `broker` again (a new process): a new broker epoch, fenced.
    pub fn register(&mut self, broker: i32) {
        let reg = BrokerRegistration {
            broker_id: broker,
            incarnation_id: Uuid::new_v4(),
            endpoints: BTreeMap::new(),
            rack: None,
        };
        let records = register_broker(&self.image, &reg, false, &self.settings).unwrap();
        self.commit(records);
    }

    /// Unfences `broker`.
    pub fn unfence(&mut self, broker: i32) {
        let records = unfence_broker(&self.image, broker, &self.settings);
        self.commit(records);
    }

    /// Sets partition `i` of `topic` to `state` directly (a state reached by replication and
    /// AlterPartition, which these tests skip).
    pub fn set(&mut self, topic: &str, state: PartitionImage) {
        let id = self.image.topics[topic].id;
        self.commit(vec![MetadataRecord::PartitionChange(state.to_record(id))]);
    }

    /// The id of `topic`.
    pub fn topic_id(&self, topic: &str) -> Uuid {
        self.image.topics[topic].id
    }
}
