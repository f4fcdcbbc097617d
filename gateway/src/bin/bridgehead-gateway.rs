//! `bridgehead-gateway`: the kernel VTEP daemon for gateway boxes (VXLAN to
//! physical VLANs) and, in host mode, Linux hypervisors (VXLAN to VM ports).
//!
//! Everything but flag parsing, logging and process set-up lives in
//! [`gateway::daemon`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gateway::daemon::{self, DaemonConfig, parse_duration};
use gateway::metrics::DEFAULT_LISTEN;
use gateway::netns;
use gateway::reconciler::ReconcilerConfig;
use tracing_subscriber::EnvFilter;

/// Programs the Linux kernel (bridges, VXLAN devices, FDB, neighbours,
/// nexthops) from a desired state, reports learned MACs, exports metrics.
/// SIGHUP reloads the desired file; SIGTERM/SIGINT stop the daemon and leave
/// the dataplane as it is.
#[derive(Debug, Parser)]
#[command(name = "bridgehead-gateway", version)]
struct Args {
    /// Run inside this network namespace (`ip netns` name), entered before
    /// anything else starts.
    #[arg(long, env = "BRIDGEHEAD_GATEWAY_NETNS")]
    netns: Option<String>,
    /// Desired-state JSON file; re-read when it changes and on SIGHUP.
    #[arg(long, env = "BRIDGEHEAD_GATEWAY_DESIRED")]
    desired: PathBuf,
    /// Address of the Prometheus /metrics listener.
    #[arg(long, default_value = DEFAULT_LISTEN, env = "BRIDGEHEAD_GATEWAY_METRICS_LISTEN")]
    metrics_listen: SocketAddr,
    /// Write learned MACs (JSON array of LearnedMac-shaped objects) here.
    #[arg(long)]
    learned: Option<PathBuf>,
    /// Full reconcile pass at least this often (covers lost notifications).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    resync: Duration,
    /// Quiet time after a kernel notification before a pass.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    debounce: Duration,
    /// How often the desired file is checked for changes.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    poll: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs in files stay greppable.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    // setns moves only the calling thread, and the runtime below is
    // single-threaded on this very thread: every socket lives in the namespace.
    if let Some(ns) = &args.netns {
        if let Err(e) = netns::enter(ns) {
            tracing::error!(error = %e, "cannot enter the network namespace");
            return ExitCode::FAILURE;
        }
    }
    let config = DaemonConfig {
        desired: args.desired,
        metrics_listen: args.metrics_listen,
        learned: args.learned,
        poll: args.poll,
        reconciler: ReconcilerConfig {
            resync: args.resync,
            debounce: args.debounce,
            ..ReconcilerConfig::default()
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "bridgehead-gateway failed");
            ExitCode::FAILURE
        }
    }
}
