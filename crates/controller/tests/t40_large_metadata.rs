//! Metadata larger than gRPC's default 4 MiB message: a broker following the log gets all of
//! it, in messages larger than that. (Before, the stream failed at tonic's 4 MiB limit forever,
//! silently: a broker restarted on a cluster of 16,000 partitions was never unfenced.)
//! The same limit covers Raft's AppendEntries, whose catch-up batches can be as large.

mod support;

use std::time::{Duration, Instant};

use rivulet_controller::{ControllerClient, MetadataImage, MetadataUpdate};
use support::{topic, TestQuorum, WAIT};

/// Partitions per topic, and topics: 40,000 partitions of one replica, an image of about 5 MB
/// as JSON.
const PARTITIONS: i32 = 4_000;
const TOPICS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_gets_a_metadata_image_larger_than_four_mib() {
    // A debug build takes long to encode, send and store a CreateTopics of thousands of
    // partitions: the heartbeat interval (openraft's time limit for one AppendEntries) and the
    // election timeout are production's here, not the other tests' shorter ones.
    let q = TestQuorum::start_with(3, |c| {
        c.heartbeat_interval = Duration::from_millis(200);
        c.election_timeout = Duration::from_millis(1_000);
    })
    .await;
    let leader = q.wait_for_leader(None).await;
    let follower = q.running().into_iter().find(|id| *id != leader).unwrap();

    let mut offset = 0;
    for i in 0..TOPICS {
        let (results, at) = q
            .controller(leader)
            .create_topics(vec![topic(&format!("big{i}"), PARTITIONS)], false)
            .await
            .expect("created");
        assert!(results[0].is_ok(), "big{i}: {:?}", results[0]);
        offset = at;
    }

    q.wait_all_applied(offset).await;

    // A broker with nothing applied gets it all: as deltas while the feed holds them (here up
    // to 256 in one message, well over 4 MiB) or as one snapshot.
    let json = serde_json::to_vec(&*q.controller(follower).image()).expect("encodes");
    assert!(
        json.len() > 4 << 20,
        "the metadata must exceed gRPC's default limit for this test to mean anything: {} bytes",
        json.len()
    );
    let client =
        ControllerClient::new("test-cluster".into(), q.voters(), Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut stream = loop {
        if let Ok(stream) = client.fetch_metadata(0, follower, -1, 0).await {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "no metadata stream within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut image = MetadataImage::empty("test-cluster");
    while image.offset < offset {
        match stream.next().await {
            Ok(Some(MetadataUpdate::Snapshot(snapshot))) => image = *snapshot,
            Ok(Some(MetadataUpdate::Deltas(deltas))) => {
                for d in &deltas {
                    image.apply_delta(d);
                }
            }
            Ok(None) => panic!("the metadata stream ended at offset {}", image.offset),
            Err(e) => panic!("the metadata stream broke at offset {}: {e}", image.offset),
        }
    }
    let partitions: usize = image.topics.values().map(|t| t.partitions.len()).sum();
    assert_eq!(partitions, TOPICS * PARTITIONS as usize);
    q.stop().await;
}
