//! Validation of a producer's batch before the leader appends it (Kafka's `LogValidator`), and
//! the in-place offset assignment that follows.
//!
//! Everything is checked on the bytes as they arrived, with no decoding into records: framing,
//! magic, size, CRC, the offset range against the record count, control and producer fields,
//! timestamps. Uncompressed batches also have their records walked (lengths and offset deltas)
//! without allocating. Compressed batches are stored as they are; their records are not
//! inspected (Kafka decompresses to validate them; Rivulet leaves that to the consumer's CRC and
//! decoder and keeps the produce path copy-free), except on compacted topics, where
//! [`require_keys`] decompresses them to refuse keyless records, as Kafka does.

use crate::batch::{self, Compression, RecordBatch, TimestampType, NO_TIMESTAMP};
use crate::config::LogConfig;
use crate::{Result, StorageError};

/// What validation learned about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedBatch {
    /// Records in the batch.
    pub records: i32,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// The batch's max timestamp after validation (the append time under LogAppendTime).
    pub max_timestamp: i64,
    /// Size in bytes.
    pub size: usize,
    /// Set when `maxTimestamp` and the timestamp type must be rewritten before the batch is
    /// stored (a `LogAppendTime` topic, or a producer's wrong header): the CRC then changes,
    /// so the batch cannot be written as it arrived.
    pub rewrite_timestamp: Option<TimestampType>,
}

/// Checks `bytes`, which must hold exactly one v2 batch from a client, against `config`,
/// without changing them; what must change before storing is in the result (offsets always,
/// see [`assign_offsets`]; the timestamp header sometimes, see
/// [`ValidatedBatch::rewrite_timestamp`] and [`apply_timestamp_rewrite`]).
pub fn validate_client_batch(
    bytes: &[u8],
    config: &LogConfig,
    now_ms: i64,
) -> Result<ValidatedBatch> {
    if bytes.len() as u64 > config.segment_bytes {
        return Err(StorageError::RecordListTooLarge {
            size: bytes.len(),
            max: config.segment_bytes,
        });
    }
    if bytes.len() > config.max_message_bytes {
        return Err(StorageError::MessageTooLarge {
            size: bytes.len(),
            max: config.max_message_bytes,
        });
    }
    let (count, delta, max_ts) = {
        let b = RecordBatch::new(bytes)?;
        b.verify_crc()?;
        let compression = b.compression()?;
        let count = b.records_count();
        let delta = b.last_offset_delta();
        if count <= 0 {
            return Err(StorageError::InvalidRecord(format!(
                "invalid record count {count}"
            )));
        }
        if delta < 0 || i64::from(delta) + 1 != i64::from(count) {
            return Err(StorageError::InvalidRecord(format!(
                "inconsistent batch: {count} records but last offset delta {delta}"
            )));
        }
        if b.is_control() {
            return Err(StorageError::InvalidRecord(
                "clients may not write control batches".into(),
            ));
        }
        if b.has_producer_id() && b.base_sequence() < 0 {
            return Err(StorageError::InvalidRecord(format!(
                "producer {} sent a batch without a sequence number",
                b.producer_id()
            )));
        }
        let max_ts = if compression == Compression::None {
            b.walk_uncompressed_records()?
        } else {
            b.max_timestamp()
        };
        (count, delta, max_ts)
    };
    let (max_timestamp, rewrite_timestamp) = match config.message_timestamp_type {
        TimestampType::LogAppendTime => (now_ms, Some(TimestampType::LogAppendTime)),
        TimestampType::CreateTime => {
            check_timestamp(max_ts, config, now_ms)?;
            let b = RecordBatch::new(bytes)?;
            // A producer's wrong header is corrected, as Kafka does.
            let wrong =
                b.max_timestamp() != max_ts || b.timestamp_type() != TimestampType::CreateTime;
            (max_ts, wrong.then_some(TimestampType::CreateTime))
        }
    };
    Ok(ValidatedBatch {
        records: count,
        last_offset_delta: delta,
        max_timestamp,
        size: bytes.len(),
        rewrite_timestamp,
    })
}

fn check_timestamp(ts: i64, config: &LogConfig, now_ms: i64) -> Result<()> {
    if ts == NO_TIMESTAMP {
        return Ok(());
    }
    if ts < 0 {
        return Err(StorageError::InvalidTimestamp(format!(
            "negative timestamp {ts}"
        )));
    }
    if now_ms.saturating_sub(ts) > config.message_timestamp_before_max_ms {
        return Err(StorageError::InvalidTimestamp(format!(
            "timestamp {ts} is more than message.timestamp.before.max.ms before {now_ms}"
        )));
    }
    if ts.saturating_sub(now_ms) > config.message_timestamp_after_max_ms {
        return Err(StorageError::InvalidTimestamp(format!(
            "timestamp {ts} is more than message.timestamp.after.max.ms after {now_ms}"
        )));
    }
    Ok(())
}

