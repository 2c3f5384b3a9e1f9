//! Cluster metadata and topic creation for the perf tools: `perf metadata` (a readiness probe)
//! and `--create-topic` of `perf produce`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use super::{block_on, client_config, parse_duration, parse_key_value};

/// How long one Metadata request may take before the probe retries.
const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Arguments of `rivulet perf metadata`.
#[derive(clap::Args)]
pub struct MetadataArgs {
    /// Where to connect (`host:port[,host:port...]`).
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// Describe only this topic (it is not auto-created).
    #[arg(long)]
    topic: Option<String>,
    /// Wait until the Metadata response lists at least this many brokers.
    #[arg(long, default_value_t = 0)]
    expect_brokers: usize,
    /// With --topic: wait until the topic exists and every partition has a leader and all its
    /// replicas in the ISR.
    #[arg(long, requires = "topic")]
    wait_in_sync: bool,
    /// Give up waiting after this long (e.g. 60, 60s, 500ms).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Extra librdkafka properties for the client (`key=value`, repeatable).
    #[arg(long = "client-props", value_parser = parse_key_value, num_args = 1..)]
    client_props: Vec<(String, String)>,
}

/// What a probe waits for.
pub(super) struct Wanted<'a> {
    /// At least this many brokers listed.
    pub brokers: usize,
    /// This topic exists, every partition with a leader...
    pub topic: Option<&'a str>,
    /// ...and, if set, all its replicas in sync.
    pub in_sync: bool,
}

/// Runs `rivulet perf metadata`.
pub fn run_metadata(args: &MetadataArgs) -> anyhow::Result<()> {
    let wanted = Wanted {
        brokers: args.expect_brokers,
        topic: args.topic.as_deref(),
        in_sync: args.wait_in_sync,
    };
    let metadata = wait_for(
        &args.bootstrap_servers,
        &args.client_props,
        &wanted,
        args.timeout,
    )?;
    print!("{}", describe(&metadata, args.topic.as_deref()));
    Ok(())
}

/// Fetches metadata until it shows what `wanted` asks for, or fails after `timeout` with the
/// last answer (or error) in the message.
pub(super) fn wait_for(
    bootstrap_servers: &str,
    extra: &[(String, String)],
    wanted: &Wanted<'_>,
    timeout: Duration,
) -> anyhow::Result<Metadata> {
    // A consumer-type client: unlike a producer's, its Metadata requests do not auto-create
    // the topic they name. It never joins a group.
    let consumer: BaseConsumer = client_config(bootstrap_servers, "rivulet-perf-metadata", extra)
        .set("allow.auto.create.topics", "false")
        .create()
        .context("creating the metadata client")?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match consumer.fetch_metadata(wanted.topic, METADATA_REQUEST_TIMEOUT.min(left)) {
            Ok(metadata) => match unmet(&metadata, wanted) {
                None => return Ok(metadata),
                Some(why) => format!("{why}\n{}", describe(&metadata, wanted.topic)),
            },
            Err(e) => format!("Metadata request failed: {e}"),
        };
        if Instant::now() >= deadline {
            bail!("{bootstrap_servers} not ready after {timeout:?}: {last}");
        }
        std::thread::sleep(PROBE_INTERVAL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Why `metadata` does not show what `wanted` asks for yet (`None`: it does).
fn unmet(metadata: &Metadata, wanted: &Wanted<'_>) -> Option<String> {
    let brokers = metadata.brokers().len();
    if brokers < wanted.brokers {
        return Some(format!("{brokers} of {} brokers listed", wanted.brokers));
    }
    let name = wanted.topic?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
        return Some(format!("topic {name} not listed"));
    };
    if let Some(e) = topic.error() {
        return Some(format!("topic {name}: error {e:?}"));
    }
    if topic.partitions().is_empty() {
        return Some(format!("topic {name} has no partitions yet"));
    }
    for p in topic.partitions() {
        if let Some(e) = p.error() {
            return Some(format!("{name}-{}: error {e:?}", p.id()));
        }
        if p.leader() < 0 {
            return Some(format!("{name}-{}: no leader", p.id()));
        }
        if wanted.in_sync && p.isr().len() < p.replicas().len() {
            return Some(format!(
                "{name}-{}: ISR {:?} of replicas {:?}",
                p.id(),
                p.isr(),
                p.replicas()
            ));
        }
    }
    None
}

/// The brokers and the partitions of `topic` (or of every topic), one line each.
fn describe(metadata: &Metadata, topic: Option<&str>) -> String {
    let mut out = String::new();
    let brokers: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port()))
        .collect();
    // librdkafka names a bootstrap server -1 until it has learnt the server's node id.
    let answered_by = match metadata.orig_broker_id() {
        id if id >= 0 => format!(" (answered by node {id})"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "brokers ({}): {}{answered_by}",
        brokers.len(),
        brokers.join(", "),
    );
    for t in metadata.topics() {
        if topic.is_some_and(|name| name != t.name()) {
            continue;
        }
        if let Some(e) = t.error() {
            let _ = writeln!(out, "topic {}: error {e:?}", t.name());
            continue;
        }
        for p in t.partitions() {
            let _ = writeln!(
                out,
                "{}-{}: leader {} replicas {:?} isr {:?}{}",
                t.name(),
                p.id(),
                p.leader(),
                p.replicas(),
                p.isr(),
                p.error()
                    .map(|e| format!(" error {e:?}"))
                    .unwrap_or_default()
            );
        }
    }
    out
}

