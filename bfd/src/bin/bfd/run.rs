//! `bfd run`: one event loop thread owns every session; the main thread
//! waits for signals (SIGHUP reloads, SIGTERM/SIGINT stop after telling
//! every remote AdminDown); small threads log state changes and answer the
//! status socket and the metrics listener through the loop's `Handle`.

use crate::{http, status_socket};
use anyhow::{Context, Result};
use bfd::control::{self, Handle};
use bfd::file_config::{FileConfig, Peer, Validated};
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::metrics::Metrics;
use bfd::packet::Diagnostic;
use bfd::reload::ReloadPlan;
use bfd::session::Event;
use bfd::udp::{Driver, DriverConfig};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock, mpsc};
use std::time::{Duration, Instant};

/// The sessions the loop runs, as configured (names for logs and status).
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<RwLock<HashMap<PeerKey, Peer>>>);

impl Shared {
    /// Name of every session.
    pub fn names(&self) -> HashMap<PeerKey, String> {
        let g = self.0.read().unwrap_or_else(PoisonError::into_inner);
        g.iter().map(|(k, p)| (*k, p.name.clone())).collect()
    }

    fn name(&self, key: &PeerKey) -> String {
        let g = self.0.read().unwrap_or_else(PoisonError::into_inner);
        g.get(key)
            .map_or_else(|| key.remote.to_string(), |p| p.name.clone())
    }

    fn running(&self) -> Vec<Peer> {
        let g = self.0.read().unwrap_or_else(PoisonError::into_inner);
        g.values().cloned().collect()
    }

    fn set(&self, peers: impl IntoIterator<Item = Peer>) {
        let mut g = self.0.write().unwrap_or_else(PoisonError::into_inner);
        *g = peers.into_iter().map(|p| (p.key, p)).collect();
    }
}

enum Msg {
    Signal(i32),
    LoopEnded(std::io::Result<()>),
}

/// Runs until a stop signal or a fatal loop error.
pub fn run(config: &Path, metrics_listen: Option<SocketAddr>, status_path: &Path) -> Result<()> {
    let v = FileConfig::load(config)?;
    let started = v.clone();
    let mut manager = Manager::new(ManagerConfig {
        seed: rand::random(),
        ..v.manager.clone()
    })?;
    let now = Instant::now();
    let shared = Shared::default();
    for p in &v.peers {
        manager
            .add_session(p.key, p.session.clone(), now)
            .with_context(|| format!("session {}", p.name))?;
    }
    let mut driver = Driver::bind(
        manager,
        DriverConfig {
            local: v.bind,
            batch: v.batch,
            coalesce: v.coalesce,
            recv_buffer: v.recv_buffer,
        },
    )
    .with_context(|| format!("bind BFD sockets on {}", v.bind))?;
    if let Some(dev) = &v.xdp_device {
        driver
            .attach_xdp(bfd::xdp::XdpConfig::new(dev))
            .with_context(|| format!("XDP path on {dev} (daemon.xdp_device)"))?;
        let mode = driver.xdp().map_or("?", |x| x.mode());
        tracing::info!(device = %dev, mode, "single-hop and multihop BFD on the XDP path");
    }
    for p in &v.peers {
        if let (Some(dev), false) = (&p.vxlan_device, driver.has_vxlan(p.key)) {
            driver
                .attach_vxlan(dev, p.key, p.vxlan_flavor)
                .with_context(|| format!("session {}: VXLAN device {dev}", p.name))?;
        }
    }
    shared.set(v.peers.iter().cloned());

    // Listeners before the loop starts, so a bad address fails the start.
    if let Ok(m) = std::fs::metadata(status_path) {
        if m.file_type().is_socket() {
            std::fs::remove_file(status_path)?; // a previous instance's
        }
    }
    let status_listener = std::os::unix::net::UnixListener::bind(status_path)
        .with_context(|| format!("status socket {}", status_path.display()))?;
    let metrics_listener = metrics_listen
        .map(|a| std::net::TcpListener::bind(a).with_context(|| format!("metrics listener {a}")))
        .transpose()?;

    let (handle, ctl) = control::channel()?;
    let (events_tx, events_rx) = mpsc::channel();
    let (msg_tx, msg_rx) = mpsc::channel();
    let loop_msg = msg_tx.clone();
    let loop_thread = std::thread::Builder::new()
        .name("bfd-loop".into())
        .spawn(move || {
            let r = driver.run(&ctl, &events_tx);
            let _ = loop_msg.send(Msg::LoopEnded(r));
        })?;
    tracing::info!(
        sessions = v.peers.len(),
        bind = %v.bind,
        config = %config.display(),
        "bfd running"
    );

    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("bfd-events".into())
            .spawn(move || log_events(events_rx, shared))?;
    }
    {
        let (h, s) = (handle.clone(), shared.clone());
        std::thread::Builder::new()
            .name("bfd-status".into())
            .spawn(move || status_socket::serve(status_listener, h, s))?;
    }
    if let Some(l) = metrics_listener {
        tracing::info!(addr = %l.local_addr()?, "serving /metrics");
        let metrics = Metrics::new()?;
        let h = handle.clone();
        std::thread::Builder::new()
            .name("bfd-metrics".into())
            .spawn(move || http::serve(l, h, metrics))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("bfd-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                if msg_tx.send(Msg::Signal(s)).is_err() {
                    return;
                }
            }
        })?;

    let result = loop {
        match msg_rx.recv() {
            Ok(Msg::Signal(SIGHUP)) => reload(config, &started, &handle, &shared),
            Ok(Msg::Signal(s)) => {
                tracing::info!(signal = s, "stopping: sessions go AdminDown");
                admin_down_all(&handle);
                let _ = handle.stop();
                break loop_thread
                    .join()
                    .map_err(|_| anyhow::anyhow!("event loop panicked"));
            }
            Ok(Msg::LoopEnded(r)) => break r.context("event loop failed"),
            Err(_) => break Ok(()),
        }
    };
    let _ = std::fs::remove_file(status_path);
    result
}

