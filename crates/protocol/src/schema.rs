//! The wire shape of every request body this crate decodes, and a walk over a body that checks
//! each length prefix against the bytes left *before* `kafka-protocol` decodes it.
//!
//! Why: `kafka-protocol` 0.18 sizes arrays with `Vec::with_capacity(count)` straight from the
//! wire, so a 20-byte Metadata request announcing 2^31 topics asks the allocator for ~150 GB and
//! the process aborts (an allocation failure is not a panic that can be caught). Kafka's generated
//! Java readers refuse such arrays ("Tried to allocate a collection of size N, but there are only
//! M bytes remaining"); this module restores that rule, slightly tightened: `count` times the
//! smallest encoding of one element must fit in the bytes left, so an accepted array can only
//! ask for memory in proportion to bytes that are really there.
//!
//! The shapes mirror `kafka-protocol`'s generated `Decodable` impls field for field, version
//! for version (including which tagged fields it reads in place, ignoring their size prefix), so
//! the walk reads every length prefix at the offset where that decoder will read it. Tests encode
//! populated requests of every supported version and check that the walk consumes exactly the
//! encoded bytes. The walk allocates nothing and is linear in the body size; `records` fields are
//! skipped, not read.
//!
//! Flexible versions (KIP-482) switch strings, bytes and arrays to compact (unsigned varint,
//! length + 1, 0 = null) and end every struct with a tagged-field section.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::wire::{Reader, WireError};

