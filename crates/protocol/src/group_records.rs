//! The records of the compacted topic `__consumer_offsets`, in Kafka's own binary formats so
//! that Kafka's tools (e.g. `kafka-dump-log --offsets-decoder`) can read a Rivulet log and the
//! other way round.
//!
//! This module owns the key and value codecs of the classic group coordinator's records, as
//! defined by the JSON schemas of Kafka's group-coordinator module (`OffsetCommitKey`,
//! `OffsetCommitValue`, `GroupMetadataKey`, `GroupMetadataValue`); `kafka-protocol` does not
//! generate these. It knows nothing of groups, offsets retention or compaction: a record with a
//! null value is a tombstone, which is the caller's business; only non-null values come here.
//!
//! ```text
//! key   = version: int16 | 0, 1: OffsetCommitKey { group: string, topic: string, partition: int32 }
//!                        | 2:    GroupMetadataKey { group: string }
//!                        | 3+:   KIP-848 records, not decoded (GroupRecordKey::Other)
//!
//! OffsetCommitValue  = version: int16 (0-4) | offset: int64 | leader_epoch: int32 (v3+)
//!                      | metadata: string | commit_timestamp: int64 | expire_timestamp: int64 (v1 only)
//! GroupMetadataValue = version: int16 (0-4) | protocol_type: string | generation: int32
//!                      | protocol: nullable string | leader: nullable string
//!                      | current_state_timestamp: int64 (v2+) | members: [MemberMetadata]
//! MemberMetadata     = member_id: string | group_instance_id: nullable string (v3+)
//!                      | client_id: string | client_host: string | rebalance_timeout: int32 (v1+)
//!                      | session_timeout: int32 | subscription: bytes | assignment: bytes
//! ```
//!
//! Integers are big-endian. Keys are never flexible (int16-length strings). Values are flexible
//! from v4 (KIP-915): strings, bytes and arrays become compact (unsigned varint length + 1,
//! 0 = null) and every struct ends with a tagged-field section, whose fields are all skipped
//! (this codec reads none). Bytes after a value are ignored, as Kafka's readers ignore them.
//!
//! Decoding never panics and checks every length against the bytes left before allocating for
//! it. Encoding writes a key at version 1 (offsets) or 2 (groups), an `OffsetCommitValue` at v3
//! (v1 when it carries an expire timestamp) and a `GroupMetadataValue` at v3: the versions
//! Kafka's classic coordinator writes, readable by every Kafka since 2.3 (KIP-345 added
//! `GroupMetadataValue` v3).

use bytes::{BufMut, Bytes, BytesMut};

/// The longest string, in bytes, the non-flexible formats this module writes can carry (an
/// int16 length). [`GroupRecordKey::try_encode`] and friends refuse longer ones; Kafka's
/// writers fail on them too.
pub const MAX_STRING_BYTES: usize = i16::MAX as usize;

/// The longest `bytes` field the formats can carry (an int32 length).
const MAX_BYTES: usize = i32::MAX as usize;

/// Why a `__consumer_offsets` key or value could not be decoded (or, for [`Self::TooLong`],
/// encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupRecordError {
    /// The input ends before the value does, or announces more array elements than the bytes
    /// left can hold.
    #[error("{what}: needs {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// A negative length other than the null marker, or null (-1) where the schema does not
    /// allow it.
    #[error("{what}: invalid length {len}")]
    BadLength {
        /// The field being read.
        what: &'static str,
        /// The length as read (-1 for null).
        len: i64,
    },
    /// An unsigned varint longer than five bytes.
    #[error("{what}: unsigned varint longer than five bytes")]
    BadVarint {
        /// The field being read.
        what: &'static str,
    },
    /// A version this codec does not read.
    #[error("{record} version {version} is unknown")]
    UnknownVersion {
        /// `"key"`, `"OffsetCommitValue"` or `"GroupMetadataValue"`.
        record: &'static str,
        /// The version as read.
        version: i16,
    },
    /// A string that is not UTF-8.
    #[error("{what}: not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// (Encoding only) a field longer than its length prefix can express.
    #[error("{what}: {len} bytes, more than the {max} the format can carry")]
    TooLong {
        /// The field being written.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The most the format can carry.
        max: usize,
    },
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecordKey {
    /// `OffsetCommitKey` (key versions 0 and 1): the committed offset of one partition.
    Offset {
        /// The group id.
        group: String,
        /// The topic name.
        topic: String,
        /// The partition index.
        partition: i32,
    },
    /// `GroupMetadataKey` (key version 2): a classic group's membership.
    Group {
        /// The group id.
        group: String,
    },
    /// A key of version 3 or above: a KIP-848 (consumer/share/streams group) record this codec
    /// does not decode. A reader skips the record.
    Other(i16),
}

