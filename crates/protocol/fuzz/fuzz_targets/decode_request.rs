//! Arbitrary bytes, split into frames by `frame_codec` and each frame decoded by
//! `decode_request`: no input may panic, abort or allocate out of proportion to its size
//! (libFuzzer reports a `malloc` above `-malloc_limit_mb`, default 2048, as a crash).
//!
//! The frame cap is 1 MiB rather than Kafka's 100 MiB so that a large length prefix does not
//! make every run reserve 100 MiB; the decoding path is the same.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = rivulet_protocol::frame_codec(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        let _ = rivulet_protocol::decode_request(frame.freeze());
    }
});
