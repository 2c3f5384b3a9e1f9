//! `rivulet cluster status` and `rivulet cluster watch`: what the cluster looks like, and how
//! it changes, as any Kafka client sees it (Metadata, DescribeCluster v2, DescribeQuorum);
//! `rivulet cluster health`, the container healthcheck, from the same answers.
//!
//! ```text
//! client    one connection to one broker, ApiVersions then the three requests (tokio)
//! snapshot  ClusterSnapshot from the three answers (pure), the topic filter
//! diff      two snapshots -> ClusterEvents (pure), worded as the controller's log words them
//! status    the report as tables
//! health    whether one node is serving and unfenced, with a controller (pure verdict)
//! watch     the poll loop, with fail-over to another broker when one stops answering
//! ```
//!
//! Output goes to stdout, problems to stderr; `status` exits non-zero when no broker answers,
//! `watch` keeps retrying.

mod client;
mod diff;
mod health;
mod snapshot;
mod status;
mod watch;

use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use snapshot::Filter;

/// `rivulet cluster ...`.
#[derive(Subcommand)]
pub enum Command {
    /// Print the brokers (up, fenced, gone), the active controller and its epoch, and each
    /// partition's leader, leader epoch, replicas and ISR.
    Status(StatusArgs),
    /// Print one line per cluster change as it happens (controller elected, brokers fenced and
    /// unfenced, leaders moved, ISRs shrunk and expanded, topics created and deleted).
    Watch(WatchArgs),
    /// Exit 0 when the broker at --bootstrap answers, the quorum has an active controller and
    /// (with --node-id) that broker is registered and unfenced; else print why and exit 1.
    /// The compose healthcheck.
    Health(HealthArgs),
}

/// Arguments of `rivulet cluster health`.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The node's own listener, `host:port`.
    #[arg(
        long,
        short = 'b',
        alias = "bootstrap-server",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: String,
    /// The node's id: it must be listed as up (the compose containers set RIVULET_NODE_ID).
    #[arg(long, env = "RIVULET_NODE_ID")]
    node_id: Option<i32>,
    /// How long connecting and each request may take, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
}

/// What both commands ask and show.
#[derive(clap::Args)]
pub struct Common {
    /// Brokers to ask, `host:port`, comma-separated or repeated.
    #[arg(
        long,
        short = 'b',
        alias = "bootstrap-server",
        value_delimiter = ',',
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: Vec<String>,
    /// Show internal topics (`__consumer_offsets`) too.
    #[arg(long)]
    include_internal: bool,
    /// Only these topics (comma-separated or repeated).
    #[arg(long = "topic", value_delimiter = ',')]
    topics: Vec<String>,
    /// How long connecting to a broker or one request may take, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

impl Common {
    fn filter(&self) -> Filter {
        Filter {
            include_internal: self.include_internal,
            topics: self.topics.clone(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.max(1))
    }
}

/// Arguments of `rivulet cluster status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    common: Common,
}

/// Arguments of `rivulet cluster watch`.
#[derive(clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    common: Common,
    /// How often to ask, in milliseconds.
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// Exit after printing this many changes.
    #[arg(long)]
    count: Option<usize>,
}

/// Runs a `cluster` command.
pub fn run(command: &Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    match command {
        Command::Status(args) => runtime.block_on(status(args)),
        Command::Watch(args) => {
            let opts = watch::WatchOptions {
                bootstrap: args.common.bootstrap.clone(),
                interval: Duration::from_millis(args.interval_ms.max(10)),
                timeout: args.common.timeout(),
                filter: args.common.filter(),
                count: args.count,
            };
            runtime.block_on(watch::watch(opts));
            Ok(())
        }
        Command::Health(args) => runtime.block_on(health(args)),
    }
}

async fn health(args: &HealthArgs) -> anyhow::Result<()> {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let (_, snapshot) = status::first_answer(std::slice::from_ref(&args.bootstrap), timeout)
        .await
        .map_err(|errors| {
            let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{} does not answer: {}", args.bootstrap, why.join("; "))
        })?;
    match health::verdict(&snapshot, args.node_id) {
        Ok(fine) => {
            println!("healthy: {fine}");
            Ok(())
        }
        Err(why) => anyhow::bail!("unhealthy: {why}"),
    }
}

async fn status(args: &StatusArgs) -> anyhow::Result<()> {
    let common = &args.common;
    match status::first_answer(&common.bootstrap, common.timeout()).await {
        Ok((_, snapshot)) => {
            print!("{}", status::render(&snapshot, &common.filter()));
            Ok(())
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::bail!("no broker answered ({})", common.bootstrap.join(","))
        }
    }
}
