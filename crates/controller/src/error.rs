//! [`MetadataError`]: why a metadata request was refused, with the Kafka error code each maps to.
//!
//! The same codes cross the gRPC boundary between broker and controller (`ErrorInfo`), so a
//! client sees exactly what the controller decided.

use rivulet_protocol::kafka_protocol::ResponseError;
use uuid::Uuid;

/// Why a metadata change or a controller request was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// `TOPIC_ALREADY_EXISTS`.
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    /// `INVALID_TOPIC_EXCEPTION`: a name breaking Kafka's rules.
    #[error("{0}")]
    InvalidTopic(String),
    /// `INVALID_PARTITIONS`.
    #[error("{0}")]
    InvalidPartitions(String),
    /// `INVALID_REPLICATION_FACTOR`.
    #[error("{0}")]
    InvalidReplicationFactor(String),
    /// `INVALID_REPLICA_ASSIGNMENT`.
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    /// `INVALID_CONFIG`.
    #[error("{0}")]
    InvalidConfig(String),
    /// `UNKNOWN_TOPIC_OR_PARTITION`.
    #[error("Topic '{0}' does not exist.")]
    UnknownTopic(String),
    /// `UNKNOWN_TOPIC_ID`.
    #[error("Topic id {0} does not exist.")]
    UnknownTopicId(Uuid),
    /// `TOPIC_DELETION_DISABLED` (`delete.topic.enable=false`).
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    /// `KAFKA_STORAGE_ERROR`: the change could not be stored.
    #[error("metadata could not be stored: {0}")]
    Storage(String),
    /// `NOT_CONTROLLER`: this node is not the active controller; `leader` is the one it knows
    /// of (-1: none elected yet).
    #[error("This node is not the active controller (active: {leader}).")]
    NotController {
        /// The active controller's id, or -1.
        leader: i32,
    },
    /// `STALE_CONTROLLER_EPOCH`: the sender's controller epoch is older than one already seen.
    #[error("Controller epoch {got} is older than the current {current}.")]
    StaleControllerEpoch {
        /// The epoch the request carried.
        got: i32,
        /// The newest epoch known here.
        current: i32,
    },
    /// `STALE_BROKER_EPOCH`: the request carries a broker epoch other than the registered one.
    #[error("Broker {broker} epoch {got} is not the registered epoch {current}.")]
    StaleBrokerEpoch {
        /// Broker id.
        broker: i32,
        /// The epoch the request carried.
        got: i64,
        /// The registered epoch.
        current: i64,
    },
    /// `BROKER_ID_NOT_REGISTERED`.
    #[error("Broker {0} is not registered.")]
    BrokerIdNotRegistered(i32),
    /// `DUPLICATE_BROKER_REGISTRATION`: another live process holds this broker id.
    #[error("Another broker is registered with id {0} and its session has not expired.")]
    DuplicateBrokerRegistration(i32),
    /// `INCONSISTENT_CLUSTER_ID`.
    #[error("The request's cluster id {got} is not this cluster's ({expected}).")]
    InconsistentClusterId {
        /// The id the request carried.
        got: String,
        /// This cluster's id.
        expected: String,
    },
    /// `FENCED_LEADER_EPOCH`: the request's leader epoch is older than the partition's.
    #[error("Leader epoch {got} is older than the current {current}.")]
    FencedLeaderEpoch {
        /// The epoch the request carried.
        got: i32,
        /// The partition's leader epoch.
        current: i32,
    },
    /// `UNKNOWN_LEADER_EPOCH`: the request's leader epoch is newer than the partition's.
    #[error("Leader epoch {got} is newer than the current {current}.")]
    UnknownLeaderEpoch {
        /// The epoch the request carried.
        got: i32,
        /// The partition's leader epoch.
        current: i32,
    },
    /// `INVALID_UPDATE_VERSION`: the partition epoch does not match (a lost update).
    #[error("Partition epoch {got} does not match the current {current}.")]
    InvalidUpdateVersion {
        /// The epoch the request carried.
        got: i32,
        /// The partition's epoch.
        current: i32,
    },
    /// `INELIGIBLE_REPLICA`: a proposed ISR member is fenced or not a replica.
    #[error("{0}")]
    IneligibleReplica(String),
    /// `NOT_LEADER_OR_FOLLOWER`: the requester does not lead the partition.
    #[error("{0}")]
    NotLeaderOrFollower(String),
    /// `UNKNOWN_TOPIC_OR_PARTITION` for a partition index.
    #[error("Partition {1} of topic {0} does not exist.")]
    UnknownPartition(String, i32),
    /// `INVALID_REQUEST`.
    #[error("{0}")]
    InvalidRequest(String),
    /// `ELECTION_NOT_NEEDED`: the partition already has the leader the election would give it.
    #[error("{0}")]
    ElectionNotNeeded(String),
    /// `PREFERRED_LEADER_NOT_AVAILABLE`: the preferred replica is not live or not in the ISR.
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    /// `ELIGIBLE_LEADERS_NOT_AVAILABLE`: no replica of the partition can lead.
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    /// `NO_REASSIGNMENT_IN_PROGRESS`: a cancellation for a partition not being reassigned.
    #[error("{0}")]
    NoReassignmentInProgress(String),
    /// `REQUEST_TIMED_OUT`: no controller answered in time.
    #[error("{0}")]
    Timeout(String),
    /// Any other Kafka error code received from a peer.
    #[error("{message} (error code {code})")]
    Other {
        /// Kafka error code.
        code: i16,
        /// The peer's message.
        message: String,
    },
}

