//! The Raft-replicated metadata quorum that replaces ZooKeeper.
//!
//! ```text
//!  broker ──gRPC ControllerService──▶ active controller (QuorumController task)
//!                                        │ decisions::* (pure: image + request → records)
//!                                        ▼
//!                                   openraft log (sled) ──replicated──▶ other voters
//!                                        │ committed
//!                                        ▼
//!                         MetadataStateMachine → MetadataImage + MetadataFeed
//!                                        │
//!  broker ◀──gRPC FetchMetadata stream───┘  (snapshot, then deltas from an offset)
//! ```
//!
//! * [`records`]: the versioned metadata records and deltas.
//! * [`image`]: the immutable metadata image and how records apply to it.
//! * [`decisions`]: what the active controller decides (placement, elections, controlled
//!   shutdown, reassignments, epoch checks).
//! * [`quorum_controller`]: the task that serializes requests and proposes records.
//! * [`session_streams`]: which brokers' session streams to this voter are open (fast fencing of
//!   a broker whose process died).
//! * [`raft`]: openraft's storage (sled), state machine and network.
//! * [`grpc`]: the services and the client brokers use.
//! * [`node`]: a whole voter, started and stopped.
//! * [`events`]: cluster changes worded for operators (node logs, `rivulet cluster watch`).
//! * [`quorum_state`]: what this node knows of the quorum (DescribeQuorum).
//!
//! The Raft term is the controller epoch and the Raft log index the metadata offset; a broker's
//! epoch is the offset of its registration record.

pub mod decisions;
pub mod error;
pub mod events;
pub mod grpc;
pub mod ids;
pub mod image;
pub mod node;
pub mod placement;
pub mod quorum_controller;
pub mod quorum_state;
// openraft's traits fix the error type (`StorageError`, 224 bytes); helpers return it as is.
#[allow(clippy::result_large_err)]
pub mod raft;
pub mod records;
pub mod session_streams;
pub mod topic_name;

pub use decisions::{
    Assignment, ElectionType, NewPartitions, NewTopic, PartitionResult, Reassignment, Settings,
    TopicConfigChange, TopicRef,
};
pub use error::MetadataError;
pub use events::ClusterEvent;
pub use grpc::client::{ControllerClient, MetadataUpdate, Registration, Voter};
pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use node::{ControllerConfig, ControllerError, ControllerNode};
pub use quorum_controller::{Controller, HeartbeatReply, PartitionResults};
pub use quorum_state::{QuorumState, QuorumView, ReplicaProgress};