/// `OffsetCommitValue`: one committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    /// The committed offset.
    pub offset: i64,
    /// The leader epoch of the committed offset, -1 for none (always -1 before v3).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the offset was committed, ms since the epoch.
    pub commit_timestamp: i64,
    /// When the offset expires, ms since the epoch, -1 for none (only v1 carries one: an
    /// OffsetCommit v1 with an explicit commit timestamp or v2-4 with a retention time).
    pub expire_timestamp: i64,
}

/// `GroupMetadataValue`: a classic group's generation and members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// The protocol type (`"consumer"` for consumers, `""` for a group that only commits).
    pub protocol_type: String,
    /// The generation id.
    pub generation: i32,
    /// The chosen protocol (assignor), if any.
    pub protocol: Option<String>,
    /// The leader's member id, if any.
    pub leader: Option<String>,
    /// When the group last changed state, ms since the epoch, -1 for unknown (before v2).
    pub current_state_timestamp: i64,
    /// The members.
    pub members: Vec<MemberMetadata>,
}

/// `MemberMetadata`: one member of a classic group, inside [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    /// The member id.
    pub member_id: String,
    /// The static member id (KIP-345), if any (always `None` before v3).
    pub group_instance_id: Option<String>,
    /// The member's client id.
    pub client_id: String,
    /// The member's host.
    pub client_host: String,
    /// The rebalance timeout, ms. A v0 value has none; it reads as the session timeout, as
    /// Kafka's `GroupMetadataManager` reads it.
    pub rebalance_timeout: i32,
    /// The session timeout, ms.
    pub session_timeout: i32,
    /// The member's JoinGroup protocol metadata for the chosen protocol.
    pub subscription: Bytes,
    /// The member's assignment from SyncGroup.
    pub assignment: Bytes,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
const GROUP_VALUE_VERSIONS: std::ops::RangeInclusive<i16> = 0..=4;
/// First flexible value version (both value types).
const FLEXIBLE_FROM: i16 = 4;

impl GroupRecordKey {
    /// The key's bytes: `Offset` at key version 1, `Group` at version 2. `Other(v)` has no
    /// fields this codec knows and encodes as the bare version. Strings longer than
    /// [`MAX_STRING_BYTES`] are cut to fit (at a char boundary); use [`Self::try_encode`] for
    /// strings a client chose.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Self::Offset {
                group,
                topic,
                partition,
            } => {
                out.put_i16(OFFSET_KEY_VERSION);
                put_str(&mut out, group);
                put_str(&mut out, topic);
                out.put_i32(*partition);
            }
            Self::Group { group } => {
                out.put_i16(GROUP_KEY_VERSION);
                put_str(&mut out, group);
            }
            Self::Other(version) => out.put_i16(*version),
        }
        out.freeze()
    }

    /// [`Self::encode`], refusing strings too long for the format instead of cutting them.
    pub fn try_encode(&self) -> Result<Bytes, GroupRecordError> {
        match self {
            Self::Offset { group, topic, .. } => {
                fits("group", group.len(), MAX_STRING_BYTES)?;
                fits("topic", topic.len(), MAX_STRING_BYTES)?;
            }
            Self::Group { group } => fits("group", group.len(), MAX_STRING_BYTES)?,
            Self::Other(_) => {}
        }
        Ok(self.encode())
    }

    /// Decodes a key. Versions 3 and above are [`Self::Other`]; a negative version is an error.
    pub fn decode(buf: &[u8]) -> Result<Self, GroupRecordError> {
        let mut r = In::new(buf);
        let version = r.i16("key version")?;
        match version {
            0 | 1 => Ok(Self::Offset {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            }),
            2 => Ok(Self::Group {
                group: r.string("group")?,
            }),
            v if v > 2 => Ok(Self::Other(v)),
            v => Err(GroupRecordError::UnknownVersion {
                record: "key",
                version: v,
            }),
        }
    }
}

impl OffsetCommitValue {
    /// The value's bytes: v3, or v1 when `expire_timestamp` is set (v1 has no leader epoch, so
    /// `leader_epoch` is then dropped). A metadata string longer than [`MAX_STRING_BYTES`] is
    /// cut to fit (at a char boundary); use [`Self::try_encode`] to refuse it instead.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        if self.expire_timestamp != -1 {
            out.put_i16(1);
            out.put_i64(self.offset);
            put_str(&mut out, &self.metadata);
            out.put_i64(self.commit_timestamp);
            out.put_i64(self.expire_timestamp);
        } else {
            out.put_i16(3);
            out.put_i64(self.offset);
            out.put_i32(self.leader_epoch);
            put_str(&mut out, &self.metadata);
            out.put_i64(self.commit_timestamp);
        }
        out.freeze()
    }

    /// [`Self::encode`], refusing a metadata string too long for the format.
    pub fn try_encode(&self) -> Result<Bytes, GroupRecordError> {
        fits("metadata", self.metadata.len(), MAX_STRING_BYTES)?;
        Ok(self.encode())
    }

    /// Decodes a value of versions 0-4.
    pub fn decode(buf: &[u8]) -> Result<Self, GroupRecordError> {
        let mut r = In::new(buf);
        let version = r.i16("OffsetCommitValue version")?;
        if !OFFSET_VALUE_VERSIONS.contains(&version) {
            return Err(GroupRecordError::UnknownVersion {
                record: "OffsetCommitValue",
                version,
            });
        }
        r.flexible = version >= FLEXIBLE_FROM;
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader_epoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp = r.i64("commit_timestamp")?;
        let expire_timestamp = if version == 1 {
            r.i64("expire_timestamp")?
        } else {
            -1
        };
        r.tagged_fields()?;
        Ok(Self {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
            expire_timestamp,
        })
    }
}

