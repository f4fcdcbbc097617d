//! `bridgehead-gateway`: the kernel VTEP daemon for gateway boxes (VXLAN to
//! physical VLANs) and, in host mode, Linux hypervisors (VXLAN to VM ports).
//!
//! Two sources of desired state:
//!
//! - the controller: `--controller URL --node NAME [--token T] [--ca FILE]
//!   [--underlay-dev DEV] [--vm-port MAC=IFNAME ...]`: the node's state is
//!   computed from the store ([`gateway::store_source`]), learned MACs are
//!   written back under a lease ([`gateway::store_client`]);
//! - a per-node JSON file: `--desired FILE [--learned FILE]`
//!   ([`gateway::file_store`]).
//!
//! Everything but flag parsing, logging and process set-up lives in
//! [`gateway::daemon`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use api::client::ClientConfig;
use api::duration::parse_duration;
use clap::Parser;
use gateway::MacAddr;
use gateway::daemon::{self, DaemonConfig, FileConfig, Source, StoreConfig};
use gateway::metrics::DEFAULT_LISTEN;
use gateway::netns;
use gateway::reconciler::ReconcilerConfig;
use gateway::store_source::LocalConfig;

/// Programs the Linux kernel (bridges, VXLAN devices, FDB, neighbours,
/// nexthops) from a desired state (the controller's store, or a file),
/// reports learned MACs, exports metrics. SIGHUP reloads the desired file;
/// SIGTERM/SIGINT stop the daemon and leave the dataplane as it is.
#[derive(Debug, Parser)]
#[command(name = "bridgehead-gateway", version)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["desired", "controller"]))]
struct Args {
    /// Run inside this network namespace (`ip netns` name), entered before
    /// anything else starts.
    #[arg(long, env = "BRIDGEHEAD_GATEWAY_NETNS")]
    netns: Option<String>,
    /// Desired-state JSON file; re-read when it changes and on SIGHUP.
    #[arg(long, env = "BRIDGEHEAD_GATEWAY_DESIRED")]
    desired: Option<PathBuf>,
    /// Controller URL (http://HOST:PORT or https://HOST:PORT): follow the store.
    #[arg(long, env = "BRIDGEHEAD_SERVER", requires = "node")]
    controller: Option<String>,
    /// Bearer token (a `node` token of this node).
    #[arg(long, env = "BRIDGEHEAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM CA file to trust for an https controller.
    #[arg(long, env = "BRIDGEHEAD_CA")]
    ca: Option<PathBuf>,
    /// This node's transport-node name in the store.
    #[arg(long, env = "BRIDGEHEAD_NODE")]
    node: Option<String>,
    /// Underlay NIC the VXLAN devices are bound to (controller mode).
    #[arg(long)]
    underlay_dev: Option<String>,
    /// Host mode: the local port of a VM MAC declared in the store, MAC=IFNAME; repeatable.
    #[arg(long = "vm-port", value_parser = parse_vm_port)]
    vm_ports: Vec<(MacAddr, String)>,
    /// TTL of the lease learned MACs are written under (renewed every third of it).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_ttl: Duration,
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

/// `02:00:00:00:01:01=vm1` -> (MAC, interface name).
fn parse_vm_port(s: &str) -> Result<(MacAddr, String), String> {
    let (mac, ifname) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected MAC=IFNAME"))?;
    let mac: MacAddr = mac.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if ifname.is_empty() || ifname.len() > gateway::desired::IFNAME_MAX || ifname.contains('/') {
        return Err(format!("{s:?}: {ifname:?} is not an interface name"));
    }
    Ok((mac, ifname.to_string()))
}

fn main() -> ExitCode {
    let args = Args::parse();
    api::daemon_main::init_logging();
    // setns moves only the calling thread, and the runtime below is
    // single-threaded on this very thread: every socket lives in the namespace.
    if let Some(ns) = &args.netns {
        if let Err(e) = netns::enter(ns) {
            tracing::error!(error = %e, "cannot enter the network namespace");
            return ExitCode::FAILURE;
        }
    }
    let source = match (args.desired, args.controller) {
        (Some(desired), _) => Source::File(FileConfig {
            desired,
            learned: args.learned,
            poll: args.poll,
        }),
        (None, Some(server)) => {
            let mut client = ClientConfig::new(server);
            client.token = args.token;
            client.ca_file = args.ca;
            // A renewal must not take longer than the lease lives.
            client.request_timeout = args.lease_ttl / 3;
            client.connect_timeout = client.connect_timeout.min(args.lease_ttl / 3);
            Source::Store(StoreConfig {
                client,
                node: args.node.unwrap_or_default(),
                local: LocalConfig {
                    underlay_dev: args.underlay_dev,
                    vm_ports: args.vm_ports.into_iter().collect(),
                },
                lease_ttl: args.lease_ttl,
            })
        }
        (None, None) => {
            tracing::error!("give --desired FILE or --controller URL");
            return ExitCode::FAILURE;
        }
    };
    let config = DaemonConfig {
        source,
        metrics_listen: args.metrics_listen,
        reconciler: ReconcilerConfig {
            resync: args.resync,
            debounce: args.debounce,
            ..ReconcilerConfig::default()
        },
    };
    api::daemon_main::run_to_exit(
        "bridgehead-gateway",
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        daemon::run(config),
    )
}