/// Refuses a batch holding a record without a key, for a topic whose `cleanup.policy` includes
/// `compact` (compaction keeps the latest record per key; a keyless record has none). Kafka
/// answers `INVALID_RECORD` with this message. Compressed batches are decompressed to look
/// (at most [`crate::compression::MAX_DECOMPRESSED_BATCH_BYTES`]), as Kafka does for them.
pub fn require_keys(bytes: &[u8], topic_partition: &crate::TopicPartition) -> Result<()> {
    let b = RecordBatch::new(bytes)?;
    let mut keyless = false;
    crate::compression::for_each_record(
        &b,
        crate::compression::MAX_DECOMPRESSED_BATCH_BYTES,
        |r| {
            keyless = r.key.is_none();
            !keyless
        },
    )?;
    if keyless {
        return Err(StorageError::InvalidRecord(format!(
            "Compacted topic cannot accept message without key in topic partition \
             {topic_partition}."
        )));
    }
    Ok(())
}

/// Applies [`ValidatedBatch::rewrite_timestamp`] to a copy of the batch the caller owns.
pub fn apply_timestamp_rewrite(bytes: &mut [u8], validated: &ValidatedBatch) {
    if let Some(timestamp_type) = validated.rewrite_timestamp {
        batch::set_max_timestamp(bytes, timestamp_type, validated.max_timestamp);
    }
}

/// Writes the leader's base offset and epoch into the batch, in place.
pub fn assign_offsets(bytes: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch::set_base_offset(bytes, base_offset);
    batch::set_partition_leader_epoch(bytes, leader_epoch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::testing::*;

    fn cfg() -> LogConfig {
        LogConfig::default()
    }

    #[test]
    fn accepts_a_good_batch_and_keeps_crc_valid() {
        let mut b = build_batch(&BatchSpec::default(), &[b"a", b"b"]);
        let v = validate_client_batch(&b, &cfg(), 1_700_000_000_500).unwrap();
        assert_eq!((v.records, v.last_offset_delta), (2, 1));
        assign_offsets(&mut b, 1234, 9);
        let view = RecordBatch::new(&b).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(view.base_offset(), 1234);
    }

    #[test]
    fn too_large_is_message_too_large() {
        let b = batch_of(&BatchSpec::default(), 10, 200);
        let c = LogConfig {
            max_message_bytes: 1000,
            ..cfg()
        };
        assert!(matches!(
            validate_client_batch(&b, &c, 0),
            Err(StorageError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn larger_than_a_segment_is_record_list_too_large() {
        let b = batch_of(&BatchSpec::default(), 10, 200);
        let c = LogConfig {
            segment_bytes: 1000,
            ..cfg()
        };
        assert!(matches!(
            validate_client_batch(&b, &c, 0),
            Err(StorageError::RecordListTooLarge { .. })
        ));
    }

    #[test]
    fn bad_crc_is_corrupt_message() {
        let mut b = build_batch(&BatchSpec::default(), &[b"abc"]);
        let n = b.len();
        b[n - 3] ^= 1;
        assert!(matches!(
            validate_client_batch(&b, &cfg(), 0),
            Err(StorageError::CorruptMessage(_))
        ));
    }

    #[test]
    fn two_batches_are_invalid() {
        let a = build_batch(&BatchSpec::default(), &[b"abc"]);
        let two = [a.clone(), a].concat();
        assert!(matches!(
            validate_client_batch(&two, &cfg(), 0),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn producer_without_sequence_is_invalid() {
        let spec = BatchSpec {
            producer_id: 5,
            producer_epoch: 0,
            base_sequence: -1,
            ..Default::default()
        };
        let b = build_batch(&spec, &[b"x"]);
        assert!(matches!(
            validate_client_batch(&b, &cfg(), 0),
            Err(StorageError::InvalidRecord(_))
        ));
    }

    #[test]
    fn log_append_time_stamps_the_batch() {
        let mut b = build_batch(&BatchSpec::default(), &[b"x"]);
        let c = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..cfg()
        };
        let v = validate_client_batch(&b, &c, 42).unwrap();
        assert_eq!(v.max_timestamp, 42);
        assert_eq!(v.rewrite_timestamp, Some(TimestampType::LogAppendTime));
        apply_timestamp_rewrite(&mut b, &v);
        let view = RecordBatch::new(&b).unwrap();
        assert_eq!(view.timestamp_type(), TimestampType::LogAppendTime);
        view.verify_crc().unwrap();
    }

    #[test]
    fn timestamps_out_of_range_are_refused() {
        let b = build_batch(&BatchSpec::default(), &[b"x"]);
        let c = LogConfig {
            message_timestamp_before_max_ms: 1000,
            ..cfg()
        };
        let now = BatchSpec::default().base_timestamp + 5000;
        assert!(matches!(
            validate_client_batch(&b, &c, now),
            Err(StorageError::InvalidTimestamp(_))
        ));
    }
}
