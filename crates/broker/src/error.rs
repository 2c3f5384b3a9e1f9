//! The one place where errors become Kafka error codes.

use rivulet_protocol::kafka_protocol::ResponseError;
use rivulet_storage::StorageError;

use crate::metadata::MetadataError;

/// The Kafka error code for a storage error: rejections map to their specific codes, failures of
/// the log dir to `KAFKA_STORAGE_ERROR`.
pub fn storage_error_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::CorruptMessage(_) => ResponseError::CorruptMessage,
        StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
        StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::RecordListTooLarge { .. } => ResponseError::RecordListTooLarge,
        StorageError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp,
        StorageError::UnsupportedMessageFormat(_) => ResponseError::UnsupportedForMessageFormat,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Io { .. } | StorageError::CorruptFile { .. } => {
            ResponseError::KafkaStorageError
        }
    }
}

/// The Kafka error code for a metadata error.
pub fn metadata_error_code(e: &MetadataError) -> ResponseError {
    e.response_error()
        .unwrap_or(ResponseError::UnknownServerError)
}
