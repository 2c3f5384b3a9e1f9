//! `rivulet cluster watch`: polls one broker every interval and prints one line per change,
//! with the local time, until interrupted (or `--count` lines).
//!
//! It keeps working while nodes die: when the broker it asks stops answering (an error or the
//! timeout), it moves to another known broker, from the bootstrap list and every broker it
//! has seen in the cluster, the lost one last, and says so once. If none answers it says so on
//! stderr once and keeps trying every interval.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::Connection;
use super::diff::diff;
use super::snapshot::{BrokerState, ClusterSnapshot, Filter};

/// What `watch` does.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Brokers to start from, `host:port`.
    pub bootstrap: Vec<String>,
    /// How often to ask.
    pub interval: Duration,
    /// How long one connection attempt or request may take.
    pub timeout: Duration,
    /// Which topics to follow.
    pub filter: Filter,
    /// Stop after this many change lines.
    pub count: Option<usize>,
}

/// The brokers the watcher may ask, in the order it tries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    addresses: Vec<String>,
}

impl Candidates {
    /// Starts from the bootstrap list (duplicates dropped).
    pub fn new(bootstrap: &[String]) -> Candidates {
        let mut c = Candidates::default();
        for a in bootstrap {
            c.add(a);
        }
        c
    }

    fn add(&mut self, address: &str) {
        if !self.addresses.iter().any(|a| a == address) {
            self.addresses.push(address.to_owned());
        }
    }

    /// Adds the addresses of the registered brokers of `s`.
    pub fn learn(&mut self, s: &ClusterSnapshot) {
        for b in s.brokers.values() {
            if let (Some(a), BrokerState::Up | BrokerState::Fenced) = (&b.address, b.state) {
                self.add(a);
            }
        }
    }

    /// The order to try them in after losing `lost`: the ones after it, then the ones before
    /// it, then `lost` itself (it may be back).
    pub fn order(&self, lost: Option<&str>) -> Vec<String> {
        let at = lost.and_then(|l| self.addresses.iter().position(|a| a == l));
        match at {
            Some(i) => {
                let mut v: Vec<String> = self.addresses[i + 1..].to_vec();
                v.extend_from_slice(&self.addresses[..i]);
                v.push(self.addresses[i].clone());
                v
            }
            None => self.addresses.clone(),
        }
    }
}

/// The local wall-clock time as `HH:MM:SS.mmm`.
pub fn local_time() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as libc::time_t;
    // SAFETY: a zeroed `tm` is a valid value of this plain C struct.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `secs` and writes only into `tm`, both valid for the call.
    let converted = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    let (h, m, s) = if converted {
        (tm.tm_hour as u64, tm.tm_min as u64, tm.tm_sec as u64)
    } else {
        let day = now.as_secs() % 86_400;
        (day / 3600, day / 60 % 60, day % 60)
    };
    format!("{h:02}:{m:02}:{s:02}.{:03}", now.subsec_millis())
}

/// The first line: where the watcher looks and what it sees.
pub fn describe_start(address: &str, s: &ClusterSnapshot) -> String {
    let controller = match (s.controller, s.controller_epoch) {
        (c, _) if c < 0 => "no active controller".to_owned(),
        (c, Some(e)) => format!("controller node {c} at epoch {e}"),
        (c, None) => format!("controller node {c}"),
    };
    let by_state = |state: BrokerState| -> Vec<String> {
        s.brokers
            .iter()
            .filter(|(_, b)| b.state == state)
            .map(|(id, _)| id.to_string())
            .collect()
    };
    let mut brokers = vec![format!(
        "brokers {} up",
        by_state(BrokerState::Up).join(",")
    )];
    for state in [BrokerState::Fenced, BrokerState::Gone] {
        let ids = by_state(state);
        if !ids.is_empty() {
            brokers.push(format!("{} {}", ids.join(","), state.word()));
        }
    }
    let topics = match s.topics.len() {
        1 => "1 topic".to_owned(),
        n => format!("{n} topics"),
    };
    format!(
        "watching via {address}: {controller}; {}; {topics}",
        brokers.join(", ")
    )
}

