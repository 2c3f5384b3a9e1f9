//! The coordinator's records in `__consumer_offsets`: a batch to append, and the records of
//! batches read back when a coordinator loads a partition.
//!
//! Keys and values use Kafka's formats ([`rivulet_protocol::group_records`]): a committed
//! offset is keyed by (group, topic, partition), a group's membership by its id; a null value
//! (tombstone) deletes the key, which compaction later drops. Batches are encoded and decoded
//! with `kafka-protocol`'s record codec: this is not a hot path (one batch per commit, one pass
//! over the partition per coordinator failover).

use bytes::{Bytes, BytesMut};
use rivulet_protocol::group_records::{
    GroupMetadataValue, GroupRecordError, GroupRecordKey, OffsetCommitValue,
};
use rivulet_protocol::kafka_protocol::indexmap::IndexMap;
use rivulet_protocol::kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rivulet_storage::batch::BatchIter;

use super::group::CommittedOffset;

/// A record to write: key and value (`None`: a tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

/// The record of a committed offset.
pub fn offset_commit(
    group: &str,
    topic: &str,
    partition: i32,
    value: &CommittedOffset,
) -> KeyValue {
    let key = GroupRecordKey::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    let value = OffsetCommitValue {
        offset: value.offset,
        leader_epoch: value.leader_epoch,
        metadata: value.metadata.clone(),
        commit_timestamp: value.commit_timestamp,
        expire_timestamp: -1,
    };
    (key.encode(), Some(value.encode()))
}

/// The tombstone of a committed offset.
pub fn offset_tombstone(group: &str, topic: &str, partition: i32) -> KeyValue {
    let key = GroupRecordKey::Offset {
        group: group.to_owned(),
        topic: topic.to_owned(),
        partition,
    };
    (key.encode(), None)
}

/// The record of a group's membership.
pub fn group_metadata(group: &str, value: &GroupMetadataValue) -> KeyValue {
    let key = GroupRecordKey::Group {
        group: group.to_owned(),
    };
    (key.encode(), Some(value.encode()))
}

/// The tombstone of a group.
pub fn group_tombstone(group: &str) -> KeyValue {
    let key = GroupRecordKey::Group {
        group: group.to_owned(),
    };
    (key.encode(), None)
}

/// One uncompressed v2 batch holding `records`, timestamped `now_ms`.
pub fn encode_batch(records: &[KeyValue], now_ms: i64) -> Result<Bytes, String> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch wherever `offset - sequence` changes and derives
            // the base sequence from the first record: -1, 0, 1, ... keep every record in the
            // one batch the log appends, with base sequence -1 (no producer).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: Some(key.clone()),
            value: value.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// A record read back from `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadedRecord {
    /// A committed offset, or its tombstone (`None`).
    Offset {
        /// Group.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The commit, or `None` for a tombstone.
        value: Option<OffsetCommitValue>,
    },
    /// A group's membership, or its tombstone (`None`).
    Group {
        /// Group.
        group: String,
        /// The membership, or `None` for a tombstone.
        value: Option<GroupMetadataValue>,
    },
}

/// Why a batch read back could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The batch framing or codec failed.
    #[error("undecodable batch in __consumer_offsets: {0}")]
    Batch(String),
    /// A key or value failed to decode.
    #[error("undecodable record in __consumer_offsets: {0}")]
    Record(#[from] GroupRecordError),
}

/// Decodes whole batches from `buf`, calling `each(offset, record)` for every coordinator
/// record (control batches and keys of other coordinators are skipped). Returns the offset
/// after the last whole batch, or `None` if `buf` held none.
pub fn decode_batches(
    buf: &Bytes,
    mut each: impl FnMut(i64, LoadedRecord),
) -> Result<Option<i64>, LoadError> {
    let mut next = None;
    let mut start = 0usize;
    for batch in BatchIter::new(buf, usize::MAX) {
        let batch = batch.map_err(|e| LoadError::Batch(e.to_string()))?;
        let size = batch.size();
        next = Some(batch.next_offset());
        let control = batch.is_control();
        let mut bytes = buf.slice(start..start + size);
        start += size;
        if control {
            continue;
        }
        let set =
            RecordBatchDecoder::decode(&mut bytes).map_err(|e| LoadError::Batch(e.to_string()))?;
        for record in set.records {
            let Some(key) = record.key else { continue };
            let loaded = match GroupRecordKey::decode(&key)? {
                GroupRecordKey::Offset {
                    group,
                    topic,
                    partition,
                } => LoadedRecord::Offset {
                    group,
                    topic,
                    partition,
                    value: record
                        .value
                        .map(|v| OffsetCommitValue::decode(&v))
                        .transpose()?,
                },
                GroupRecordKey::Group { group } => LoadedRecord::Group {
                    group,
                    value: record
                        .value
                        .map(|v| GroupMetadataValue::decode(&v))
                        .transpose()?,
                },
                GroupRecordKey::Other(_) => continue,
            };
            each(record.offset, loaded);
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_batch_reads_back_with_offsets_and_tombstones() {
        let commit = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1000,
            log_offset: -1,
        };
        let group = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 2,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            current_state_timestamp: 5,
            members: vec![],
        };
        let batch = encode_batch(
            &[
                offset_commit("g", "t", 1, &commit),
                group_metadata("g", &group),
                offset_tombstone("g", "t", 2),
                group_tombstone("h"),
            ],
            1000,
        )
        .unwrap();
        let batches: Vec<_> = BatchIter::new(&batch, usize::MAX)
            .map(|b| b.map(|b| (b.size(), b.base_sequence())).unwrap())
            .collect();
        assert_eq!(
            batches,
            vec![(batch.len(), -1)],
            "one batch: the log appends one"
        );
        let mut seen = Vec::new();
        let next = decode_batches(&batch, |o, r| seen.push((o, r))).unwrap();
        assert_eq!(next, Some(4));
        assert_eq!(seen.len(), 4);
        assert!(
            matches!(&seen[0], (0, LoadedRecord::Offset { value: Some(v), partition: 1, .. }) if v.offset == 42 && v.leader_epoch == 3)
        );
        assert!(
            matches!(&seen[1], (1, LoadedRecord::Group { value: Some(v), .. }) if v.generation == 2)
        );
        assert!(matches!(
            &seen[2],
            (
                2,
                LoadedRecord::Offset {
                    value: None,
                    partition: 2,
                    ..
                }
            )
        ));
        assert!(
            matches!(&seen[3], (3, LoadedRecord::Group { value: None, group }) if group == "h")
        );
        assert_eq!(decode_batches(&Bytes::new(), |_, _| {}).unwrap(), None);
    }
}
