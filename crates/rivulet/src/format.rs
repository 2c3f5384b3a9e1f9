//! `rivulet format`: writes `meta.properties` into every log dir (Kafka's
//! `kafka-storage.sh format`), so a node of a multi-node cluster starts with the cluster's id.
//! `rivulet random-uuid` prints a new cluster id.

use std::path::PathBuf;

use anyhow::Context;
use rivulet_broker::config::{parse_override, BrokerConfig, ConfigSources};
use rivulet_storage::meta_properties::{ensure_formatted, MetaProperties};

/// Arguments of `rivulet format`.
#[derive(clap::Args)]
pub struct Args {
    /// The cluster id to write (see `rivulet random-uuid`).
    #[arg(long, short = 't')]
    cluster_id: String,
    /// A Java-properties file with Kafka's broker keys (for `node.id` and `log.dirs`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overrides one key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Succeed when the dirs are already formatted with this cluster and node id.
    #[arg(long)]
    ignore_formatted: bool,
}

/// Formats the configured log dirs.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let overrides = args
        .set
        .iter()
        .map(|s| parse_override(s))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = ConfigSources::from_process(args.config.clone(), overrides);
    let config = BrokerConfig::load(&sources).context("invalid configuration")?;
    let formatted: Vec<&PathBuf> = config
        .log_dirs
        .iter()
        .filter(|d| matches!(MetaProperties::read(d), Ok(Some(_))))
        .collect();
    if !formatted.is_empty() && !args.ignore_formatted {
        anyhow::bail!(
            "{} is already formatted (use --ignore-formatted to accept that)",
            formatted[0].display()
        );
    }
    let id = args.cluster_id.clone();
    let make = move || id.clone();
    let cluster = ensure_formatted(
        &config.log_dirs,
        config.node_id,
        Some(&args.cluster_id),
        Some(&make),
    )?;
    for dir in &config.log_dirs {
        println!(
            "Formatted {} (cluster.id={cluster}, node.id={})",
            dir.display(),
            config.node_id
        );
    }
    Ok(())
}
