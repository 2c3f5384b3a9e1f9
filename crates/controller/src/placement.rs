//! Replica placement for new topics: Kafka's rack-unaware round robin with a random start
//! (`AdminUtils.assignReplicasToBrokersRackUnaware`), so replicas and leaders spread evenly.

/// Assigns `replication_factor` replicas to each of `partitions` partitions over `brokers`
/// (sorted ids), starting at `start` with replica shift `shift` (random in production).
/// The first replica of each partition is its preferred leader.
pub fn assign(
    brokers: &[i32],
    partitions: usize,
    replication_factor: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let n = brokers.len();
    if n == 0 || replication_factor == 0 || replication_factor > n {
        return Vec::new();
    }
    let mut shift = shift % n;
    (0..partitions)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (p + start) % n;
            let mut replicas = vec![brokers[first]];
            for j in 0..replication_factor - 1 {
                let step = if n > 1 { 1 + (shift + j) % (n - 1) } else { 0 };
                replicas.push(brokers[(first + step) % n]);
            }
            replicas
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_leaders_and_replicas_evenly() {
        let brokers = [1, 2, 3];
        let a = assign(&brokers, 6, 3, 0, 0);
        for replicas in &a {
            let mut r = replicas.clone();
            r.sort_unstable();
            r.dedup();
            assert_eq!(r.len(), 3, "distinct replicas: {replicas:?}");
        }
        let mut leaders = [0; 4];
        for r in &a {
            leaders[r[0] as usize] += 1;
        }
        assert_eq!(&leaders[1..], &[2, 2, 2]);
    }

    #[test]
    fn single_broker_and_impossible_factors() {
        assert_eq!(assign(&[7], 2, 1, 5, 3), vec![vec![7], vec![7]]);
        assert!(assign(&[1, 2], 1, 3, 0, 0).is_empty());
    }
}