/// The wire type of one field.
#[derive(Debug)]
enum Ty {
    /// A fixed-width value: int8/16/32/64, boolean, uuid.
    Fixed(usize, &'static str),
    /// A string or nullable string.
    Str(&'static str),
    /// Bytes, nullable bytes or records.
    Bytes(&'static str),
    /// An array (or nullable array) of elements of the inner type.
    Array(&'static Ty, &'static str),
    /// A nested struct (only as an array element or a tagged field).
    Struct(&'static StructDef),
}

/// A field present in versions `min..=max`.
#[derive(Debug)]
struct Field {
    ty: Ty,
    min: i16,
    max: i16,
}

/// A tagged field that `kafka-protocol` reads in place (all other tags are skipped by size).
#[derive(Debug)]
struct TaggedField {
    tag: u32,
    ty: Ty,
    /// Before this version the tag is rejected, as `kafka-protocol` does.
    min: i16,
}

#[derive(Debug)]
struct StructDef {
    fields: &'static [Field],
    tagged: &'static [TaggedField],
}

/// A request body: its struct and the first flexible version.
#[derive(Debug)]
struct MessageDef {
    flexible_from: i16,
    body: StructDef,
}

const fn all(ty: Ty) -> Field {
    Field {
        ty,
        min: 0,
        max: i16::MAX,
    }
}

const fn since(min: i16, ty: Ty) -> Field {
    Field {
        ty,
        min,
        max: i16::MAX,
    }
}

const fn until(max: i16, ty: Ty) -> Field {
    Field { ty, min: 0, max }
}

const fn between(min: i16, max: i16, ty: Ty) -> Field {
    Field { ty, min, max }
}

const I8: usize = 1;
const I16: usize = 2;
const I32: usize = 4;
const I64: usize = 8;
const BOOL: usize = 1;
const UUID: usize = 16;

// ---- ApiVersions (flexible from 3) -----------------------------------------------------------
const API_VERSIONS: MessageDef = MessageDef {
    flexible_from: 3,
    body: StructDef {
        fields: &[
            since(3, Ty::Str("client_software_name")),
            since(3, Ty::Str("client_software_version")),
        ],
        tagged: &[],
    },
};

// ---- Metadata (flexible from 9) --------------------------------------------------------------
const METADATA_TOPIC: StructDef = StructDef {
    fields: &[
        since(10, Ty::Fixed(UUID, "topic_id")),
        all(Ty::Str("topic name")),
    ],
    tagged: &[],
};
const METADATA: MessageDef = MessageDef {
    flexible_from: 9,
    body: StructDef {
        fields: &[
            all(Ty::Array(&Ty::Struct(&METADATA_TOPIC), "topics")),
            since(4, Ty::Fixed(BOOL, "allow_auto_topic_creation")),
            between(
                8,
                10,
                Ty::Fixed(BOOL, "include_cluster_authorized_operations"),
            ),
            since(8, Ty::Fixed(BOOL, "include_topic_authorized_operations")),
        ],
        tagged: &[],
    },
};

// ---- Produce v3+ (flexible from 9); v0-2 are in `legacy_produce` ----------------------------
const PRODUCE_PARTITION: StructDef = StructDef {
    fields: &[all(Ty::Fixed(I32, "index")), all(Ty::Bytes("records"))],
    tagged: &[],
};
const PRODUCE_TOPIC: StructDef = StructDef {
    fields: &[
        until(12, Ty::Str("topic name")),
        since(13, Ty::Fixed(UUID, "topic_id")),
        all(Ty::Array(&Ty::Struct(&PRODUCE_PARTITION), "partition_data")),
    ],
    tagged: &[],
};
const PRODUCE: MessageDef = MessageDef {
    flexible_from: 9,
    body: StructDef {
        fields: &[
            since(3, Ty::Str("transactional_id")),
            all(Ty::Fixed(I16, "acks")),
            all(Ty::Fixed(I32, "timeout_ms")),
            all(Ty::Array(&Ty::Struct(&PRODUCE_TOPIC), "topic_data")),
        ],
        tagged: &[],
    },
};

// ---- Fetch (flexible from 12) ----------------------------------------------------------------
const FETCH_PARTITION: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I32, "partition")),
        since(9, Ty::Fixed(I32, "current_leader_epoch")),
        all(Ty::Fixed(I64, "fetch_offset")),
        since(12, Ty::Fixed(I32, "last_fetched_epoch")),
        since(5, Ty::Fixed(I64, "log_start_offset")),
        all(Ty::Fixed(I32, "partition_max_bytes")),
    ],
    tagged: &[
        TaggedField {
            tag: 0,
            ty: Ty::Fixed(UUID, "replica_directory_id"),
            min: 17,
        },
        TaggedField {
            tag: 1,
            ty: Ty::Fixed(I64, "high_watermark"),
            min: 18,
        },
    ],
};
const FETCH_TOPIC: StructDef = StructDef {
    fields: &[
        until(12, Ty::Str("topic name")),
        since(13, Ty::Fixed(UUID, "topic_id")),
        all(Ty::Array(&Ty::Struct(&FETCH_PARTITION), "partitions")),
    ],
    tagged: &[],
};
const FORGOTTEN_TOPIC: StructDef = StructDef {
    fields: &[
        between(7, 12, Ty::Str("topic name")),
        since(13, Ty::Fixed(UUID, "topic_id")),
        since(7, Ty::Array(&Ty::Fixed(I32, "partition"), "partitions")),
    ],
    tagged: &[],
};
const REPLICA_STATE: StructDef = StructDef {
    fields: &[
        since(15, Ty::Fixed(I32, "replica_id")),
        since(15, Ty::Fixed(I64, "replica_epoch")),
    ],
    tagged: &[],
};
const FETCH: MessageDef = MessageDef {
    flexible_from: 12,
    body: StructDef {
        fields: &[
            until(14, Ty::Fixed(I32, "replica_id")),
            all(Ty::Fixed(I32, "max_wait_ms")),
            all(Ty::Fixed(I32, "min_bytes")),
            all(Ty::Fixed(I32, "max_bytes")),
            all(Ty::Fixed(I8, "isolation_level")),
            since(7, Ty::Fixed(I32, "session_id")),
            since(7, Ty::Fixed(I32, "session_epoch")),
            all(Ty::Array(&Ty::Struct(&FETCH_TOPIC), "topics")),
            since(
                7,
                Ty::Array(&Ty::Struct(&FORGOTTEN_TOPIC), "forgotten_topics_data"),
            ),
            since(11, Ty::Str("rack_id")),
        ],
        tagged: &[
            TaggedField {
                tag: 0,
                ty: Ty::Str("cluster_id"),
                min: 0,
            },
            TaggedField {
                tag: 1,
                ty: Ty::Struct(&REPLICA_STATE),
                min: 15,
            },
        ],
    },
};

// ---- ListOffsets (flexible from 6) -----------------------------------------------------------
const LIST_OFFSETS_PARTITION: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I32, "partition_index")),
        since(4, Ty::Fixed(I32, "current_leader_epoch")),
        all(Ty::Fixed(I64, "timestamp")),
    ],
    tagged: &[],
};
const LIST_OFFSETS_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(
            &Ty::Struct(&LIST_OFFSETS_PARTITION),
            "partitions",
        )),
    ],
    tagged: &[],
};
const LIST_OFFSETS: MessageDef = MessageDef {
    flexible_from: 6,
    body: StructDef {
        fields: &[
            all(Ty::Fixed(I32, "replica_id")),
            since(2, Ty::Fixed(I8, "isolation_level")),
            all(Ty::Array(&Ty::Struct(&LIST_OFFSETS_TOPIC), "topics")),
            since(10, Ty::Fixed(I32, "timeout_ms")),
        ],
        tagged: &[],
    },
};

