//! Kafka framing: every request and response is a 4-byte big-endian signed length followed by
//! that many bytes (header and body; the length does not count itself).
//!
//! ```text
//! +----------------+------------------------------------------+
//! | size: i32 (BE) | size bytes: request header + request body |
//! +----------------+------------------------------------------+
//! ```
//!
//! Kafka's rules (`NetworkReceive.readFrom`), which [`frame_codec`] follows:
//! - a negative size is invalid, and a size above `socket.request.max.bytes` (default
//!   104857600, [`DEFAULT_MAX_FRAME_BYTES`]) is refused as soon as the 4 size bytes are in,
//!   before any buffer for the payload is allocated; a size exactly at the limit is allowed;
//! - a size of 0 is a valid frame at this layer (an empty payload, which then fails header
//!   parsing: [`crate::decode_request`] reports it as malformed);
//! - there is no resynchronisation: after a bad size the connection is closed.
//!
//! A partial frame is not an error: the codec returns `Ok(None)` until the whole frame is
//! buffered (mini-redis style check-then-parse). Once a valid size has been read the codec
//! reserves room for the whole payload, so the memory a connection can pin is bounded by the
//! limit passed here.

use tokio_util::codec::LengthDelimitedCodec;

/// Kafka's default `socket.request.max.bytes`: 100 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 104_857_600;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// A codec that splits a byte stream into Kafka frames: it yields each payload without its
/// length prefix, and fails (`std::io::ErrorKind::InvalidData`) on a length above
/// `max_frame_bytes` or a negative one, as soon as the 4 length bytes are available.
///
/// `max_frame_bytes` is capped at `i32::MAX`, so a length with the sign bit set is always over
/// the limit. Its encoder half prefixes a payload with its length (the broker normally writes
/// whole frames with [`crate::encode_response`] instead).
pub fn frame_codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_type::<u32>()
        .length_adjustment(0)
        .num_skip(LENGTH_PREFIX_BYTES)
        .big_endian()
        .max_frame_length(max_frame_bytes.min(i32::MAX as usize))
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    fn prefix(n: u32) -> [u8; 4] {
        n.to_be_bytes()
    }

    #[test]
    fn oversize_length_fails_after_four_bytes_without_allocating() {
        let mut codec = frame_codec(DEFAULT_MAX_FRAME_BYTES);
        let mut buf = BytesMut::with_capacity(8);
        buf.put_slice(&prefix(DEFAULT_MAX_FRAME_BYTES as u32 + 1));
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(buf.capacity() < 1024, "reserved {} bytes", buf.capacity());
    }

    #[test]
    fn negative_length_fails() {
        for raw in [0xffff_ffffu32, 0x8000_0000] {
            // Even with the largest cap, a length with the sign bit set is refused.
            let mut codec = frame_codec(usize::MAX);
            let mut buf = BytesMut::from(&prefix(raw)[..]);
            assert!(codec.decode(&mut buf).is_err(), "{raw:#x}");
            assert!(buf.capacity() < 1024);
        }
    }

    #[test]
    fn partial_frames_are_incomplete_not_errors() {
        let mut codec = frame_codec(16);
        let mut buf = BytesMut::new();
        for b in prefix(3).into_iter().take(3) {
            buf.put_u8(b);
            assert!(codec.decode(&mut buf).unwrap().is_none());
        }
        buf.put_u8(3);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.put_slice(b"ab");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        buf.put_slice(b"c");
        let frame = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], b"abc", "the prefix is not part of the frame");
        assert!(buf.is_empty());
    }

    #[test]
    fn limit_is_inclusive_and_empty_frames_pass() {
        let mut codec = frame_codec(4);
        let mut buf = BytesMut::new();
        buf.put_slice(&prefix(4));
        buf.put_slice(b"wxyz");
        buf.put_slice(&prefix(0));
        buf.put_slice(&prefix(5));
        assert_eq!(&codec.decode(&mut buf).unwrap().unwrap()[..], b"wxyz");
        assert!(codec.decode(&mut buf).unwrap().unwrap().is_empty());
        assert!(codec.decode(&mut buf).is_err());
    }

    #[test]
    fn consecutive_frames_split_cleanly() {
        let mut codec = frame_codec(DEFAULT_MAX_FRAME_BYTES);
        let mut buf = BytesMut::new();
        for payload in [&b"one"[..], b"", b"three"] {
            codec
                .encode(bytes::Bytes::copy_from_slice(payload), &mut buf)
                .unwrap();
        }
        assert_eq!(&buf[..7], &[0, 0, 0, 3, b'o', b'n', b'e']);
        let frames: Vec<_> = std::iter::from_fn(|| codec.decode(&mut buf).unwrap()).collect();
        assert_eq!(frames, [&b"one"[..], b"", b"three"]);
    }
}
