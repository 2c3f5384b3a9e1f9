//! Hostile length prefixes must not turn into huge allocations.
//!
//! `kafka-protocol` 0.18 sizes arrays with `Vec::with_capacity(count)` straight from the wire:
//! fed directly, a 10-byte Metadata v1 body announcing 2^31 - 1 topics asks for ~154 GB and the
//! process aborts ("memory allocation of 154618822584 bytes failed"). `decode_request` checks
//! every count against the bytes left first. This binary installs a global allocator that
//! records the largest single request and checks it stays proportional to the input size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use rivulet_protocol::kafka_protocol::messages::{ApiKey, RequestHeader};
use rivulet_protocol::kafka_protocol::protocol::{Encodable, StrBytes};
use rivulet_protocol::{decode_request, DecodeError, SUPPORTED_APIS};

struct Peak;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Peak = Peak;

fn header(key: ApiKey, version: i16) -> BytesMut {
    let mut out = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("c")))
        .encode(&mut out, key.request_header_version(version))
        .expect("a valid header encodes");
    out
}

/// Largest allocation a decode of `input_len` bytes may ask for: the decoded structs are at
/// most ~112 bytes per element, and each element takes at least one byte of input.
fn allowance(input_len: usize) -> usize {
    64 * 1024 + 128 * input_len
}

fn check(frame: Bytes) -> Result<(), DecodeError> {
    let len = frame.len();
    LARGEST.store(0, Ordering::Relaxed);
    let result = decode_request(frame).map(|_| ());
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= allowance(len),
        "decoding {len} bytes allocated {largest} bytes at once"
    );
    result
}

/// A tiny xorshift so the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn hostile_counts_are_refused_without_large_allocations() {
    // Big length prefixes in both encodings, at every alignment behind a valid header.
    let patterns: [&[u8]; 4] = [
        &[0x7f, 0xff, 0xff, 0xff],
        &[0x00, 0x10, 0x00, 0x00],
        &[0xff, 0xff, 0xff, 0xff, 0x0f],
        &[0x80, 0x80, 0x80, 0x01],
    ];
    let mut refused = 0;
    for range in SUPPORTED_APIS {
        for version in range.min..=range.max {
            for pattern in patterns {
                for lead in 0..24 {
                    let mut frame = header(range.key, version);
                    frame.put_bytes(0, lead);
                    for _ in 0..8 {
                        frame.put_slice(pattern);
                    }
                    if check(frame.freeze()).is_err() {
                        refused += 1;
                    }
                }
            }
        }
    }
    assert!(refused > 0);

    // Random bodies, with many bytes set high so counts come out large.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let r = SUPPORTED_APIS[(rng.next() % SUPPORTED_APIS.len() as u64) as usize];
        let span = (r.max - r.min + 1) as u64;
        let version = r.min + (rng.next() % span) as i16;
        let mut frame = header(r.key, version);
        let len = (rng.next() % 96) as usize;
        for _ in 0..len {
            let x = rng.next();
            frame.put_u8(if x & 1 == 0 { 0xff } else { (x >> 8) as u8 });
        }
        let _ = check(frame.freeze());
    }
}