impl GroupMetadataValue {
    /// The value's bytes, at v3. Strings longer than [`MAX_STRING_BYTES`] are cut to fit (at a
    /// char boundary); use [`Self::try_encode`] to refuse them instead.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(3);
        put_str(&mut out, &self.protocol_type);
        out.put_i32(self.generation);
        put_nullable_str(&mut out, self.protocol.as_deref());
        put_nullable_str(&mut out, self.leader.as_deref());
        out.put_i64(self.current_state_timestamp);
        // Beyond i32::MAX members (hundreds of GB) the array is cut, as `try_encode` refuses.
        out.put_i32(i32::try_from(self.members.len()).unwrap_or(i32::MAX));
        for m in self.members.iter().take(i32::MAX as usize) {
            put_str(&mut out, &m.member_id);
            put_nullable_str(&mut out, m.group_instance_id.as_deref());
            put_str(&mut out, &m.client_id);
            put_str(&mut out, &m.client_host);
            out.put_i32(m.rebalance_timeout);
            out.put_i32(m.session_timeout);
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out.freeze()
    }

    /// [`Self::encode`], refusing strings and bytes too long for the format.
    pub fn try_encode(&self) -> Result<Bytes, GroupRecordError> {
        fits("protocol_type", self.protocol_type.len(), MAX_STRING_BYTES)?;
        fits("protocol", opt_len(&self.protocol), MAX_STRING_BYTES)?;
        fits("leader", opt_len(&self.leader), MAX_STRING_BYTES)?;
        fits("members", self.members.len(), i32::MAX as usize)?;
        for m in &self.members {
            fits("member_id", m.member_id.len(), MAX_STRING_BYTES)?;
            fits(
                "group_instance_id",
                opt_len(&m.group_instance_id),
                MAX_STRING_BYTES,
            )?;
            fits("client_id", m.client_id.len(), MAX_STRING_BYTES)?;
            fits("client_host", m.client_host.len(), MAX_STRING_BYTES)?;
            fits("subscription", m.subscription.len(), MAX_BYTES)?;
            fits("assignment", m.assignment.len(), MAX_BYTES)?;
        }
        Ok(self.encode())
    }

