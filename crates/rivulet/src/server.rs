//! `rivulet server`: runs a broker until SIGTERM or Ctrl-C, then shuts it down cleanly.
//!
//! Configuration, lowest precedence first: Kafka's defaults (a single node on
//! `PLAINTEXT://127.0.0.1:9092`, data in `./data`), `--config FILE` (Java properties),
//! `--set key=value`, and `RIVULET_<KEY>` environment variables.

use std::path::PathBuf;

use anyhow::Context;
use rivulet_broker::config::{parse_override, BrokerConfig, ConfigSources};
use rivulet_broker::Broker;

/// Arguments of `rivulet server`.
#[derive(clap::Args)]
pub struct Args {
    /// A Java-properties file with Kafka's broker keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Overrides one key (repeatable): `--set num.partitions=3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Loads the configuration, starts the broker and serves until a signal.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let overrides = args
        .set
        .iter()
        .map(|s| parse_override(s))
        .collect::<Result<Vec<_>, _>>()?;
    let sources = ConfigSources::from_process(args.config.clone(), overrides);
    let config = BrokerConfig::load(&sources).context("invalid configuration")?;
    for key in config.unknown_keys() {
        tracing::warn!(key, "unknown configuration key ignored");
    }
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rivulet")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let broker = Broker::start(config).await?;
        wait_for_signal().await?;
        broker.shutdown().await?;
        Ok(())
    })
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        r = tokio::signal::ctrl_c() => { r.context("cannot listen for Ctrl-C")?; tracing::info!("interrupt received") }
    }
    Ok(())
}

/// Each partition holds a descriptor per segment: raise the soft limit to the hard one, as
/// Kafka's start scripts expect operators to.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::warn!("cannot raise the open file limit");
            }
        }
    }
}