/// `--create-topic` and its settings, shared by the tools that produce.
#[derive(clap::Args)]
pub(super) struct CreateTopicArgs {
    /// Create the topic with the admin client first if it does not exist, and wait until its
    /// replicas are in sync.
    #[arg(long)]
    create_topic: bool,
    /// With --create-topic: partitions.
    #[arg(long, default_value_t = 1, requires = "create_topic")]
    partitions: i32,
    /// With --create-topic: replication factor.
    #[arg(long, default_value_t = 1, requires = "create_topic")]
    replication_factor: i32,
    /// With --create-topic: a topic config (`key=value`, repeatable), e.g.
    /// `min.insync.replicas=2`.
    #[arg(long = "topic-config", value_parser = super::parse_key_value, num_args = 1.., requires = "create_topic")]
    topic_configs: Vec<(String, String)>,
}

impl CreateTopicArgs {
    /// With --create-topic, creates `topic` unless it exists and waits until it is in sync.
    pub(super) fn ensure(&self, bootstrap_servers: &str, topic: &str) -> anyhow::Result<()> {
        if !self.create_topic {
            return Ok(());
        }
        let spec = TopicSpec {
            name: topic,
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            configs: &self.topic_configs,
        };
        ensure_topic(bootstrap_servers, &[], &spec, Duration::from_secs(60))
    }
}

/// The partition ids of `topic`, from a Metadata request through `consumer`.
pub(super) fn topic_partitions(consumer: &BaseConsumer, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .with_context(|| format!("Metadata for {topic}"))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic} not in the Metadata response");
    };
    if let Some(e) = t.error() {
        bail!("topic {topic}: {e:?}");
    }
    ensure!(
        !t.partitions().is_empty(),
        "topic {topic} has no partitions"
    );
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// A topic to create if it is missing.
pub(super) struct TopicSpec<'a> {
    /// Name.
    pub name: &'a str,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Topic configs (`min.insync.replicas`, ...).
    pub configs: &'a [(String, String)],
}

/// Creates the topic unless it exists (an existing topic is used as it is), then waits until
/// every partition has a leader and its full ISR.
pub(super) fn ensure_topic(
    bootstrap_servers: &str,
    extra: &[(String, String)],
    spec: &TopicSpec<'_>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap_servers, "rivulet-perf-admin", extra)
            .create()
            .context("creating the admin client")?;
    let mut topic = NewTopic::new(
        spec.name,
        spec.partitions,
        TopicReplication::Fixed(spec.replication_factor),
    );
    for (k, v) in spec.configs {
        topic = topic.set(k, v);
    }
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = block_on(
        "CreateTopics",
        timeout,
        admin.create_topics([&topic], &options),
    )?
    .context("CreateTopics")?;
    for result in results {
        match result {
            Ok(name) => eprintln!(
                "created topic {name}: {} partitions, replication factor {}",
                spec.partitions, spec.replication_factor
            ),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                eprintln!("topic {name} exists: using it as it is")
            }
            Err((name, code)) => bail!("creating topic {name}: {code:?} ({code})"),
        }
    }
    let wanted = Wanted {
        brokers: 0,
        topic: Some(spec.name),
        in_sync: true,
    };
    wait_for(bootstrap_servers, extra, &wanted, timeout)?;
    Ok(())
}
