//! A bounds-checked reader over a request frame, shared by the length check in
//! [`crate::schema`] and the hand-written [`crate::legacy_produce`] decoder.
//!
//! Every read checks the bytes left first and fails with a [`WireError`] instead of panicking;
//! nothing is allocated: byte strings come back as [`Bytes`] slices of the frame. Integers are
//! big-endian and unsigned varints follow `kafka-protocol`'s decoder bit for bit (at most five
//! bytes, excess high bits dropped) so that a walk with this reader lands on exactly the offsets
//! that crate's decoder will read.

use bytes::Bytes;

/// Why bytes could not be read as the expected wire type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The frame ends before the value does.
    #[error("{what}: needs {needed} bytes, {remaining} left")]
    Truncated {
        what: &'static str,
        needed: u64,
        remaining: usize,
    },
    /// A length prefix is negative and not the null marker -1.
    #[error("{what}: negative length {len}")]
    NegativeLength { what: &'static str, len: i64 },
    /// A null where the schema does not allow one.
    #[error("{what}: null is not allowed")]
    UnexpectedNull { what: &'static str },
    /// An array announces more elements than the bytes left can hold (Kafka's generated readers
    /// refuse these too: "Tried to allocate a collection of size ...").
    #[error(
        "{what}: {count} elements of at least {min_element_bytes} bytes each, \
         but only {remaining} bytes left"
    )]
    ArrayTooLong {
        what: &'static str,
        count: u64,
        min_element_bytes: u64,
        remaining: usize,
    },
    /// A string is not UTF-8.
    #[error("{what}: not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    /// A tagged field this message defines, but only from a later version.
    #[error("tagged field {tag} is not valid in version {version}")]
    TagNotValid { tag: u32, version: i16 },
    /// A version outside what the reader was written for.
    #[error("version {version} is not decodable by this reader")]
    BadVersion { version: i16 },
    /// An API whose body shape this crate does not know.
    #[error("no body shape for api key {api_key}")]
    NoShape { api_key: i16 },
}

/// A cursor over a frame; reads advance it only when they succeed.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let all: &'a [u8] = self.buf.as_ref();
        let end = self.pos.checked_add(n).filter(|end| *end <= all.len());
        match end {
            Some(end) => {
                let out = &all[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            None => Err(WireError::Truncated {
                what,
                needed: n as u64,
                remaining: self.remaining(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    /// Skips `n` bytes.
    pub(crate) fn skip(&mut self, n: usize, what: &'static str) -> Result<(), WireError> {
        self.take(n, what).map(|_| ())
    }

    /// `n` bytes as a slice of the frame (no copy).
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, WireError> {
        let start = self.pos;
        self.skip(n, what)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// A big-endian `i16`.
    pub(crate) fn i16(&mut self, what: &'static str) -> Result<i16, WireError> {
        self.array(what).map(i16::from_be_bytes)
    }

    /// A big-endian `i32`.
    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        self.array(what).map(i32::from_be_bytes)
    }

    /// A big-endian `i64`.
    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        self.array(what).map(i64::from_be_bytes)
    }

    /// An unsigned varint as `kafka-protocol` reads it: up to five bytes, low 7 bits each,
    /// least significant group first; bits past 32 are dropped.
    pub(crate) fn uvarint(&mut self, what: &'static str) -> Result<u32, WireError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.array::<1>(what)?;
            value |= u32::from(b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_advances() {
        let buf = Bytes::from_static(&[0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 9]);
        let mut r = Reader::new(&buf);
        assert_eq!(r.i16("a"), Ok(1));
        assert_eq!(r.i32("b"), Ok(2));
        assert_eq!(r.i64("c"), Ok(3));
        assert_eq!(r.position(), 14);
        assert_eq!(r.bytes(1, "d").map(|b| b.to_vec()), Ok(vec![9]));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn short_reads_fail_without_moving() {
        let buf = Bytes::from_static(&[0, 1, 2]);
        let mut r = Reader::new(&buf);
        assert!(matches!(
            r.i32("x"),
            Err(WireError::Truncated {
                needed: 4,
                remaining: 3,
                ..
            })
        ));
        assert_eq!(r.position(), 0);
        assert!(r.skip(usize::MAX, "huge").is_err());
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn uvarint_follows_kafka_protocol_rules() {
        // (input, value, bytes consumed): at most five bytes are read, and the high bits of
        // the fifth are dropped, exactly as kafka-protocol's `UnsignedVarInt` decoder does.
        let cases: &[(&[u8], u32, usize)] = &[
            (&[0], 0, 1),
            (&[0x7f], 127, 1),
            (&[0x80, 0x01], 128, 2),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], u32::MAX, 5),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], u32::MAX, 5),
            (&[0x80, 0x80, 0x80, 0x80, 0x80], 0, 5),
        ];
        for (input, value, used) in cases {
            let buf = Bytes::copy_from_slice(input);
            let mut r = Reader::new(&buf);
            assert_eq!(r.uvarint("v"), Ok(*value), "{input:?}");
            assert_eq!(r.position(), *used, "{input:?}");
        }
        let truncated = Bytes::from_static(&[0x80]);
        assert!(Reader::new(&truncated).uvarint("v").is_err());
    }
}