// ---- CreateTopics (flexible from 5) ----------------------------------------------------------
const CREATABLE_ASSIGNMENT: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I32, "partition_index")),
        all(Ty::Array(&Ty::Fixed(I32, "broker_id"), "broker_ids")),
    ],
    tagged: &[],
};
const CREATABLE_CONFIG: StructDef = StructDef {
    fields: &[all(Ty::Str("config name")), all(Ty::Str("config value"))],
    tagged: &[],
};
const CREATABLE_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Fixed(I32, "num_partitions")),
        all(Ty::Fixed(I16, "replication_factor")),
        all(Ty::Array(&Ty::Struct(&CREATABLE_ASSIGNMENT), "assignments")),
        all(Ty::Array(&Ty::Struct(&CREATABLE_CONFIG), "configs")),
    ],
    tagged: &[],
};
const CREATE_TOPICS: MessageDef = MessageDef {
    flexible_from: 5,
    body: StructDef {
        fields: &[
            all(Ty::Array(&Ty::Struct(&CREATABLE_TOPIC), "topics")),
            all(Ty::Fixed(I32, "timeout_ms")),
            all(Ty::Fixed(BOOL, "validate_only")),
        ],
        tagged: &[],
    },
};

// ---- DeleteTopics (flexible from 4) ----------------------------------------------------------
const DELETE_TOPIC_STATE: StructDef = StructDef {
    fields: &[
        since(6, Ty::Str("topic name")),
        since(6, Ty::Fixed(UUID, "topic_id")),
    ],
    tagged: &[],
};
const DELETE_TOPICS: MessageDef = MessageDef {
    flexible_from: 4,
    body: StructDef {
        fields: &[
            since(6, Ty::Array(&Ty::Struct(&DELETE_TOPIC_STATE), "topics")),
            until(5, Ty::Array(&Ty::Str("topic name"), "topic_names")),
            all(Ty::Fixed(I32, "timeout_ms")),
        ],
        tagged: &[],
    },
};

// ---- InitProducerId (flexible from 2) --------------------------------------------------------
const INIT_PRODUCER_ID: MessageDef = MessageDef {
    flexible_from: 2,
    body: StructDef {
        fields: &[
            all(Ty::Str("transactional_id")),
            all(Ty::Fixed(I32, "transaction_timeout_ms")),
            since(3, Ty::Fixed(I64, "producer_id")),
            since(3, Ty::Fixed(I16, "producer_epoch")),
        ],
        tagged: &[],
    },
};

// ---- DescribeConfigs (flexible from 4) -------------------------------------------------------
const DESCRIBE_CONFIGS_RESOURCE: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I8, "resource_type")),
        all(Ty::Str("resource_name")),
        all(Ty::Array(
            &Ty::Str("configuration key"),
            "configuration_keys",
        )),
    ],
    tagged: &[],
};
const DESCRIBE_CONFIGS: MessageDef = MessageDef {
    flexible_from: 4,
    body: StructDef {
        fields: &[
            all(Ty::Array(
                &Ty::Struct(&DESCRIBE_CONFIGS_RESOURCE),
                "resources",
            )),
            all(Ty::Fixed(BOOL, "include_synonyms")),
            since(3, Ty::Fixed(BOOL, "include_documentation")),
        ],
        tagged: &[],
    },
};

// ---- AlterConfigs (flexible from 2) ----------------------------------------------------------
const ALTER_CONFIGS_CONFIG: StructDef = StructDef {
    fields: &[all(Ty::Str("config name")), all(Ty::Str("config value"))],
    tagged: &[],
};
const ALTER_CONFIGS_RESOURCE: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I8, "resource_type")),
        all(Ty::Str("resource_name")),
        all(Ty::Array(&Ty::Struct(&ALTER_CONFIGS_CONFIG), "configs")),
    ],
    tagged: &[],
};
const ALTER_CONFIGS: MessageDef = MessageDef {
    flexible_from: 2,
    body: StructDef {
        fields: &[
            all(Ty::Array(&Ty::Struct(&ALTER_CONFIGS_RESOURCE), "resources")),
            all(Ty::Fixed(BOOL, "validate_only")),
        ],
        tagged: &[],
    },
};

// ---- CreatePartitions (flexible from 2) ------------------------------------------------------
const CREATE_PARTITIONS_ASSIGNMENT: StructDef = StructDef {
    fields: &[all(Ty::Array(&Ty::Fixed(I32, "broker_id"), "broker_ids"))],
    tagged: &[],
};
const CREATE_PARTITIONS_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Fixed(I32, "count")),
        all(Ty::Array(
            &Ty::Struct(&CREATE_PARTITIONS_ASSIGNMENT),
            "assignments",
        )),
    ],
    tagged: &[],
};
const CREATE_PARTITIONS: MessageDef = MessageDef {
    flexible_from: 2,
    body: StructDef {
        fields: &[
            all(Ty::Array(&Ty::Struct(&CREATE_PARTITIONS_TOPIC), "topics")),
            all(Ty::Fixed(I32, "timeout_ms")),
            all(Ty::Fixed(BOOL, "validate_only")),
        ],
        tagged: &[],
    },
};

