//! The controller: a single-voter store (raft + redb) behind the REST API.
//!
//! Prints `listening on ADDR` on stdout once the socket is bound, so tests
//! and scripts can use `--listen 127.0.0.1:0`.
//!
//! Authentication is on by default: `--tokens FILE` (format in
//! `api::http::auth`, re-read on SIGHUP). Without it the controller refuses
//! to start unless `--insecure-no-auth` says so explicitly.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use api::http::{Auth, HttpConfig, router};
use api::node::{Node, NodeConfig, Retention};
use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "bridgehead-controller", version, about)]
struct Args {
    /// Directory holding the store (one redb file).
    #[arg(long, env = "BRIDGEHEAD_DATA_DIR")]
    data_dir: PathBuf,
    /// Address of the REST API.
    #[arg(long, default_value = "127.0.0.1:7480")]
    listen: String,
    /// Watch history: always keep at least this many revisions.
    #[arg(long, default_value_t = 100_000)]
    history_revisions: u64,
    /// Watch history: always keep revisions younger than this many seconds.
    #[arg(long, default_value_t = 3600)]
    history_age_secs: u64,
    /// How often history compaction runs, in ms.
    #[arg(long, default_value_t = 10_000)]
    compact_every_ms: u64,
    /// Default interval of watch progress bookmarks, in ms.
    #[arg(long, default_value_t = 5000)]
    progress_ms: u64,
    /// Bearer tokens with roles (TOML, see the api crate docs); re-read on SIGHUP.
    #[arg(long, env = "BRIDGEHEAD_TOKENS")]
    tokens: Option<PathBuf>,
    /// Serve without authentication: every caller is admin. Only for labs.
    #[arg(long, conflicts_with = "tokens")]
    insecure_no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::daemon_main::init_logging();
    let args = Args::parse();
    // Check TLS files before opening the store: a typo should fail fast.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(api::tls::server_config(c, k)?),
        _ => None,
    };
    let auth = match (&args.tokens, args.insecure_no_auth) {
        (Some(path), _) => {
            let a = Auth::from_file(path)?;
            Some(Arc::new(a))
        }
        (None, true) => {
            tracing::warn!("authentication is OFF (--insecure-no-auth): every caller is admin");
            None
        }
        (None, false) => anyhow::bail!(
            "refusing to serve without authentication: give --tokens FILE, or --insecure-no-auth for a lab"
        ),
    };
    if let Some(a) = &auth {
        // Installed before the socket is announced: SIGHUP's default action
        // would end the process.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(reload_on_sighup(a.clone(), hup));
    }
    let mut cfg = NodeConfig::single(&args.data_dir);
    cfg.retention = Retention {
        revisions: args.history_revisions,
        age: Duration::from_secs(args.history_age_secs),
    };
    cfg.compact_every = Duration::from_millis(args.compact_every_ms.max(10));
    let node = Node::start(cfg, None)
        .with_context(|| format!("opening store in {}", args.data_dir.display()))?;
    let app = router(
        node.clone(),
        HttpConfig {
            progress_every: Duration::from_millis(args.progress_ms),
            auth,
        },
    );
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = tls.is_some(), "controller listening");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
    }
    let stop = {
        let node = node.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("stopping");
            // Stopping the store ends open watch streams, so the server
            // can finish its graceful shutdown.
            let _ = tokio::task::spawn_blocking(move || node.shutdown()).await;
        }
    };
    match tls {
        Some(cfg) => {
            let l = api::tls::TlsListener::new(listener, cfg)?;
            axum::serve(l, app).with_graceful_shutdown(stop).await?
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await?
        }
    }
    node.shutdown();
    Ok(())
}

/// Re-reads the tokens file on each SIGHUP; a bad file keeps the old tokens.
async fn reload_on_sighup(auth: Arc<Auth>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        match auth.reload() {
            Ok(n) => tracing::info!(tokens = n, "tokens reloaded"),
            Err(e) => tracing::error!(error = %e, "tokens reload failed; keeping the old tokens"),
        }
    }
}

/// Resolves on SIGINT or SIGTERM, so systemd stops the controller cleanly.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
