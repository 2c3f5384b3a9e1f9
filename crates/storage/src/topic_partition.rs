//! [`TopicPartition`], the name of one partition, and its directory name `<topic>-<partition>`.

use std::fmt;

/// A topic name and partition index, as Kafka names a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name (Kafka's rules: `[a-zA-Z0-9._-]`, at most 249 characters).
    pub topic: String,
    /// Partition index, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// A partition of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition's directory name under a log dir: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name made by [`TopicPartition::dir_name`]. The topic may itself
    /// contain `-`, so the partition is what follows the last one.
    pub fn from_dir_name(name: &str) -> Option<Self> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let partition = partition.parse().ok()?;
        Some(TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_name_round_trips_with_dashes_in_topic() {
        let tp = TopicPartition::new("my-topic-v2", 17);
        assert_eq!(tp.dir_name(), "my-topic-v2-17");
        assert_eq!(TopicPartition::from_dir_name("my-topic-v2-17"), Some(tp));
    }

    #[test]
    fn rejects_names_without_partition() {
        assert_eq!(TopicPartition::from_dir_name("topic"), None);
        assert_eq!(TopicPartition::from_dir_name("topic-"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("topic-x1"), None);
        // "topic-" is a legal topic name: the partition follows the last dash.
        assert_eq!(
            TopicPartition::from_dir_name("topic--1"),
            Some(TopicPartition::new("topic-", 1))
        );
    }
}
