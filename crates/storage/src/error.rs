//! The storage crate's error type.
//!
//! Errors fall into two groups. Rejections of a request (a bad batch, a stale producer, an offset
//! outside the log) leave the log unchanged and are mapped by the broker, in one place, to Kafka
//! error codes; each variant's doc names the code. I/O and on-disk corruption errors are about the
//! log directory itself: the broker treats them as `KAFKA_STORAGE_ERROR` for the partition.

use std::io;
use std::path::{Path, PathBuf};

/// Result with [`StorageError`] as the default error.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O error on a file of the log. Kafka: `KAFKA_STORAGE_ERROR`.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A batch whose bytes are damaged: bad CRC, impossible lengths, truncated. Kafka:
    /// `CORRUPT_MESSAGE`.
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    /// A well-formed batch that breaks a rule: record count not matching the offset delta,
    /// several batches where one is required, non-monotonic offsets. Kafka: `INVALID_RECORD`.
    #[error("invalid record batch: {0}")]
    InvalidRecord(String),
    /// A batch larger than `max.message.bytes` (or a segment). Kafka: `MESSAGE_TOO_LARGE`.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Size of the offending batch in bytes.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A batch larger than a whole segment (`segment.bytes`): it could never be stored. Kafka:
    /// `RECORD_LIST_TOO_LARGE`.
    #[error("record batch of {size} bytes exceeds segment.bytes ({max})")]
    RecordListTooLarge {
        /// Size of the offending batch in bytes.
        size: usize,
        /// The segment size in force.
        max: u64,
    },
    /// A batch whose timestamps are out of the allowed range. Kafka: `INVALID_TIMESTAMP`.
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    /// A batch in a message format other than v2 (magic 2). Kafka:
    /// `UNSUPPORTED_FOR_MESSAGE_FORMAT`.
    #[error("unsupported message format: magic {0}")]
    UnsupportedMessageFormat(i8),
    /// An idempotent producer's batch that does not follow its previous one. Kafka:
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    #[error(
        "out of order sequence for producer {producer_id}: expected after {last_sequence}, got {first_sequence}"
    )]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The last sequence the log holds for this producer and epoch (-1 if none).
        last_sequence: i32,
        /// The first sequence of the rejected batch.
        first_sequence: i32,
    },
    /// A batch from an older epoch of a producer than the log has seen. Kafka:
    /// `INVALID_PRODUCER_EPOCH`.
    #[error(
        "producer {producer_id} epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// The producer.
        producer_id: i64,
        /// The epoch in the rejected batch.
        epoch: i16,
        /// The epoch the log holds.
        current_epoch: i16,
    },
    /// A read or truncation at an offset outside `[log start, log end]`. Kafka:
    /// `OFFSET_OUT_OF_RANGE`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The log start offset at the time.
        log_start_offset: i64,
        /// The log end offset at the time.
        log_end_offset: i64,
    },
    /// A file of the log (checkpoint, snapshot, index) that cannot be parsed. Recovery rebuilds
    /// what it can; where it cannot, the partition is unusable: `KAFKA_STORAGE_ERROR`.
    #[error("corrupt file {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        StorageError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// A corrupt-file error for `path`.
    pub fn corrupt_file(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        StorageError::CorruptFile {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    /// True for errors about the log directory itself (I/O, damaged files), as opposed to a
    /// rejection of one request that leaves the log as it was.
    pub fn is_storage_failure(&self) -> bool {
        matches!(
            self,
            StorageError::Io { .. } | StorageError::CorruptFile { .. }
        )
    }
}

/// Adds the path to an `io::Result`.
pub(crate) trait IoContext<T> {
    /// Maps the error to [`StorageError::Io`] on `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