/// Watches until `count` lines are printed (or forever).
pub async fn watch(opts: WatchOptions) {
    let mut candidates = Candidates::new(&opts.bootstrap);
    let mut conn: Option<Connection> = None;
    // The broker that stopped answering, until another one is found.
    let mut lost: Option<String> = None;
    let mut said_unreachable = false;
    let mut previous: Option<ClusterSnapshot> = None;
    let mut printed = 0usize;
    let mut tick = tokio::time::interval(opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if conn.is_none() {
            for address in candidates.order(lost.as_deref()) {
                match Connection::open(&address, opts.timeout).await {
                    Ok(c) => {
                        conn = Some(c);
                        break;
                    }
                    Err(e) => tracing::debug!("{e}"),
                }
            }
            let Some(c) = &conn else {
                if !said_unreachable {
                    let what = match &lost {
                        Some(l) => format!("lost contact with {l}; no broker answers"),
                        None => format!("no broker answers ({})", opts.bootstrap.join(",")),
                    };
                    eprintln!(
                        "{} {what}; retrying every {} ms",
                        local_time(),
                        opts.interval.as_millis()
                    );
                    said_unreachable = true;
                }
                continue;
            };
            match (lost.take(), said_unreachable) {
                (Some(l), false) => {
                    println!(
                        "{} lost contact with {l}; now using {}",
                        local_time(),
                        c.address()
                    )
                }
                (_, true) if previous.is_some() => {
                    println!("{} now using {}", local_time(), c.address())
                }
                _ => {}
            }
            said_unreachable = false;
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        match c.snapshot().await {
            Ok(s) => {
                candidates.learn(&s);
                let shown = s.filtered(&opts.filter);
                match &previous {
                    None => println!("{} {}", local_time(), describe_start(c.address(), &shown)),
                    Some(before) => {
                        for event in diff(before, &shown) {
                            println!("{} {event}", local_time());
                            printed += 1;
                            if opts.count.is_some_and(|n| printed >= n) {
                                return;
                            }
                        }
                    }
                }
                previous = Some(shown);
            }
            Err(e) => {
                tracing::debug!("{e}");
                lost = Some(c.address().to_owned());
                conn = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::snapshot::from_responses;
    use crate::cluster::snapshot::tests::{describe_cluster, describe_quorum, metadata};

    #[test]
    fn candidates_grow_and_rotate() {
        let mut c = Candidates::new(&["a:1".into(), "b:2".into(), "a:1".into()]);
        assert_eq!(c.order(None), ["a:1", "b:2"]);
        let s = from_responses(&metadata(), Some(&describe_cluster()), None);
        c.learn(&s);
        assert_eq!(
            c.order(None),
            [
                "a:1",
                "b:2",
                "localhost:9001",
                "localhost:9002",
                "localhost:9003"
            ]
        );
        assert_eq!(
            c.order(Some("localhost:9001")),
            [
                "localhost:9002",
                "localhost:9003",
                "a:1",
                "b:2",
                "localhost:9001"
            ],
            "the lost broker last"
        );
        assert_eq!(c.order(Some("z:9")), c.order(None));
    }

    #[test]
    fn first_line() {
        let s = from_responses(
            &metadata(),
            Some(&describe_cluster()),
            Some(&describe_quorum(2, 7)),
        );
        assert_eq!(
            describe_start("localhost:19092", &s),
            "watching via localhost:19092: controller node 2 at epoch 7; brokers 1,2 up, 3 fenced, \
             4 gone; 2 topics"
        );
    }

    #[test]
    fn local_time_shape() {
        let t = local_time();
        let b = t.as_bytes();
        assert_eq!(t.len(), 12, "{t}");
        assert_eq!((b[2], b[5], b[8]), (b':', b':', b'.'), "{t}");
        assert!(t.chars().filter(char::is_ascii_digit).count() == 9, "{t}");
    }
}
