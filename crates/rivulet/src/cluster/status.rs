//! `rivulet cluster status`: asks the first bootstrap broker that answers and prints the
//! cluster as tables: the controller and quorum, the brokers (up, fenced, gone), and each
//! partition's leader, leader epoch, replicas and ISR.

use std::fmt::Write as _;
use std::time::Duration;

use super::client::{ClientError, Connection};
use super::snapshot::{ClusterSnapshot, Filter};

/// Asks each of `bootstrap` in turn; the snapshot of the first that answers, with its
/// address, or every error.
pub async fn first_answer(
    bootstrap: &[String],
    timeout: Duration,
) -> Result<(String, ClusterSnapshot), Vec<ClientError>> {
    let mut errors = Vec::new();
    for address in bootstrap {
        let attempt = async {
            let mut conn = Connection::open(address, timeout).await?;
            conn.snapshot().await
        };
        match attempt.await {
            Ok(s) => return Ok((address.clone(), s)),
            Err(e) => errors.push(e),
        }
    }
    Err(errors)
}

/// `[1,2,3]`.
fn ids(v: &[i32]) -> String {
    let inner: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[{}]", inner.join(","))
}

/// Rows as left-aligned columns separated by two spaces, indented by two.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let mut text = String::from(" ");
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(text, " {cell:<w$} ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The status report of `s` (unfiltered) as `filter` shows it.
pub fn render(s: &ClusterSnapshot, filter: &Filter) -> String {
    let mut out = String::new();
    if let Some(id) = &s.cluster_id {
        let _ = writeln!(out, "Cluster {id}");
    }
    let controller = match (s.controller, s.controller_epoch) {
        (c, _) if c < 0 => "none".to_owned(),
        (c, Some(epoch)) => format!("node {c} (epoch {epoch})"),
        (c, None) => format!("node {c}"),
    };
    let _ = writeln!(out, "Active controller: {controller}");
    if !s.voters.is_empty() {
        let hw = s
            .high_watermark
            .map_or(String::new(), |hw| format!(", metadata offset {hw}"));
        let _ = writeln!(out, "Quorum voters: {}{hw}", ids(&s.voters));
    }

    out.push_str("\nBrokers:\n");
    let rows: Vec<Vec<String>> = s
        .brokers
        .iter()
        .map(|(id, b)| {
            let mut role = Vec::new();
            if *id == s.controller {
                role.push("active controller");
            } else if s.voters.contains(id) {
                role.push("voter");
            }
            vec![
                id.to_string(),
                b.address.clone().unwrap_or_else(|| "-".into()),
                b.state.word().to_owned(),
                role.join(", "),
            ]
        })
        .collect();
    table(&mut out, &["ID", "ADDRESS", "STATUS", "ROLE"], &rows);

    let hidden = s.hidden_topics(filter);
    let shown = s.clone().filtered(filter);
    let note = match hidden {
        0 => String::new(),
        n if filter.topics.is_empty() => {
            format!(" ({n} internal hidden; --include-internal shows them)")
        }
        n => format!(" ({n} not selected)"),
    };
    let _ = writeln!(out, "\nPartitions{note}:");
    let mut rows = Vec::new();
    for (name, topic) in &shown.topics {
        for (index, p) in &topic.partitions {
            let state = if p.leader < 0 {
                "offline"
            } else if p.isr.len() < p.replicas.len() {
                "under-replicated"
            } else {
                ""
            };
            rows.push(vec![
                name.clone(),
                index.to_string(),
                if p.leader < 0 {
                    "none".into()
                } else {
                    p.leader.to_string()
                },
                p.leader_epoch.to_string(),
                ids(&p.replicas),
                ids(&p.isr),
                state.to_owned(),
            ]);
        }
    }
    if rows.is_empty() {
        out.push_str("  (none)\n");
    } else {
        table(
            &mut out,
            &[
                "TOPIC",
                "PARTITION",
                "LEADER",
                "EPOCH",
                "REPLICAS",
                "ISR",
                "",
            ],
            &rows,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::snapshot::from_responses;
    use crate::cluster::snapshot::tests::{describe_cluster, describe_quorum, metadata};

    #[test]
    fn the_report() {
        let s = from_responses(
            &metadata(),
            Some(&describe_cluster()),
            Some(&describe_quorum(2, 7)),
        );
        let expected = "\
Cluster c1
Active controller: node 2 (epoch 7)
Quorum voters: [1,2,3], metadata offset 120

Brokers:
  ID  ADDRESS         STATUS  ROLE
  1   localhost:9001  up      voter
  2   localhost:9002  up      active controller
  3   localhost:9003  fenced  voter
  4   -               gone

Partitions (1 internal hidden; --include-internal shows them):
  TOPIC   PARTITION  LEADER  EPOCH  REPLICAS  ISR
  orders  0          1       4      [1,2,3]   [1,2]  under-replicated
  orders  1          2       4      [2,3,4]   [2]    under-replicated
";
        assert_eq!(render(&s, &Filter::default()), expected);
    }

    #[test]
    fn internal_topics_on_request() {
        let s = from_responses(&metadata(), None, None);
        let report = render(
            &s,
            &Filter {
                include_internal: true,
                topics: vec![],
            },
        );
        assert!(report.contains("Active controller: node 1\n"), "{report}");
        assert!(report.contains("  __consumer_offsets  0 "), "{report}");
        assert!(!report.contains("hidden"), "{report}");
        let one = render(
            &s,
            &Filter {
                include_internal: false,
                topics: vec!["nope".into()],
            },
        );
        assert!(
            one.contains("Partitions (2 not selected):\n  (none)\n"),
            "{one}"
        );
    }
}