fn log_events(rx: mpsc::Receiver<(u32, PeerKey, Event)>, shared: Shared) {
    for (discr, key, ev) in rx {
        let Event::StateChange {
            from,
            to,
            diag,
            remote_diag,
            ..
        } = ev;
        tracing::info!(
            peer = %shared.name(&key),
            local = %key.local,
            remote = %key.remote,
            discr = format_args!("{discr:#x}"),
            from = from.name(),
            to = to.name(),
            diag = diag.name(),
            remote_diag = remote_diag.name(),
            "state change"
        );
    }
}

/// Tells every remote we go AdminDown (§6.8.16) before the loop ends, so
/// they do not count it as a failure.
fn admin_down_all(handle: &Handle) {
    let Ok(all) = handle.statuses() else { return };
    for (d, ..) in &all {
        let _ = handle.set_admin_down(*d, Diagnostic::AdministrativelyDown);
    }
    // Each session sends AdminDown at its next scheduled packet: within one
    // interval (jitter only shortens it). Bounded, so a stop never hangs.
    let longest = all.iter().map(|(_, _, s)| s.tx_interval).max();
    let wait = longest.map_or(Duration::ZERO, |t| t + Duration::from_millis(20));
    std::thread::sleep(wait.min(Duration::from_secs(2)));
}

fn discriminators(handle: &Handle) -> HashMap<PeerKey, u32> {
    handle
        .statuses()
        .map(|v| v.into_iter().map(|(d, k, _)| (k, d)).collect())
        .unwrap_or_default()
}

fn remove(handle: &Handle, discr: Option<u32>) {
    if let Some(d) = discr {
        // The remote hears AdminDown for a Detection Time before it goes.
        let _ = handle.retire_session(d, Diagnostic::AdministrativelyDown);
    }
}

fn add(handle: &Handle, p: &Peer) -> Result<()> {
    if let (Encap::Vxlan, Some(dev)) = (p.key.encap, &p.vxlan_device) {
        handle
            .attach_vxlan(dev, p.key, p.vxlan_flavor)
            .with_context(|| format!("VXLAN device {dev}"))?;
    }
    handle.add_session(p.key, p.session.clone())?;
    Ok(())
}

/// SIGHUP: apply the file's sessions; a bad file changes nothing.
fn reload(config: &Path, started: &Validated, handle: &Handle, shared: &Shared) {
    let v = match FileConfig::load(config) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the running sessions stay as they are");
            return;
        }
    };
    if (
        v.bind,
        v.batch,
        v.coalesce,
        v.recv_buffer,
        &v.xdp_device,
        &v.manager,
    ) != (
        started.bind,
        started.batch,
        started.coalesce,
        started.recv_buffer,
        &started.xdp_device,
        &started.manager,
    ) {
        tracing::warn!("[daemon] settings changed: they apply at the next start only");
    }
    let running = shared.running();
    let plan = ReloadPlan::new(&running, &v.peers);
    if plan.is_empty() {
        tracing::info!("reload: no change");
        return;
    }
    let discr = discriminators(handle);
    let mut failed: Vec<PeerKey> = Vec::new();
    for k in &plan.remove {
        remove(handle, discr.get(k).copied());
    }
    for p in &plan.replace {
        remove(handle, discr.get(&p.key).copied());
        if let Err(e) = add(handle, p) {
            tracing::error!(peer = %p.name, error = %e, "session not re-added");
            failed.push(p.key);
        }
    }
    for p in &plan.retime {
        let s = &p.session;
        if let Some(d) = discr.get(&p.key) {
            if let Err(e) =
                handle.set_params(*d, s.desired_min_tx, s.required_min_rx, s.detect_mult)
            {
                tracing::error!(peer = %p.name, error = %e, "new timers refused");
            }
        }
    }
    for p in &plan.add {
        if let Err(e) = add(handle, p) {
            tracing::error!(peer = %p.name, error = %e, "session not added");
            failed.push(p.key);
        }
    }
    shared.set(v.peers.into_iter().filter(|p| !failed.contains(&p.key)));
    tracing::info!(
        added = plan.add.len(),
        removed = plan.remove.len(),
        retimed = plan.retime.len(),
        replaced = plan.replace.len(),
        renamed = plan.rename.len(),
        failed = failed.len(),
        "config reloaded"
    );
}