// ---- IncrementalAlterConfigs (flexible from 1) -----------------------------------------------
const INCREMENTAL_ALTER_CONFIGS_CONFIG: StructDef = StructDef {
    fields: &[
        all(Ty::Str("config name")),
        all(Ty::Fixed(I8, "config_operation")),
        all(Ty::Str("config value")),
    ],
    tagged: &[],
};
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I8, "resource_type")),
        all(Ty::Str("resource_name")),
        all(Ty::Array(
            &Ty::Struct(&INCREMENTAL_ALTER_CONFIGS_CONFIG),
            "configs",
        )),
    ],
    tagged: &[],
};
const INCREMENTAL_ALTER_CONFIGS: MessageDef = MessageDef {
    flexible_from: 1,
    body: StructDef {
        fields: &[
            all(Ty::Array(
                &Ty::Struct(&INCREMENTAL_ALTER_CONFIGS_RESOURCE),
                "resources",
            )),
            all(Ty::Fixed(BOOL, "validate_only")),
        ],
        tagged: &[],
    },
};

// ---- ElectLeaders (flexible from 2) ----------------------------------------------------------
const ELECT_LEADERS_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(&Ty::Fixed(I32, "partition"), "partitions")),
    ],
    tagged: &[],
};
const ELECT_LEADERS: MessageDef = MessageDef {
    flexible_from: 2,
    body: StructDef {
        fields: &[
            since(1, Ty::Fixed(I8, "election_type")),
            all(Ty::Array(
                &Ty::Struct(&ELECT_LEADERS_TOPIC),
                "topic_partitions",
            )),
            all(Ty::Fixed(I32, "timeout_ms")),
        ],
        tagged: &[],
    },
};

// ---- AlterPartitionReassignments (flexible from 0) -------------------------------------------
const REASSIGNABLE_PARTITION: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I32, "partition_index")),
        all(Ty::Array(&Ty::Fixed(I32, "broker_id"), "replicas")),
    ],
    tagged: &[],
};
const REASSIGNABLE_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(
            &Ty::Struct(&REASSIGNABLE_PARTITION),
            "partitions",
        )),
    ],
    tagged: &[],
};
const ALTER_PARTITION_REASSIGNMENTS: MessageDef = MessageDef {
    flexible_from: 0,
    body: StructDef {
        fields: &[
            all(Ty::Fixed(I32, "timeout_ms")),
            since(1, Ty::Fixed(BOOL, "allow_replication_factor_change")),
            all(Ty::Array(&Ty::Struct(&REASSIGNABLE_TOPIC), "topics")),
        ],
        tagged: &[],
    },
};

// ---- ListPartitionReassignments (flexible from 0) --------------------------------------------
const LIST_REASSIGNMENTS_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(&Ty::Fixed(I32, "partition"), "partition_indexes")),
    ],
    tagged: &[],
};
const LIST_PARTITION_REASSIGNMENTS: MessageDef = MessageDef {
    flexible_from: 0,
    body: StructDef {
        fields: &[
            all(Ty::Fixed(I32, "timeout_ms")),
            all(Ty::Array(&Ty::Struct(&LIST_REASSIGNMENTS_TOPIC), "topics")),
        ],
        tagged: &[],
    },
};

// ---- OffsetForLeaderEpoch (v2-4, flexible from 4) --------------------------------------------
const OFFSET_FOR_LEADER_PARTITION: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I32, "partition")),
        since(2, Ty::Fixed(I32, "current_leader_epoch")),
        all(Ty::Fixed(I32, "leader_epoch")),
    ],
    tagged: &[],
};
const OFFSET_FOR_LEADER_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(
            &Ty::Struct(&OFFSET_FOR_LEADER_PARTITION),
            "partitions",
        )),
    ],
    tagged: &[],
};
const OFFSET_FOR_LEADER_EPOCH: MessageDef = MessageDef {
    flexible_from: 4,
    body: StructDef {
        fields: &[
            since(3, Ty::Fixed(I32, "replica_id")),
            all(Ty::Array(&Ty::Struct(&OFFSET_FOR_LEADER_TOPIC), "topics")),
        ],
        tagged: &[],
    },
};

