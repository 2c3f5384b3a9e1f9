//! The produce path (`append_as_leader`) and the fetch path (`read`) make no heap allocation
//! per record: how many allocations an append or a read makes does not depend on how many
//! records it covers.
//!
//! A counting global allocator counts the allocations of the current thread only, so tests
//! running in parallel on other threads do not disturb each other's counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use rivulet_storage::batch::testing::{batch_of, BatchSpec};
use rivulet_storage::{LoadParams, LogConfig, PartitionLog, TopicPartition};

/// Forwards to [`System`], counting every allocation and reallocation of the calling thread.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the allocator still runs while the thread's locals are being destroyed.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting only
// touches a const-initialised thread-local, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations the current thread makes while running `f`, and what `f` returned.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let result = f();
    (ALLOCATIONS.with(Cell::get) - before, result)
}

/// The broker's clock: the records' timestamps (`BatchSpec::default().base_timestamp`).
const NOW: i64 = 1_700_000_000_000;
/// Record value size, as in the benchmarks.
const RECORD_SIZE: usize = 1024;
/// Allocations a large operation may make beyond a small one: a constant, whatever the records.
const SLACK: u64 = 2;
/// Operations measured per case; the maximum count is compared.
const ROUNDS: usize = 8;

fn open(dir: &std::path::Path) -> PartitionLog {
    let params = LoadParams {
        now_ms: NOW,
        ..LoadParams::default()
    };
    PartitionLog::open(
        dir,
        TopicPartition::new("alloc", 0),
        LogConfig::default(),
        params,
    )
    .unwrap()
}

/// The most allocations one `append_as_leader` made, over [`ROUNDS`] appends of batches from
/// `next_batch` (built outside the count), after two warm-up appends that set up what is set up
/// once: the leader-epoch cache entry, the first index entries, a producer's state.
fn max_append_allocations(log: &mut PartitionLog, mut next_batch: impl FnMut() -> Vec<u8>) -> u64 {
    for _ in 0..2 {
        log.append_as_leader(&next_batch(), 0, NOW).unwrap();
    }
    (0..ROUNDS)
        .map(|_| {
            let batch = next_batch();
            allocations_in(|| log.append_as_leader(&batch, 0, NOW).unwrap()).0
        })
        .max()
        .unwrap_or_default()
}

#[test]
fn appends_allocate_the_same_for_10_and_1000_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    let spec = BatchSpec::default();
    let small = batch_of(&spec, 10, RECORD_SIZE);
    let large = batch_of(&spec, 1000, RECORD_SIZE);
    let small_allocs = max_append_allocations(&mut log, || small.clone());
    let large_allocs = max_append_allocations(&mut log, || large.clone());
    println!("allocations per append: 10 records {small_allocs}, 1000 records {large_allocs}");
    assert!(
        large_allocs <= small_allocs + SLACK,
        "appending 1000 records made {large_allocs} allocations, 10 records {small_allocs}"
    );
}

#[test]
fn idempotent_appends_allocate_the_same_for_10_and_1000_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    // One producer whose sequence numbers advance batch after batch, as a real one's do.
    let mut next_sequence = 0i32;
    let mut batch_from_producer = |records: usize| {
        let spec = BatchSpec {
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: next_sequence,
            ..BatchSpec::default()
        };
        next_sequence += records as i32;
        batch_of(&spec, records, RECORD_SIZE)
    };
    let small_allocs = max_append_allocations(&mut log, || batch_from_producer(10));
    let large_allocs = max_append_allocations(&mut log, || batch_from_producer(1000));
    println!(
        "allocations per idempotent append: 10 records {small_allocs}, 1000 records {large_allocs}"
    );
    assert!(
        large_allocs <= small_allocs + SLACK,
        "appending 1000 records made {large_allocs} allocations, 10 records {small_allocs}"
    );
}

#[test]
fn reads_allocate_the_same_for_one_batch_and_a_megabyte() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path());
    // Batches of 16 records of 100 bytes: a 1 MiB read covers about 9,000 records.
    let batch = batch_of(&BatchSpec::default(), 16, 100);
    while log.size_in_bytes() < 2 << 20 {
        log.append_as_leader(&batch, 0, NOW).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    let hw = log.high_watermark();
    let mut rng = fastrand::Rng::with_seed(40);
    let mut max_read_allocations = |max_bytes: u64| {
        let mut most = 0;
        let mut records = 0;
        for _ in 0..ROUNDS {
            let offset = rng.i64(0..hw / 2);
            let (allocs, slice) =
                allocations_in(|| log.read(offset, max_bytes, hw, true).unwrap().unwrap());
            most = most.max(allocs);
            records = records.max(slice.len as usize / batch.len() * 16);
        }
        (most, records)
    };
    let (small_allocs, small_records) = max_read_allocations(1);
    let (large_allocs, large_records) = max_read_allocations(1 << 20);
    assert!(
        small_records == 16 && large_records > 8000,
        "reads covered {small_records} and {large_records} records"
    );
    println!("allocations per read: {small_records} records {small_allocs}, {large_records} records {large_allocs}");
    assert!(
        large_allocs <= small_allocs + SLACK,
        "reading {large_records} records made {large_allocs} allocations, {small_records} records {small_allocs}"
    );
}

#[test]
fn the_allocator_counts_this_threads_allocations() {
    let (allocs, v) = allocations_in(|| std::hint::black_box(Vec::<u8>::with_capacity(64)));
    drop(v);
    assert_eq!(allocs, 1);
}