    /// Decodes a value of versions 0-4.
    pub fn decode(buf: &[u8]) -> Result<Self, GroupRecordError> {
        let mut r = In::new(buf);
        let version = r.i16("GroupMetadataValue version")?;
        if !GROUP_VALUE_VERSIONS.contains(&version) {
            return Err(GroupRecordError::UnknownVersion {
                record: "GroupMetadataValue",
                version,
            });
        }
        r.flexible = version >= FLEXIBLE_FROM;
        let protocol_type = r.string("protocol_type")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp = if version >= 2 {
            r.i64("current_state_timestamp")?
        } else {
            -1
        };
        let count = r.array_len("members", min_member_bytes(version))?;
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            let member_id = r.string("member_id")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string("group_instance_id")?
            } else {
                None
            };
            let client_id = r.string("client_id")?;
            let client_host = r.string("client_host")?;
            let rebalance_timeout = if version >= 1 {
                Some(r.i32("rebalance_timeout")?)
            } else {
                None
            };
            let session_timeout = r.i32("session_timeout")?;
            let subscription = r.bytes("subscription")?;
            let assignment = r.bytes("assignment")?;
            r.tagged_fields()?;
            members.push(MemberMetadata {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
                session_timeout,
                subscription,
                assignment,
            });
        }
        r.tagged_fields()?;
        Ok(Self {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

/// The fewest bytes one `MemberMetadata` of `version` takes.
fn min_member_bytes(version: i16) -> u64 {
    if version >= FLEXIBLE_FROM {
        // Four compact strings, two int32, two compact bytes, an empty tag section.
        return 4 + 8 + 2 + 1;
    }
    let mut n = 2 + 2 + 2 + 4 + 4 + 4; // member_id, client_id, client_host, session, 2 x bytes
    if version >= 1 {
        n += 4; // rebalance_timeout
    }
    if version >= 3 {
        n += 2; // group_instance_id
    }
    n
}

fn opt_len(s: &Option<String>) -> usize {
    s.as_ref().map_or(0, String::len)
}

fn fits(what: &'static str, len: usize, max: usize) -> Result<(), GroupRecordError> {
    if len > max {
        return Err(GroupRecordError::TooLong { what, len, max });
    }
    Ok(())
}

/// `s`, cut to at most [`MAX_STRING_BYTES`] bytes at a char boundary.
fn clamp(s: &str) -> &str {
    if s.len() <= MAX_STRING_BYTES {
        return s;
    }
    let mut end = MAX_STRING_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// A non-flexible string: int16 length, UTF-8 bytes.
fn put_str(out: &mut BytesMut, s: &str) {
    let s = clamp(s);
    // `clamp` keeps the length within i16.
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

/// A non-flexible nullable string: length -1 for null.
fn put_nullable_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.put_i16(-1),
    }
}

/// Non-flexible bytes: int32 length, then the bytes (cut to `i32::MAX`, which no record
/// reaches: the log's batches are capped far below).
fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    let b = &b[..b.len().min(MAX_BYTES)];
    out.put_i32(b.len() as i32);
    out.put_slice(b);
}

/// A bounds-checked cursor over one key or value, classic or flexible. Every read checks the
/// bytes left first and fails instead of panicking; nothing is allocated before the bytes it
/// is for are known to be there. (The crate's `wire::Reader` walks request frames held as
/// `Bytes` and reports request errors; records arrive as plain slices.)
struct In<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> In<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            flexible: false,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `len` bytes.
    fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], GroupRecordError> {
        let remaining = self.buf.len();
        match usize::try_from(len) {
            Ok(n) if n <= remaining => {
                let (head, tail) = self.buf.split_at(n);
                self.buf = tail;
                Ok(head)
            }
            _ => Err(GroupRecordError::Truncated {
                what,
                needed: len,
                remaining,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GroupRecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, GroupRecordError> {
        self.array(what).map(i16::from_be_bytes)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, GroupRecordError> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, GroupRecordError> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// An unsigned varint as Kafka's `ByteUtils.readUnsignedVarint` reads it: at most five
    /// bytes, least significant group first, bits past 32 dropped; a fifth byte with the
    /// continuation bit set is an error.
    fn uvarint(&mut self, what: &'static str) -> Result<u32, GroupRecordError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.array::<1>(what)?;
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(GroupRecordError::BadVarint { what })
    }

    /// A length prefix: compact (unsigned varint, length + 1, 0 = null) when flexible, else an
    /// int16 (`wide` = false) or int32; `None` for null.
    fn length(&mut self, wide: bool, what: &'static str) -> Result<Option<u64>, GroupRecordError> {
        if self.flexible {
            let n = self.uvarint(what)?;
            return Ok(n.checked_sub(1).map(u64::from));
        }
        let n = if wide {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(GroupRecordError::BadLength { what, len: n }),
            n => Ok(Some(n as u64)),
        }
    }

    fn nullable_string(&mut self, what: &'static str) -> Result<Option<String>, GroupRecordError> {
        let Some(len) = self.length(false, what)? else {
            return Ok(None);
        };
        let raw = self.take(len, what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(GroupRecordError::InvalidUtf8 { what }),
        }
    }

    fn string(&mut self, what: &'static str) -> Result<String, GroupRecordError> {
        self.nullable_string(what)?
            .ok_or(GroupRecordError::BadLength { what, len: -1 })
    }

    fn bytes(&mut self, what: &'static str) -> Result<Bytes, GroupRecordError> {
        match self.length(true, what)? {
            Some(len) => self.take(len, what).map(Bytes::copy_from_slice),
            None => Err(GroupRecordError::BadLength { what, len: -1 }),
        }
    }

    /// A non-null array's element count, refused when `count` elements of at least
    /// `min_element_bytes` each cannot fit in the bytes left.
    fn array_len(
        &mut self,
        what: &'static str,
        min_element_bytes: u64,
    ) -> Result<usize, GroupRecordError> {
        let Some(count) = self.length(true, what)? else {
            return Err(GroupRecordError::BadLength { what, len: -1 });
        };
        let needed = count.saturating_mul(min_element_bytes);
        let remaining = self.remaining();
        match usize::try_from(count) {
            Ok(count) if needed <= remaining as u64 => Ok(count),
            _ => Err(GroupRecordError::Truncated {
                what,
                needed,
                remaining,
            }),
        }
    }

    /// A flexible struct's tagged-field section, every field skipped.
    fn tagged_fields(&mut self) -> Result<(), GroupRecordError> {
        if !self.flexible {
            return Ok(());
        }
        // Each iteration consumes at least two bytes or fails, so a huge count costs nothing.
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")?;
            self.take(u64::from(size), "tagged field")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hand-built wire bytes, for versions this module reads but does not write.
    #[derive(Default)]
    struct B(Vec<u8>);

    impl B {
        fn i16(mut self, v: i16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn raw(mut self, v: &[u8]) -> Self {
            self.0.extend_from_slice(v);
            self
        }
        /// Classic string (int16 length).
        fn s(self, v: &str) -> Self {
            self.i16(v.len() as i16).raw(v.as_bytes())
        }
        /// Classic bytes (int32 length).
        fn b(self, v: &[u8]) -> Self {
            self.i32(v.len() as i32).raw(v)
        }
        /// Compact string or bytes (varint length + 1; all test lengths are < 127).
        fn c(self, v: &[u8]) -> Self {
            self.raw(&[v.len() as u8 + 1]).raw(v)
        }
    }

    fn offset_key() -> GroupRecordKey {
        GroupRecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        }
    }

    fn offset_value() -> OffsetCommitValue {
        OffsetCommitValue {
            offset: 1234,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
            expire_timestamp: -1,
        }
    }

    fn member(n: u8) -> MemberMetadata {
        MemberMetadata {
            member_id: format!("consumer-{n}-0e1f"),
            group_instance_id: n.is_multiple_of(2).then(|| format!("instance-{n}")),
            client_id: format!("consumer-{n}"),
            client_host: "/10.0.0.1".into(),
            rebalance_timeout: 300_000,
            session_timeout: 45_000,
            subscription: Bytes::from(vec![0, 3, 0, 0, 0, 1, 0, 1, b't', n]),
            assignment: Bytes::from(vec![n; 3]),
        }
    }

    fn group_value() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("consumer-1-0e1f".into()),
            current_state_timestamp: 1_700_000_000_123,
            members: vec![member(1), member(2)],
        }
    }

    #[test]
    fn offset_key_bytes_are_kafkas() {
        let expected = [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0];
        assert_eq!(&offset_key().encode()[..], &expected);
        assert_eq!(GroupRecordKey::decode(&expected), Ok(offset_key()));
        // Key version 0 has the same fields.
        let v0 = [0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0];
        assert_eq!(GroupRecordKey::decode(&v0), Ok(offset_key()));
    }

    #[test]
    fn group_key_round_trips() {
        let key = GroupRecordKey::Group {
            group: "my-group".into(),
        };
        let bytes = key.encode();
        assert_eq!(&bytes[..], &B::default().i16(2).s("my-group").0[..]);
        assert_eq!(GroupRecordKey::decode(&bytes), Ok(key));
        let key = GroupRecordKey::Offset {
            group: "grüppe".into(),
            topic: "orders".into(),
            partition: 17,
        };
        assert_eq!(GroupRecordKey::decode(&key.encode()), Ok(key));
    }

    #[test]
    fn kip_848_keys_are_other_and_negative_versions_are_errors() {
        // ConsumerGroupMetadataKey (3) and above: whatever follows is not read.
        for v in [3i16, 4, 11, i16::MAX] {
            let bytes = B::default().i16(v).raw(&[0xff, 0xff, 0x00]).0;
            assert_eq!(GroupRecordKey::decode(&bytes), Ok(GroupRecordKey::Other(v)));
            assert_eq!(
                GroupRecordKey::decode(&GroupRecordKey::Other(v).encode()),
                Ok(GroupRecordKey::Other(v))
            );
        }
        assert!(matches!(
            GroupRecordKey::decode(&[0xff, 0xff]),
            Err(GroupRecordError::UnknownVersion { version: -1, .. })
        ));
    }

    #[test]
    fn offset_value_round_trips_at_v3_and_v1() {
        let v = offset_value();
        let bytes = v.encode();
        assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), 3);
        assert_eq!(
            &bytes[..],
            &B::default()
                .i16(3)
                .i64(1234)
                .i32(7)
                .s("meta")
                .i64(1_700_000_000_000)
                .0[..]
        );
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(v));

        // An expire timestamp needs v1, which has no leader epoch.
        let v = OffsetCommitValue {
            leader_epoch: -1,
            expire_timestamp: 1_700_086_400_000,
            ..offset_value()
        };
        let bytes = v.encode();
        assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), 1);
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(v.clone()));
        let with_epoch = OffsetCommitValue {
            leader_epoch: 9,
            ..v.clone()
        };
        assert_eq!(OffsetCommitValue::decode(&with_epoch.encode()), Ok(v));
    }

    #[test]
    fn offset_value_every_version_decodes() {
        let base = OffsetCommitValue {
            leader_epoch: -1,
            ..offset_value()
        };
        // v0: offset, metadata, commit timestamp (written out in full once).
        let v0 = [
            0, 0, // version
            0, 0, 0, 0, 0, 0, 0x04, 0xd2, // offset 1234
            0, 4, b'm', b'e', b't', b'a', // metadata
            0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // commit timestamp
        ];
        assert_eq!(OffsetCommitValue::decode(&v0), Ok(base.clone()));

        let v1 = B::default()
            .i16(1)
            .i64(1234)
            .s("meta")
            .i64(1_700_000_000_000)
            .i64(1_800_000_000_000)
            .0;
        assert_eq!(
            OffsetCommitValue::decode(&v1),
            Ok(OffsetCommitValue {
                expire_timestamp: 1_800_000_000_000,
                ..base.clone()
            })
        );

        let v2 = B::default()
            .i16(2)
            .i64(1234)
            .s("meta")
            .i64(1_700_000_000_000)
            .0;
        assert_eq!(OffsetCommitValue::decode(&v2), Ok(base.clone()));

        let v3 = B::default()
            .i16(3)
            .i64(1234)
            .i32(7)
            .s("meta")
            .i64(1_700_000_000_000)
            .0;
        assert_eq!(OffsetCommitValue::decode(&v3), Ok(offset_value()));

        // v4: compact metadata, then a tag section with one unknown tag (tag 0, 3 bytes) that
        // is skipped.
        let v4 = B::default()
            .i16(4)
            .i64(1234)
            .i32(7)
            .c(b"meta")
            .i64(1_700_000_000_000)
            .raw(&[1, 0, 3, 9, 9, 9])
            .0;
        assert_eq!(OffsetCommitValue::decode(&v4), Ok(offset_value()));
        let v4_no_tags = B::default()
            .i16(4)
            .i64(1234)
            .i32(7)
            .c(b"")
            .i64(5)
            .raw(&[0])
            .0;
        assert_eq!(
            OffsetCommitValue::decode(&v4_no_tags),
            Ok(OffsetCommitValue {
                offset: 1234,
                leader_epoch: 7,
                metadata: String::new(),
                commit_timestamp: 5,
                expire_timestamp: -1,
            })
        );

        for version in [-1i16, 5, 100] {
            let bytes = B::default().i16(version).raw(&[0; 32]).0;
            assert_eq!(
                OffsetCommitValue::decode(&bytes),
                Err(GroupRecordError::UnknownVersion {
                    record: "OffsetCommitValue",
                    version
                })
            );
        }
    }

    #[test]
    fn group_value_round_trips_at_v3() {
        let v = group_value();
        let bytes = v.encode();
        assert_eq!(i16::from_be_bytes([bytes[0], bytes[1]]), 3);
        assert_eq!(GroupMetadataValue::decode(&bytes), Ok(v));

        // An empty group (offsets only), nulls everywhere they are allowed.
        let empty = GroupMetadataValue {
            protocol_type: String::new(),
            generation: 0,
            protocol: None,
            leader: None,
            current_state_timestamp: -1,
            members: vec![],
        };
        let bytes = empty.encode();
        assert_eq!(
            &bytes[..],
            &B::default()
                .i16(3)
                .s("")
                .i32(0)
                .i16(-1)
                .i16(-1)
                .i64(-1)
                .i32(0)
                .0[..]
        );
        assert_eq!(GroupMetadataValue::decode(&bytes), Ok(empty));
    }

    /// The hand-built bytes of `group_value()` at classic `version` 0-3.
    fn classic_group_bytes(version: i16) -> Vec<u8> {
        let v = group_value();
        let mut b = B::default()
            .i16(version)
            .s(&v.protocol_type)
            .i32(v.generation)
            .s("range")
            .s("consumer-1-0e1f");
        if version >= 2 {
            b = b.i64(v.current_state_timestamp);
        }
        b = b.i32(2);
        for m in &v.members {
            b = b.s(&m.member_id);
            if version >= 3 {
                b = match &m.group_instance_id {
                    Some(id) => b.s(id),
                    None => b.i16(-1),
                };
            }
            b = b.s(&m.client_id).s(&m.client_host);
            if version >= 1 {
                b = b.i32(m.rebalance_timeout);
            }
            b = b.i32(m.session_timeout).b(&m.subscription).b(&m.assignment);
        }
        b.0
    }

    #[test]
    fn group_value_every_version_decodes() {
        let full = group_value();
        for version in 0..=3 {
            let mut expected = full.clone();
            if version < 3 {
                for m in &mut expected.members {
                    m.group_instance_id = None;
                }
            }
            if version < 2 {
                expected.current_state_timestamp = -1;
            }
            if version < 1 {
                // No rebalance timeout in v0: it reads as the session timeout.
                for m in &mut expected.members {
                    m.rebalance_timeout = m.session_timeout;
                }
            }
            assert_eq!(
                GroupMetadataValue::decode(&classic_group_bytes(version)),
                Ok(expected),
                "v{version}"
            );
        }
        assert_eq!(
            GroupMetadataValue::decode(&classic_group_bytes(3)),
            Ok(full.clone())
        );

        // v4: compact everything, a tag section on each member and at the end (one unknown
        // tag on the first member and at the top level).
        let mut b = B::default()
            .i16(4)
            .c(b"consumer")
            .i32(5)
            .c(b"range")
            .c(b"consumer-1-0e1f")
            .i64(full.current_state_timestamp)
            .raw(&[3]); // two members
        for (i, m) in full.members.iter().enumerate() {
            b = b.c(m.member_id.as_bytes());
            b = match &m.group_instance_id {
                Some(id) => b.c(id.as_bytes()),
                None => b.raw(&[0]),
            };
            b = b
                .c(m.client_id.as_bytes())
                .c(m.client_host.as_bytes())
                .i32(m.rebalance_timeout)
                .i32(m.session_timeout)
                .c(&m.subscription)
                .c(&m.assignment);
            b = if i == 0 {
                b.raw(&[1, 5, 2, 0xab, 0xcd])
            } else {
                b.raw(&[0])
            };
        }
        let v4 = b.raw(&[1, 0x80, 0x01, 1, 0]).0; // tag 128, one byte
        assert_eq!(GroupMetadataValue::decode(&v4), Ok(full));

        // Null protocol and leader in v4 are 0-length compact strings.
        let v4_empty = B::default()
            .i16(4)
            .c(b"")
            .i32(0)
            .raw(&[0, 0])
            .i64(-1)
            .raw(&[1, 0])
            .0;
        let empty = GroupMetadataValue::decode(&v4_empty).unwrap();
        assert_eq!((empty.protocol, empty.leader), (None, None));
        assert!(empty.members.is_empty());

        for version in [-1i16, 5] {
            assert!(matches!(
                GroupMetadataValue::decode(&B::default().i16(version).0),
                Err(GroupRecordError::UnknownVersion { .. })
            ));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let inputs: Vec<(&str, Vec<u8>)> = vec![
            ("offset key", offset_key().encode().to_vec()),
            (
                "group key",
                GroupRecordKey::Group { group: "g".into() }
                    .encode()
                    .to_vec(),
            ),
            ("offset value v3", offset_value().encode().to_vec()),
            (
                "offset value v1",
                OffsetCommitValue {
                    expire_timestamp: 1,
                    ..offset_value()
                }
                .encode()
                .to_vec(),
            ),
            (
                "offset value v4",
                B::default()
                    .i16(4)
                    .i64(1)
                    .i32(2)
                    .c(b"m")
                    .i64(3)
                    .raw(&[1, 0, 2, 7, 7])
                    .0,
            ),
            ("group value v3", group_value().encode().to_vec()),
            ("group value v0", classic_group_bytes(0)),
        ];
        for (name, bytes) in inputs {
            for cut in 0..bytes.len() {
                let prefix = &bytes[..cut];
                let err = if name.contains("key") {
                    GroupRecordKey::decode(prefix).err()
                } else if name.contains("offset") {
                    OffsetCommitValue::decode(prefix).err()
                } else {
                    GroupMetadataValue::decode(prefix).err()
                };
                assert!(
                    matches!(err, Some(GroupRecordError::Truncated { .. })),
                    "{name} cut at {cut}/{}: {err:?}",
                    bytes.len()
                );
            }
        }
        // The flexible group value too: its tag sections are the last bytes.
        let v4 = B::default()
            .i16(4)
            .c(b"c")
            .i32(1)
            .raw(&[0, 0])
            .i64(1)
            .raw(&[2])
            .c(b"m")
            .raw(&[0])
            .c(b"i")
            .c(b"h")
            .i32(1)
            .i32(2)
            .c(b"s")
            .c(b"a")
            .raw(&[0, 0])
            .0;
        assert!(GroupMetadataValue::decode(&v4).is_ok());
        for cut in 0..v4.len() {
            assert!(GroupMetadataValue::decode(&v4[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn huge_member_counts_are_refused_before_allocating() {
        for (version, count) in [(3i16, i32::MAX), (0, 1 << 28), (1, 2)] {
            let bytes = B::default()
                .i16(version)
                .s("consumer")
                .i32(1)
                .i16(-1)
                .i16(-1)
                .raw(if version >= 2 { &[0; 8] } else { &[] })
                .i32(count)
                .raw(&[0; 20])
                .0;
            assert!(
                matches!(
                    GroupMetadataValue::decode(&bytes),
                    Err(GroupRecordError::Truncated {
                        what: "members",
                        ..
                    })
                ),
                "v{version} count {count}"
            );
        }
        // Compact: varint 0xffffffff = 2^32 - 2 members.
        let bytes = B::default()
            .i16(4)
            .c(b"consumer")
            .i32(1)
            .raw(&[0, 0])
            .i64(0)
            .raw(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0])
            .0;
        assert!(matches!(
            GroupMetadataValue::decode(&bytes),
            Err(GroupRecordError::Truncated {
                what: "members",
                ..
            })
        ));
        // A huge string or bytes length is a truncation, not an allocation.
        let bytes = B::default().i16(1).i16(i16::MAX).raw(b"g").0;
        assert!(matches!(
            GroupRecordKey::decode(&bytes),
            Err(GroupRecordError::Truncated { needed: 32767, .. })
        ));
        let bytes = B::default()
            .i16(4)
            .i64(1)
            .i32(2)
            .raw(&[0xff, 0xff, 0xff, 0xff, 0x0f])
            .0;
        assert!(matches!(
            OffsetCommitValue::decode(&bytes),
            Err(GroupRecordError::Truncated { .. })
        ));
        // A huge tagged-field count with nothing behind it.
        let bytes = B::default()
            .i16(4)
            .i64(1)
            .i32(2)
            .c(b"")
            .i64(3)
            .raw(&[0xff, 0xff, 0xff, 0xff, 0x0f])
            .0;
        assert!(OffsetCommitValue::decode(&bytes).is_err());
    }

    #[test]
    fn bad_lengths_nulls_and_utf8() {
        // Null where a string is required.
        let bytes = B::default().i16(2).i16(-1).0;
        assert_eq!(
            GroupRecordKey::decode(&bytes),
            Err(GroupRecordError::BadLength {
                what: "group",
                len: -1
            })
        );
        let bytes = B::default().i16(2).i16(-2).0;
        assert!(matches!(
            GroupRecordKey::decode(&bytes),
            Err(GroupRecordError::BadLength { len: -2, .. })
        ));
        // Compact null metadata in v4.
        let bytes = B::default()
            .i16(4)
            .i64(1)
            .i32(2)
            .raw(&[0])
            .i64(3)
            .raw(&[0])
            .0;
        assert!(matches!(
            OffsetCommitValue::decode(&bytes),
            Err(GroupRecordError::BadLength {
                what: "metadata",
                ..
            })
        ));
        // Null subscription bytes.
        let mut v0 = classic_group_bytes(0);
        let at = v0.len() - (4 + 3) - (4 + 10); // second member's subscription length
        v0[at..at + 4].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            GroupMetadataValue::decode(&v0),
            Err(GroupRecordError::BadLength {
                what: "subscription",
                ..
            })
        ));
        // Invalid UTF-8.
        let bytes = B::default().i16(2).i16(2).raw(&[0xc3, 0x28]).0;
        assert_eq!(
            GroupRecordKey::decode(&bytes),
            Err(GroupRecordError::InvalidUtf8 { what: "group" })
        );
    }

    #[test]
    fn strings_too_long_for_int16_lengths() {
        let long = "é".repeat(20_000); // 40 000 bytes
        let key = GroupRecordKey::Group {
            group: long.clone(),
        };
        assert_eq!(
            key.try_encode(),
            Err(GroupRecordError::TooLong {
                what: "group",
                len: 40_000,
                max: MAX_STRING_BYTES
            })
        );
        // `encode` cuts at a char boundary instead of panicking or writing a bad length.
        let GroupRecordKey::Group { group } = GroupRecordKey::decode(&key.encode()).unwrap() else {
            panic!("not a group key");
        };
        assert_eq!(group.len(), MAX_STRING_BYTES - 1);
        assert!(long.starts_with(&group));

        let value = OffsetCommitValue {
            metadata: long.clone(),
            ..offset_value()
        };
        assert!(value.try_encode().is_err());
        let mut group = group_value();
        group.members[1].client_host = long;
        assert!(matches!(
            group.try_encode(),
            Err(GroupRecordError::TooLong {
                what: "client_host",
                ..
            })
        ));
        assert_eq!(group_value().try_encode(), Ok(group_value().encode()));
        assert_eq!(offset_value().try_encode(), Ok(offset_value().encode()));
        assert_eq!(offset_key().try_encode(), Ok(offset_key().encode()));
    }

    #[test]
    fn varints_follow_kafkas_reader() {
        // A two-byte compact length (128 + 1) in front of 128 metadata bytes.
        let metadata = "m".repeat(128);
        let bytes = B::default()
            .i16(4)
            .i64(1)
            .i32(2)
            .raw(&[0x81, 0x01])
            .raw(metadata.as_bytes())
            .i64(3)
            .raw(&[0])
            .0;
        assert_eq!(
            OffsetCommitValue::decode(&bytes).map(|v| v.metadata),
            Ok(metadata)
        );
        // Six varint bytes: refused, as Kafka's ByteUtils.readUnsignedVarint refuses them.
        let bytes = B::default()
            .i16(4)
            .i64(1)
            .i32(2)
            .raw(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
            .0;
        assert_eq!(
            OffsetCommitValue::decode(&bytes),
            Err(GroupRecordError::BadVarint { what: "metadata" })
        );
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut bytes = offset_value().encode().to_vec();
        bytes.extend_from_slice(b"tail");
        assert_eq!(OffsetCommitValue::decode(&bytes), Ok(offset_value()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = GroupRecordKey::decode(&bytes);
            let _ = OffsetCommitValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
        }

        #[test]
        fn mutated_values_never_panic(
            which in 0usize..3,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = match which {
                0 => offset_key().encode().to_vec(),
                1 => offset_value().encode().to_vec(),
                _ => group_value().encode().to_vec(),
            };
            for (at, value) in edits {
                let at = at % bytes.len();
                bytes[at] = value;
            }
            let _ = GroupRecordKey::decode(&bytes);
            let _ = OffsetCommitValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
        }

        #[test]
        fn offset_values_round_trip(
            offset in any::<i64>(),
            leader_epoch in any::<i32>(),
            metadata in ".{0,40}",
            commit_timestamp in any::<i64>(),
        ) {
            let v = OffsetCommitValue {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp,
                expire_timestamp: -1,
            };
            prop_assert_eq!(OffsetCommitValue::decode(&v.encode()), Ok(v));
        }
    }
}