// ---- DescribeQuorum (flexible from 0) --------------------------------------------------------
const DESCRIBE_QUORUM_PARTITION: StructDef = StructDef {
    fields: &[all(Ty::Fixed(I32, "partition_index"))],
    tagged: &[],
};
const DESCRIBE_QUORUM_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic_name")),
        all(Ty::Array(
            &Ty::Struct(&DESCRIBE_QUORUM_PARTITION),
            "partitions",
        )),
    ],
    tagged: &[],
};
const DESCRIBE_QUORUM: MessageDef = MessageDef {
    flexible_from: 0,
    body: StructDef {
        fields: &[all(Ty::Array(
            &Ty::Struct(&DESCRIBE_QUORUM_TOPIC),
            "topics",
        ))],
        tagged: &[],
    },
};

// ---- DescribeCluster (flexible from 0) -------------------------------------------------------
const DESCRIBE_CLUSTER: MessageDef = MessageDef {
    flexible_from: 0,
    body: StructDef {
        fields: &[
            all(Ty::Fixed(BOOL, "include_cluster_authorized_operations")),
            since(1, Ty::Fixed(I8, "endpoint_type")),
            since(2, Ty::Fixed(BOOL, "include_fenced_brokers")),
        ],
        tagged: &[],
    },
};

// ---- OffsetCommit (v2-9, flexible from 8) ---------------------------------------------------
// kafka-protocol decodes v2-9 only, so v1's per-partition commit_timestamp never appears here.
const OFFSET_COMMIT_PARTITION: StructDef = StructDef {
    fields: &[
        all(Ty::Fixed(I32, "partition_index")),
        all(Ty::Fixed(I64, "committed_offset")),
        since(6, Ty::Fixed(I32, "committed_leader_epoch")),
        all(Ty::Str("committed_metadata")),
    ],
    tagged: &[],
};
const OFFSET_COMMIT_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(
            &Ty::Struct(&OFFSET_COMMIT_PARTITION),
            "partitions",
        )),
    ],
    tagged: &[],
};
const OFFSET_COMMIT: MessageDef = MessageDef {
    flexible_from: 8,
    body: StructDef {
        fields: &[
            all(Ty::Str("group_id")),
            all(Ty::Fixed(I32, "generation_id_or_member_epoch")),
            all(Ty::Str("member_id")),
            since(7, Ty::Str("group_instance_id")),
            until(4, Ty::Fixed(I64, "retention_time_ms")),
            all(Ty::Array(&Ty::Struct(&OFFSET_COMMIT_TOPIC), "topics")),
        ],
        tagged: &[],
    },
};

// ---- OffsetFetch (v1-9, flexible from 6) -----------------------------------------------------
// v1-7 name one group at the top level; v8+ carry a `groups` array instead.
const OFFSET_FETCH_TOPIC: StructDef = StructDef {
    fields: &[
        until(7, Ty::Str("topic name")),
        until(
            7,
            Ty::Array(&Ty::Fixed(I32, "partition"), "partition_indexes"),
        ),
    ],
    tagged: &[],
};
const OFFSET_FETCH_GROUP_TOPIC: StructDef = StructDef {
    fields: &[
        since(8, Ty::Str("topic name")),
        since(
            8,
            Ty::Array(&Ty::Fixed(I32, "partition"), "partition_indexes"),
        ),
    ],
    tagged: &[],
};
const OFFSET_FETCH_GROUP: StructDef = StructDef {
    fields: &[
        since(8, Ty::Str("group_id")),
        since(9, Ty::Str("member_id")),
        since(9, Ty::Fixed(I32, "member_epoch")),
        since(
            8,
            Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP_TOPIC), "group topics"),
        ),
    ],
    tagged: &[],
};
const OFFSET_FETCH: MessageDef = MessageDef {
    flexible_from: 6,
    body: StructDef {
        fields: &[
            until(7, Ty::Str("group_id")),
            until(7, Ty::Array(&Ty::Struct(&OFFSET_FETCH_TOPIC), "topics")),
            since(8, Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP), "groups")),
            since(7, Ty::Fixed(BOOL, "require_stable")),
        ],
        tagged: &[],
    },
};

// ---- FindCoordinator (flexible from 3) -------------------------------------------------------
const FIND_COORDINATOR: MessageDef = MessageDef {
    flexible_from: 3,
    body: StructDef {
        fields: &[
            until(3, Ty::Str("key")),
            since(1, Ty::Fixed(I8, "key_type")),
            since(
                4,
                Ty::Array(&Ty::Str("coordinator key"), "coordinator_keys"),
            ),
        ],
        tagged: &[],
    },
};

