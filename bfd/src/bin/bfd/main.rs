//! `bfd`: the operator's command. `bfd run` runs the sessions of a TOML file
//! (see `bfd::file_config`) in one event loop, logs every state change,
//! reloads the file on SIGHUP, serves status on a unix socket and Prometheus
//! metrics over HTTP; `bfd status` reads a running instance's status;
//! `bfd check` validates a file without running it.

mod http;
mod run;
mod status_socket;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where `run` listens and `status` asks, unless told otherwise.
const DEFAULT_STATUS_SOCKET: &str = "/run/bridgehead-bfd.sock";

/// BFD sessions for Bridgehead tunnels, from a config file.
#[derive(Debug, Parser)]
#[command(name = "bfd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sessions of a config file until SIGTERM or SIGINT; SIGHUP reloads it.
    Run {
        /// TOML configuration (peers, intervals, authentication).
        #[arg(long)]
        config: PathBuf,
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// Unix socket that `bfd status` reads.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_STATUS_SOCKET)]
        status_socket: PathBuf,
    },
    /// Show the sessions of a running `bfd run`.
    Status {
        /// The instance's status socket.
        #[arg(long, value_name = "PATH", default_value = DEFAULT_STATUS_SOCKET)]
        status_socket: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Totals only (cheap with many sessions).
        #[arg(long)]
        summary: bool,
    },
    /// Validate a config file and list its sessions.
    Check {
        /// TOML configuration.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Run {
            config,
            metrics_listen,
            status_socket,
        } => {
            init_logging();
            run::run(&config, metrics_listen, &status_socket)
        }
        Command::Status {
            status_socket,
            json,
            summary,
        } => status(&status_socket, json, summary),
        Command::Check { config } => check(&config),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bfd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn status(socket: &std::path::Path, json: bool, summary: bool) -> Result<()> {
    let report = status_socket::query(socket, summary)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

fn check(path: &std::path::Path) -> Result<()> {
    let v = bfd::file_config::FileConfig::load(path)?;
    println!("{}: {} sessions", path.display(), v.peers.len());
    for p in &v.peers {
        println!(
            "  {} {} -> {} {} tx {:?} rx {:?} x{}{}",
            p.name,
            p.key.local,
            p.key.remote,
            bfd::report::mode_name(p.key.encap),
            p.session.desired_min_tx,
            p.session.required_min_rx,
            p.session.detect_mult,
            if p.session.auth.is_some() {
                " auth"
            } else {
                ""
            },
        );
    }
    Ok(())
}
