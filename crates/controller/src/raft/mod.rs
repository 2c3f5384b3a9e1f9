//! The Raft side of the quorum: openraft's type configuration, the sled-backed log
//! ([`log_store::SledLogStore`]), the state machine that turns committed entries into metadata
//! images ([`state_machine::MetadataStateMachine`]), and the gRPC transport between voters
//! ([`network::GrpcNetworkFactory`]).
//!
//! The Raft term is the controller epoch, and the Raft log index is the metadata offset.

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::records::MetadataRecord;

/// One Raft entry's payload: records committed atomically (all or none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch(pub Vec<MetadataRecord>);

openraft::declare_raft_types!(
    /// The quorum's openraft types: record batches in, nothing out (the caller reads the
    /// image after the write has been applied).
    pub TypeConfig:
        D = RecordBatch,
        R = (),
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A Raft instance of the quorum.
pub type Raft = openraft::Raft<TypeConfig>;

/// openraft's storage error for this config.
pub type StorageError = openraft::StorageError<u64>;

/// Wraps an I/O or encoding failure as openraft's storage error.
pub(crate) fn storage_error(
    subject: openraft::ErrorSubject<u64>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    openraft::StorageError::from(openraft::StorageIOError::new(
        subject,
        verb,
        openraft::AnyError::error(e.to_string()),
    ))
}