// ---- JoinGroup (flexible from 6) -------------------------------------------------------------
const JOIN_GROUP_PROTOCOL: StructDef = StructDef {
    fields: &[
        all(Ty::Str("protocol name")),
        all(Ty::Bytes("protocol metadata")),
    ],
    tagged: &[],
};
const JOIN_GROUP: MessageDef = MessageDef {
    flexible_from: 6,
    body: StructDef {
        fields: &[
            all(Ty::Str("group_id")),
            all(Ty::Fixed(I32, "session_timeout_ms")),
            since(1, Ty::Fixed(I32, "rebalance_timeout_ms")),
            all(Ty::Str("member_id")),
            since(5, Ty::Str("group_instance_id")),
            all(Ty::Str("protocol_type")),
            all(Ty::Array(&Ty::Struct(&JOIN_GROUP_PROTOCOL), "protocols")),
            since(8, Ty::Str("reason")),
        ],
        tagged: &[],
    },
};

// ---- Heartbeat (flexible from 4) -------------------------------------------------------------
const HEARTBEAT: MessageDef = MessageDef {
    flexible_from: 4,
    body: StructDef {
        fields: &[
            all(Ty::Str("group_id")),
            all(Ty::Fixed(I32, "generation_id")),
            all(Ty::Str("member_id")),
            since(3, Ty::Str("group_instance_id")),
        ],
        tagged: &[],
    },
};

// ---- LeaveGroup (flexible from 4) ------------------------------------------------------------
const LEAVE_GROUP_MEMBER: StructDef = StructDef {
    fields: &[
        since(3, Ty::Str("member_id")),
        since(3, Ty::Str("group_instance_id")),
        since(5, Ty::Str("reason")),
    ],
    tagged: &[],
};
const LEAVE_GROUP: MessageDef = MessageDef {
    flexible_from: 4,
    body: StructDef {
        fields: &[
            all(Ty::Str("group_id")),
            until(2, Ty::Str("member_id")),
            since(3, Ty::Array(&Ty::Struct(&LEAVE_GROUP_MEMBER), "members")),
        ],
        tagged: &[],
    },
};

// ---- SyncGroup (flexible from 4) -------------------------------------------------------------
const SYNC_GROUP_ASSIGNMENT: StructDef = StructDef {
    fields: &[all(Ty::Str("member_id")), all(Ty::Bytes("assignment"))],
    tagged: &[],
};
const SYNC_GROUP: MessageDef = MessageDef {
    flexible_from: 4,
    body: StructDef {
        fields: &[
            all(Ty::Str("group_id")),
            all(Ty::Fixed(I32, "generation_id")),
            all(Ty::Str("member_id")),
            since(3, Ty::Str("group_instance_id")),
            since(5, Ty::Str("protocol_type")),
            since(5, Ty::Str("protocol_name")),
            all(Ty::Array(
                &Ty::Struct(&SYNC_GROUP_ASSIGNMENT),
                "assignments",
            )),
        ],
        tagged: &[],
    },
};

// ---- DescribeGroups (flexible from 5) --------------------------------------------------------
const DESCRIBE_GROUPS: MessageDef = MessageDef {
    flexible_from: 5,
    body: StructDef {
        fields: &[
            all(Ty::Array(&Ty::Str("group_id"), "groups")),
            since(3, Ty::Fixed(BOOL, "include_authorized_operations")),
        ],
        tagged: &[],
    },
};

// ---- ListGroups (flexible from 3) ------------------------------------------------------------
const LIST_GROUPS: MessageDef = MessageDef {
    flexible_from: 3,
    body: StructDef {
        fields: &[
            since(4, Ty::Array(&Ty::Str("state"), "states_filter")),
            since(5, Ty::Array(&Ty::Str("type"), "types_filter")),
        ],
        tagged: &[],
    },
};

// ---- DeleteGroups (flexible from 2) ----------------------------------------------------------
const DELETE_GROUPS: MessageDef = MessageDef {
    flexible_from: 2,
    body: StructDef {
        fields: &[all(Ty::Array(&Ty::Str("group_id"), "groups_names"))],
        tagged: &[],
    },
};

// ---- OffsetDelete (v0 only, never flexible) --------------------------------------------------
const OFFSET_DELETE_PARTITION: StructDef = StructDef {
    fields: &[all(Ty::Fixed(I32, "partition_index"))],
    tagged: &[],
};
const OFFSET_DELETE_TOPIC: StructDef = StructDef {
    fields: &[
        all(Ty::Str("topic name")),
        all(Ty::Array(
            &Ty::Struct(&OFFSET_DELETE_PARTITION),
            "partitions",
        )),
    ],
    tagged: &[],
};
const OFFSET_DELETE: MessageDef = MessageDef {
    flexible_from: i16::MAX,
    body: StructDef {
        fields: &[
            all(Ty::Str("group_id")),
            all(Ty::Array(&Ty::Struct(&OFFSET_DELETE_TOPIC), "topics")),
        ],
        tagged: &[],
    },
};