impl MetadataError {
    /// The Kafka error this maps to.
    pub fn response_error(&self) -> Option<ResponseError> {
        Some(match self {
            MetadataError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            MetadataError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            MetadataError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            MetadataError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            MetadataError::InvalidConfig(_) => ResponseError::InvalidConfig,
            MetadataError::UnknownTopic(_) | MetadataError::UnknownPartition(..) => {
                ResponseError::UnknownTopicOrPartition
            }
            MetadataError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
            MetadataError::TopicDeletionDisabled => ResponseError::TopicDeletionDisabled,
            MetadataError::Storage(_) => ResponseError::KafkaStorageError,
            MetadataError::NotController { .. } => ResponseError::NotController,
            MetadataError::StaleControllerEpoch { .. } => ResponseError::StaleControllerEpoch,
            MetadataError::StaleBrokerEpoch { .. } => ResponseError::StaleBrokerEpoch,
            MetadataError::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
            MetadataError::DuplicateBrokerRegistration(_) => {
                ResponseError::DuplicateBrokerRegistration
            }
            MetadataError::InconsistentClusterId { .. } => ResponseError::InconsistentClusterId,
            MetadataError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            MetadataError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            MetadataError::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
            MetadataError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
            MetadataError::NotLeaderOrFollower(_) => ResponseError::NotLeaderOrFollower,
            MetadataError::InvalidRequest(_) => ResponseError::InvalidRequest,
            MetadataError::ElectionNotNeeded(_) => ResponseError::ElectionNotNeeded,
            MetadataError::PreferredLeaderNotAvailable(_) => {
                ResponseError::PreferredLeaderNotAvailable
            }
            MetadataError::EligibleLeadersNotAvailable(_) => {
                ResponseError::EligibleLeadersNotAvailable
            }
            MetadataError::NoReassignmentInProgress(_) => ResponseError::NoReassignmentInProgress,
            MetadataError::Timeout(_) => ResponseError::RequestTimedOut,
            MetadataError::Other { code, .. } => return ResponseError::try_from_code(*code),
        })
    }

    /// The Kafka error code (non-zero).
    pub fn code(&self) -> i16 {
        match self {
            MetadataError::Other { code, .. } => *code,
            other => other.response_error().map_or(-1, |e| e.code()),
        }
    }

    /// Rebuilds an error received from a peer as `(code, message, leader hint)`, keeping the
    /// variants a caller acts on (NOT_CONTROLLER, the stale-epoch errors) distinct.
    pub fn from_code(code: i16, message: String, leader_hint: i32) -> MetadataError {
        match ResponseError::try_from_code(code) {
            Some(ResponseError::NotController) => MetadataError::NotController {
                leader: leader_hint,
            },
            Some(ResponseError::TopicAlreadyExists) => MetadataError::TopicAlreadyExists(message),
            Some(ResponseError::InvalidTopicException) => MetadataError::InvalidTopic(message),
            Some(ResponseError::InvalidPartitions) => MetadataError::InvalidPartitions(message),
            Some(ResponseError::InvalidReplicationFactor) => {
                MetadataError::InvalidReplicationFactor(message)
            }
            Some(ResponseError::InvalidReplicaAssignment) => {
                MetadataError::InvalidReplicaAssignment(message)
            }
            Some(ResponseError::InvalidConfig) => MetadataError::InvalidConfig(message),
            Some(ResponseError::TopicDeletionDisabled) => MetadataError::TopicDeletionDisabled,
            Some(ResponseError::IneligibleReplica) => MetadataError::IneligibleReplica(message),
            Some(ResponseError::InvalidRequest) => MetadataError::InvalidRequest(message),
            Some(ResponseError::RequestTimedOut) => MetadataError::Timeout(message),
            Some(ResponseError::ElectionNotNeeded) => MetadataError::ElectionNotNeeded(message),
            Some(ResponseError::PreferredLeaderNotAvailable) => {
                MetadataError::PreferredLeaderNotAvailable(message)
            }
            Some(ResponseError::EligibleLeadersNotAvailable) => {
                MetadataError::EligibleLeadersNotAvailable(message)
            }
            Some(ResponseError::NoReassignmentInProgress) => {
                MetadataError::NoReassignmentInProgress(message)
            }
            _ => MetadataError::Other { code, message },
        }
    }

    /// True for the errors that mean "ask again, maybe elsewhere" rather than "no".
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            MetadataError::NotController { .. } | MetadataError::Timeout(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_the_wire_form() {
        let errors = [
            MetadataError::NotController { leader: 3 },
            MetadataError::TopicAlreadyExists("Topic 'a' already exists.".into()),
            MetadataError::InvalidReplicationFactor("x".into()),
            MetadataError::StaleBrokerEpoch {
                broker: 1,
                got: 1,
                current: 2,
            },
            MetadataError::ElectionNotNeeded("x".into()),
            MetadataError::PreferredLeaderNotAvailable("x".into()),
            MetadataError::EligibleLeadersNotAvailable("x".into()),
            MetadataError::NoReassignmentInProgress("x".into()),
            MetadataError::UnknownPartition("t".into(), 3),
        ];
        for e in errors {
            let back = MetadataError::from_code(e.code(), e.to_string(), 3);
            assert_eq!(back.code(), e.code(), "{e}");
        }
        assert_eq!(
            MetadataError::from_code(41, String::new(), 3),
            MetadataError::NotController { leader: 3 }
        );
    }
}
