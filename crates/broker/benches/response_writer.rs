//! Writing a fetch response to a loopback socket: framing chunks around segment file ranges,
//! sent with `sendfile` under each [`Coalescing`], against the copying path the broker had
//! before (each range read into a fresh buffer, the whole frame assembled in memory, one
//! write).
//!
//! Shapes: 16 partitions of 1 KiB to 1 MiB each (from a consumer that keeps up and gets a few
//! batches per partition, to one catching up at `max.partition.fetch.bytes`). The file was
//! just written, so it is in the page cache. A thread on the other end reads and discards.
//!
//! The time reported is the writing thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall
//! time: what a broker spends per response, apart from the reader's work and from other
//! processes on the machine. On loopback it includes the kernel's TCP receive processing,
//! which runs in the sender's context, for every variant alike.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream as StdTcpStream};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rivulet_broker::response_writer::{write_chunks, Coalescing};
use rivulet_protocol::Chunk;
use rivulet_storage::FileSlice;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The segment file the ranges are in.
const FILE_BYTES: usize = 8 << 20;
/// Framing before each range: a partition header and the records' length prefix.
const FRAMING_BYTES: usize = 45;

/// A response of `partitions` ranges of `range_bytes`, each after its framing.
fn response(
    file: &Arc<std::fs::File>,
    partitions: usize,
    range_bytes: u64,
) -> Vec<Chunk<FileSlice>> {
    let mut chunks = Vec::with_capacity(partitions * 2 + 1);
    for i in 0..partitions {
        chunks.push(Chunk::Bytes(Bytes::from(vec![i as u8; FRAMING_BYTES])));
        let position = (i as u64 * range_bytes) % (FILE_BYTES as u64 - range_bytes);
        chunks.push(Chunk::Range(FileSlice::new(
            Arc::clone(file),
            position,
            range_bytes,
        )));
    }
    chunks.push(Chunk::Bytes(Bytes::from_static(&[0; 8])));
    chunks
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusive timespec for the call.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times; returns the CPU time this thread spent.
fn cpu_time_of(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iters {
        f();
    }
    thread_cpu_time() - start
}

/// The copying path: every range read into a fresh buffer, copied into one frame, written.
async fn copy_and_write(stream: &mut TcpStream, chunks: &[Chunk<FileSlice>]) {
    let mut frame = BytesMut::new();
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(b) => frame.extend_from_slice(b),
            Chunk::Range(slice) => frame.extend_from_slice(&slice.read_to_vec().expect("read")),
        }
    }
    stream.write_all(&frame).await.expect("write");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("rivulet-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a benchmark directory under CARGO_TARGET_TMPDIR");
    let path = dir.path().join("00000000000000000000.log");
    let mut rng = fastrand::Rng::with_seed(8);
    let content: Vec<u8> = (0..FILE_BYTES).map(|_| rng.u8(..)).collect();
    std::fs::write(&path, &content).expect("write the segment");
    let file = Arc::new(std::fs::File::open(&path).expect("open the segment"));
    let mut warm = vec![0u8; FILE_BYTES];
    file.read_exact_at(&mut warm, 0)
        .expect("warm the page cache");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = StdTcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    server.set_nodelay(true).expect("nodelay");
    let drain = std::thread::spawn(move || {
        let mut client = client;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    server.set_nonblocking(true).expect("non-blocking");
    let mut stream = rt
        .block_on(async { TcpStream::from_std(server) })
        .expect("tokio stream");

    let mut group = c.benchmark_group("fetch_response_write");
    for (shape, range_bytes) in [
        ("16x1KiB", 1u64 << 10),
        ("16x4KiB", 4 << 10),
        ("16x16KiB", 16 << 10),
        ("16x64KiB", 64 << 10),
        ("16x128KiB", 128 << 10),
        ("16x256KiB", 256 << 10),
        ("16x1MiB", 1 << 20),
    ] {
        let partitions = 16;
        let chunks = response(&file, partitions, range_bytes);
        let bytes = partitions as u64 * (range_bytes + FRAMING_BYTES as u64) + 8;
        group.throughput(Throughput::Bytes(bytes));
        for coalescing in [Coalescing::Off, Coalescing::Cork, Coalescing::MsgMore] {
            let id = BenchmarkId::new(format!("sendfile_{coalescing:?}"), shape);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    cpu_time_of(iters, || {
                        rt.block_on(write_chunks(&stream, &chunks, coalescing))
                            .expect("write");
                    })
                })
            });
        }
        group.bench_function(BenchmarkId::new("copy", shape), |b| {
            b.iter_custom(|iters| {
                cpu_time_of(iters, || rt.block_on(copy_and_write(&mut stream, &chunks)))
            })
        });
    }
    group.finish();
    let _ = rt.block_on(stream.shutdown());
    drop(stream);
    let _ = drain.join();
    let _ = std::io::stderr().flush();
}

criterion_group!(benches, bench);
criterion_main!(benches);