/// The shape of `api_key`'s request body, if this crate decodes that API.
fn message(api_key: ApiKey) -> Option<&'static MessageDef> {
    Some(match api_key {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Metadata => &METADATA,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::AlterConfigs => &ALTER_CONFIGS,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::ElectLeaders => &ELECT_LEADERS,
        ApiKey::AlterPartitionReassignments => &ALTER_PARTITION_REASSIGNMENTS,
        ApiKey::ListPartitionReassignments => &LIST_PARTITION_REASSIGNMENTS,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        _ => return None,
    })
}

/// Whether [`check_body`] knows the shape of `api_key` (it refuses every other key).
#[cfg(test)]
pub(crate) fn has_shape(api_key: ApiKey) -> bool {
    message(api_key).is_some()
}

/// Walks `body` (the bytes after the request header) as a version-`version` `api_key` request
/// and returns how many bytes the body occupies, or the first length that does not fit.
///
/// Fails closed: an API without a shape here is an error, so nothing reaches `kafka-protocol`
/// unchecked.
pub(crate) fn check_body(api_key: ApiKey, version: i16, body: &Bytes) -> Result<usize, WireError> {
    let msg = message(api_key).ok_or(WireError::NoShape {
        api_key: api_key as i16,
    })?;
    let walk = Walk {
        version,
        flexible: version >= msg.flexible_from,
    };
    let mut r = Reader::new(body);
    walk.structure(&mut r, &msg.body)?;
    Ok(r.position())
}

/// The parameters that hold for one whole body.
struct Walk {
    version: i16,
    flexible: bool,
}

impl Walk {
    fn present(&self, f: &Field) -> bool {
        (f.min..=f.max).contains(&self.version)
    }

    fn structure(&self, r: &mut Reader<'_>, def: &StructDef) -> Result<(), WireError> {
        for f in def.fields.iter().filter(|f| self.present(f)) {
            self.value(r, &f.ty)?;
        }
        if self.flexible {
            self.tagged_fields(r, def.tagged)?;
        }
        Ok(())
    }

