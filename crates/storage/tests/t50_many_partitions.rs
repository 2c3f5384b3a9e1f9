//! A node with thousands of partitions: descriptors and resident memory stay bounded.
//!
//! Each partition costs one descriptor (its active segment's `.log`; index files are closed once
//! mapped) and two index maps whose preallocated files are sparse: only touched pages count.

use rivulet_storage::batch::testing::{batch_of, BatchSpec};
use rivulet_storage::log_manager::{read_log, write_log};
use rivulet_storage::{LogConfig, LogManager, TopicPartition};

const PARTITIONS: i32 = 3000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn thousands_of_partitions_cost_one_descriptor_each() {
    let dir = tempfile::tempdir().unwrap();
    let dirs = vec![dir.path().to_path_buf()];
    let fds_before = open_fds();
    let rss_before = rss_kib();
    let batch = batch_of(&BatchSpec::default(), 4, 100);
    {
        let t = std::time::Instant::now();
        let manager = LogManager::open(&dirs, |_| LogConfig::default(), 8, 0).unwrap();
        for p in 0..PARTITIONS {
            let tp = TopicPartition::new("many", p);
            let log = manager.get_or_create(&tp, LogConfig::default(), 0).unwrap();
            write_log(&log).append_as_leader(&batch, 0, 0).unwrap();
        }
        println!("create+append {:?}", t.elapsed());
        let fds = open_fds() - fds_before;
        let rss_mib = rss_kib().saturating_sub(rss_before) / 1024;
        println!("{PARTITIONS} partitions: {fds} descriptors, {rss_mib} MiB more resident");
        assert!(
            fds <= PARTITIONS as usize + 16,
            "{fds} descriptors for {PARTITIONS} partitions"
        );
        // Two sparse 10 MiB index maps per partition would be 60 GiB if they were resident.
        assert!(rss_mib < 256, "resident memory grew by {rss_mib} MiB");
        let t = std::time::Instant::now();
        manager.shutdown(0).unwrap();
        println!("shutdown {:?}", t.elapsed());
    }
    assert!(
        open_fds() <= fds_before + 1,
        "shutdown releases every descriptor"
    );
    let t = std::time::Instant::now();
    let manager = LogManager::open(&dirs, |_| LogConfig::default(), 8, 0).unwrap();
    println!("reopen {:?}", t.elapsed());
    assert_eq!(manager.partitions().len(), PARTITIONS as usize);
    let sample = manager
        .get(&TopicPartition::new("many", PARTITIONS - 1))
        .unwrap();
    assert_eq!(read_log(&sample).log_end_offset(), 4);
}
