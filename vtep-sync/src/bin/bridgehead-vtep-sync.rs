//! `bridgehead-vtep-sync`: the hardware-VTEP controller daemon. Follows the
//! controller's store, keeps each served switch's hardware_vtep database
//! equal to its desired state over OVSDB, and writes what the switches
//! report (learned MACs, tunnel BFD state, connection and faults) back to
//! the store under a lease.
//!
//! Everything but flag parsing, logging and the runtime lives in
//! [`vtep_sync::daemon`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use api::client::ClientConfig;
use api::duration::parse_duration;
use clap::Parser;
use vtep_sync::daemon::{self, DaemonConfig};
use vtep_sync::reconciler::DEFAULT_LOCK;
use vtep_sync::target::TlsFiles;

/// Programs hardware VTEP switches (OVSDB hardware_vtep) from the
/// controller's store and reports what they learn. SIGTERM/SIGINT stop it
/// and leave every switch as it is.
#[derive(Debug, Parser)]
#[command(name = "bridgehead-vtep-sync", version)]
struct Args {
    /// Controller URL (http://HOST:PORT or https://HOST:PORT).
    #[arg(long, env = "BRIDGEHEAD_SERVER")]
    controller: String,
    /// Bearer token: a `node` token whose node, or one of its `acts_for`,
    /// is each served switch (it writes their observed state).
    #[arg(long, env = "BRIDGEHEAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA file to trust for an https controller.
    #[arg(long, env = "BRIDGEHEAD_CA")]
    ca: Option<PathBuf>,
    /// This instance's name, for logs (several instances may serve one switch).
    #[arg(long, env = "BRIDGEHEAD_VTEP_SYNC_NAME", default_value = "vtep-sync")]
    name: String,
    /// A hardware switch to serve (its transport-node name; the OVSDB target
    /// comes from the store); repeatable.
    #[arg(long = "switch", required = true)]
    switches: Vec<String>,
    /// Address of the Prometheus metrics listener (any path answers).
    #[arg(long, env = "BRIDGEHEAD_VTEP_SYNC_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// TTL of the lease the observed state is written under (renewed every third of it).
    #[arg(long, default_value = "10s", value_parser = parse_lease_ttl)]
    lease_ttl: Duration,
    /// OVSDB lock that elects the one writer of a switch among instances.
    #[arg(long, default_value = DEFAULT_LOCK)]
    lock: String,
    /// For ssl: OVSDB targets: the CA the switches' certificates chain to.
    #[arg(long, requires_all = ["ovsdb_cert", "ovsdb_key"])]
    ovsdb_ca: Option<PathBuf>,
    /// For ssl: OVSDB targets: our certificate (chain), presented to the switches.
    #[arg(long, requires_all = ["ovsdb_ca", "ovsdb_key"])]
    ovsdb_cert: Option<PathBuf>,
    /// For ssl: OVSDB targets: our private key.
    #[arg(long, requires_all = ["ovsdb_ca", "ovsdb_cert"])]
    ovsdb_key: Option<PathBuf>,
}

/// A lease TTL: a duration (`api::duration`) of at least 1 s.
fn parse_lease_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!(
            "{s:?}: a lease shorter than 1 s cannot be renewed in time"
        ));
    }
    Ok(d)
}

fn main() -> ExitCode {
    let args = Args::parse();
    api::daemon_main::init_logging();
    let mut client = ClientConfig::new(args.controller);
    client.token = args.token;
    client.ca_file = args.ca;
    // A renewal must not take longer than the lease lives.
    client.request_timeout = args.lease_ttl / 3;
    client.connect_timeout = client.connect_timeout.min(args.lease_ttl / 3);
    let ovsdb_tls = match (args.ovsdb_ca, args.ovsdb_cert, args.ovsdb_key) {
        (Some(ca_cert), Some(certificate), Some(private_key)) => Some(TlsFiles {
            ca_cert,
            certificate,
            private_key,
        }),
        _ => None,
    };
    let config = DaemonConfig {
        client,
        instance: args.name,
        switches: args.switches,
        metrics_listen: args.metrics_listen,
        lease_ttl: args.lease_ttl,
        ovsdb_tls,
        lock: Some(args.lock),
    };
    api::daemon_main::run_to_exit(
        "bridgehead-vtep-sync",
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        daemon::run(config),
    )
}