    fn tagged_fields(&self, r: &mut Reader<'_>, known: &[TaggedField]) -> Result<(), WireError> {
        // Each iteration consumes at least two bytes or fails, so a huge count costs nothing.
        let count = r.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = r.uvarint("tag")?;
            let size = r.uvarint("tagged field size")?;
            match known.iter().find(|t| t.tag == tag) {
                // kafka-protocol reads a known tag's value in place and ignores `size`.
                Some(t) if self.version >= t.min => self.value(r, &t.ty)?,
                Some(_) => {
                    return Err(WireError::TagNotValid {
                        tag,
                        version: self.version,
                    })
                }
                None => r.skip(size as usize, "tagged field")?,
            }
        }
        Ok(())
    }

    /// Reads a length prefix: `None` for null, `Some(len)` otherwise.
    fn length(
        &self,
        r: &mut Reader<'_>,
        wide: bool,
        what: &'static str,
    ) -> Result<Option<u64>, WireError> {
        if self.flexible {
            let n = r.uvarint(what)?;
            return Ok(n.checked_sub(1).map(u64::from));
        }
        let n = if wide {
            i64::from(r.i32(what)?)
        } else {
            i64::from(r.i16(what)?)
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(WireError::NegativeLength { what, len: n }),
            n => Ok(Some(n as u64)),
        }
    }

    fn value(&self, r: &mut Reader<'_>, ty: &Ty) -> Result<(), WireError> {
        match ty {
            Ty::Fixed(n, what) => r.skip(*n, what),
            Ty::Str(what) => self.skip_sized(r, false, what),
            Ty::Bytes(what) => self.skip_sized(r, true, what),
            Ty::Struct(def) => self.structure(r, def),
            Ty::Array(elem, what) => {
                let Some(count) = self.length(r, true, what)? else {
                    return Ok(());
                };
                let min_element_bytes = self.min_size(elem).max(1);
                let remaining = r.remaining();
                if count.saturating_mul(min_element_bytes) > remaining as u64 {
                    return Err(WireError::ArrayTooLong {
                        what,
                        count,
                        min_element_bytes,
                        remaining,
                    });
                }
                for _ in 0..count {
                    self.value(r, elem)?;
                }
                Ok(())
            }
        }
    }

    fn skip_sized(
        &self,
        r: &mut Reader<'_>,
        wide: bool,
        what: &'static str,
    ) -> Result<(), WireError> {
        match self.length(r, wide, what)? {
            None => Ok(()),
            Some(len) => match usize::try_from(len) {
                Ok(len) => r.skip(len, what),
                Err(_) => Err(WireError::Truncated {
                    what,
                    needed: len,
                    remaining: r.remaining(),
                }),
            },
        }
    }

    /// The fewest bytes a value of `ty` takes on the wire in this version.
    fn min_size(&self, ty: &Ty) -> u64 {
        let prefix = |classic: u64| if self.flexible { 1 } else { classic };
        match ty {
            Ty::Fixed(n, _) => *n as u64,
            Ty::Str(_) => prefix(2),
            Ty::Bytes(_) | Ty::Array(..) => prefix(4),
            Ty::Struct(def) => {
                let fields: u64 = def
                    .fields
                    .iter()
                    .filter(|f| self.present(f))
                    .map(|f| self.min_size(&f.ty))
                    .sum();
                fields + u64::from(self.flexible)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(n: i32) -> [u8; 4] {
        n.to_be_bytes()
    }

    #[test]
    fn huge_classic_array_is_refused_before_decoding() {
        // Metadata v1: topics = 2^31 - 1 entries, then 6 bytes.
        let mut body = be32(i32::MAX).to_vec();
        body.extend_from_slice(&[0, 1, b'a', 0, 1, b'b']);
        let err = check_body(ApiKey::Metadata, 1, &Bytes::from(body)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::ArrayTooLong {
                    count: 2147483647,
                    min_element_bytes: 2,
                    remaining: 6,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn huge_compact_array_is_refused() {
        // Metadata v12: topics varint 0xffffffff (= 2^32 - 2 entries).
        let body = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        assert!(matches!(
            check_body(ApiKey::Metadata, 12, &body),
            Err(WireError::ArrayTooLong { .. })
        ));
    }

    #[test]
    fn nested_array_counts_are_checked_too() {
        // CreateTopics v2: one topic "t", 1 partition, rf 1, assignments = [ {0, broker_ids =
        // 2^30 entries} ].
        let mut body = Vec::new();
        body.extend_from_slice(&be32(1));
        body.extend_from_slice(&[0, 1, b't']);
        body.extend_from_slice(&be32(1));
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&be32(1));
        body.extend_from_slice(&be32(0));
        body.extend_from_slice(&be32(1 << 30));
        body.extend_from_slice(&[0; 16]);
        let err = check_body(ApiKey::CreateTopics, 2, &Bytes::from(body)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::ArrayTooLong {
                    what: "broker_ids",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn tighter_than_one_byte_per_element() {
        // ListOffsets v1: 3 topics announced, 10 bytes left: each topic needs at least
        // 2 (name) + 4 (partition count) bytes, so 3 cannot fit although 3 <= 10.
        let mut body = be32(-1).to_vec(); // replica_id
        body.extend_from_slice(&be32(3));
        body.extend_from_slice(&[0; 10]);
        let err = check_body(ApiKey::ListOffsets, 1, &Bytes::from(body)).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::ArrayTooLong {
                    count: 3,
                    min_element_bytes: 6,
                    remaining: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn null_and_negative_lengths() {
        // Metadata v1 with a null topic array (= all topics) is fine.
        assert_eq!(
            check_body(ApiKey::Metadata, 1, &Bytes::from(be32(-1).to_vec())),
            Ok(4)
        );
        assert!(matches!(
            check_body(ApiKey::Metadata, 1, &Bytes::from(be32(-2).to_vec())),
            Err(WireError::NegativeLength { len: -2, .. })
        ));
    }

    #[test]
    fn known_tag_before_its_version_is_refused() {
        // Fetch v12 with the request-level tag 1 (replica_state, v15+).
        let mut body = Vec::new();
        body.extend_from_slice(&be32(-1)); // replica_id
        body.extend_from_slice(&[0; 4 * 3 + 1 + 4 * 2]); // waits, bytes, isolation, session
        body.extend_from_slice(&[1, 1, 1]); // topics [], forgotten [], rack_id ""
        body.extend_from_slice(&[1, 1, 0]); // one tagged field: tag 1, size 0
        assert!(matches!(
            check_body(ApiKey::Fetch, 12, &Bytes::from(body)),
            Err(WireError::TagNotValid {
                tag: 1,
                version: 12
            })
        ));
    }

    #[test]
    fn unknown_api_fails_closed() {
        assert!(!has_shape(ApiKey::DescribeAcls));
        assert!(check_body(ApiKey::DescribeAcls, 3, &Bytes::new()).is_err());
    }
}
