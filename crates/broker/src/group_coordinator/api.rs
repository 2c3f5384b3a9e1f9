//! What the group handlers ask the coordinator and what it answers, in the coordinator's own
//! terms (the handlers translate to and from each API version's wire types).

use bytes::Bytes;
use rivulet_protocol::kafka_protocol::ResponseError;

/// A JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// Empty for a member without an id yet.
    pub member_id: String,
    /// `group.instance.id` (static membership).
    pub group_instance_id: Option<String>,
    /// e.g. `consumer`.
    pub protocol_type: String,
    /// Protocols in order of preference, with the member's metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    /// `session.timeout.ms`.
    pub session_timeout_ms: i32,
    /// `rebalance.timeout.ms` (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// The client's id.
    pub client_id: String,
    /// The client's address, as Kafka reports it (`/127.0.0.1`).
    pub client_host: String,
    /// v4+: a member without an id first gets one with MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

/// A member in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Debug, Clone, Default)]
pub struct JoinResponse {
    /// The error, if any.
    pub error: Option<ResponseError>,
    /// The generation joined.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// KIP-814: the (static) leader rejoined a stable group and need not assign again.
    pub skip_assignment: bool,
    /// The member's id (new for a first join).
    pub member_id: String,
    /// All members, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// A response carrying only `error` (and the member id it concerns).
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            member_id: member_id.to_owned(),
            ..Default::default()
        }
    }
}

/// A SyncGroup.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_type: Option<String>,
    /// v5+: checked against the group's.
    pub protocol_name: Option<String>,
    /// The leader's assignment (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response.
#[derive(Debug, Clone, Default)]
pub struct SyncResponse {
    /// The error, if any.
    pub error: Option<ResponseError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResponse {
    /// A response carrying only `error`.
    pub fn error(error: ResponseError) -> Self {
        SyncResponse {
            error: Some(error),
            ..Default::default()
        }
    }
}

/// A Heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member is in.
    pub generation_id: i32,
    /// The member.
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// One member leaving (LeaveGroup v3+ lists several).
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Member id (may be empty for a static member named by instance id).
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
}

/// A LeaveGroup response.
#[derive(Debug, Clone, Default)]
pub struct LeaveResponse {
    /// Group-level error.
    pub error: Option<ResponseError>,
    /// Per member: the member and its error.
    pub members: Vec<(LeavingMember, Option<ResponseError>)>,
}

/// One partition's offset to commit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the last consumed record, or -1.
    pub leader_epoch: i32,
    /// Client metadata (null is stored as empty, as Kafka does).
    pub metadata: String,
}

/// An OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The group.
    pub group_id: String,
    /// -1 for a commit outside group management.
    pub generation_id: i32,
    /// The member (empty outside group management).
    pub member_id: String,
    /// Its `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// What to commit.
    pub offsets: Vec<OffsetToCommit>,
}

/// A partition's result: `(topic, partition, error)`.
pub type PartitionResult = (String, i32, Option<ResponseError>);

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset, or -1 when none is committed.
    pub offset: i64,
    /// Leader epoch, or -1.
    pub leader_epoch: i32,
    /// Metadata ("" when none).
    pub metadata: String,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// `group.instance.id`.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Its metadata for the chosen protocol (only when Stable, as Kafka).
    pub metadata: Bytes,
    /// Its assignment (only when Stable).
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct DescribedGroup {
    /// Group id.
    pub group_id: String,
    /// Kafka's state name (`Dead` for an unknown group).
    pub state: &'static str,
    /// Protocol type ("" when none).
    pub protocol_type: String,
    /// The chosen protocol when Stable, else "".
    pub protocol: String,
    /// Members.
    pub members: Vec<DescribedMember>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" when none).
    pub protocol_type: String,
    /// Kafka's state name.
    pub state: &'static str,
}
