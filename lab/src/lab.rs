//! The lab: a set of network namespaces (hosts and L2 segments), links between
//! them and the processes running inside, torn down as one unit.
//!
//! Teardown is guaranteed on every exit path a test or an operator can hit:
//! normal drop, panic (unwinding runs `Drop`), SIGINT/SIGTERM/SIGHUP (a signal
//! thread tears down every lab of the process, then exits), and even SIGKILL of
//! the builder: the state file survives, and the next `Lab::new` or `lab down`
//! collects labs whose builder is gone.

use crate::cmd;
use crate::process;
use crate::state::{LabState, ProcRecord, start_ticks};
use crate::teardown::{self, TeardownReport};
use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Once};

/// Longest host or segment name: interface names derived from it must fit
/// the kernel's 15-character IFNAMSIZ limit.
pub const MAX_NAME: usize = 11;

type Shared = Arc<Mutex<Inner>>;

struct Inner {
    state: LabState,
    children: HashMap<i32, Child>,
    finished: bool,
}

static LIVE: LazyLock<Mutex<HashMap<String, Shared>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static SIGNALS: Once = Once::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once a termination signal started tearing this process's labs down;
/// work still running on other threads will fail and should not report it.
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

/// A host: one network namespace, named `<lab id>-<host name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Name inside the lab (`hv1`).
    pub name: String,
    /// Namespace name (`bh1a2b3c-hv1`).
    pub ns: String,
}

impl Host {
    /// Runs `argv` inside the host and returns stdout; fails on non-zero exit.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        cmd::run(Some(&self.ns), argv)
    }

    /// Like [`Host::run`] with the command as one whitespace-separated string.
    pub fn sh(&self, line: &str) -> Result<String> {
        self.run(&cmd::words(line))
    }

    /// True when `argv` exits 0 inside the host.
    pub fn succeeds(&self, argv: &[&str]) -> bool {
        cmd::succeeds(Some(&self.ns), argv)
    }

    /// A `Command` for `argv` inside the host, for callers that need more control.
    pub fn command(&self, argv: &[&str]) -> std::process::Command {
        cmd::command_in(Some(&self.ns), argv)
    }
}

/// An L2 segment: a namespace holding one Linux bridge (`br0`) that every
/// attached host's interface is a port of. The underlay is one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The namespace that holds the bridge.
    pub host: Host,
    /// The bridge device inside it.
    pub bridge: String,
}

impl Segment {
    /// Makes `host` a segment: creates its bridge `br0`.
    pub fn in_host(host: Host) -> Result<Segment> {
        add_bridge(&host, "br0")?;
        Ok(Segment {
            host,
            bridge: "br0".into(),
        })
    }
}

/// Creates bridge `name` in `host`, forwarding at once (STP off, no forward
/// delay: the lab measures outages and STP delays would pollute them), and
/// brings it up.
pub fn add_bridge(host: &Host, name: &str) -> Result<()> {
    host.run(&[
        "ip",
        "link",
        "add",
        name,
        "type",
        "bridge",
        "forward_delay",
        "0",
        "stp_state",
        "0",
    ])?;
    host.run(&["ip", "link", "set", "dev", name, "up"])?;
    Ok(())
}

/// How a host's interface on a segment or link is configured.
#[derive(Debug, Clone, Default)]
pub struct Iface {
    /// Interface name inside the host (`eth0`).
    pub name: String,
    /// IPv4 address with prefix (`198.18.0.10/24`).
    pub addr: Option<String>,
    /// MAC address (fixed MACs make captures and FDB checks readable).
    pub mac: Option<String>,
    /// MTU (overlay hosts use 1450 on a 1500 underlay).
    pub mtu: Option<u32>,
    /// Turn TX checksum offload off: required for traffic that crosses the
    /// Open vSwitch userspace datapath (see PEERS.md).
    pub tx_offload_off: bool,
}

impl Iface {
    /// An interface with a name and an address.
    pub fn new(name: &str, addr: &str) -> Iface {
        Iface {
            name: name.into(),
            addr: Some(addr.into()),
            ..Iface::default()
        }
    }

    /// An interface with only a name (a bridge port or an OVS port).
    pub fn bare(name: &str) -> Iface {
        Iface {
            name: name.into(),
            ..Iface::default()
        }
    }

    /// Sets the MAC.
    pub fn mac(mut self, mac: &str) -> Iface {
        self.mac = Some(mac.into());
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Iface {
        self.mtu = Some(mtu);
        self
    }

    /// Turns TX checksum offload off.
    pub fn no_tx_offload(mut self) -> Iface {
        self.tx_offload_off = true;
        self
    }
}

/// A running lab. Dropping it tears everything down unless it was detached.
pub struct Lab {
    shared: Shared,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.state();
        f.debug_struct("Lab")
            .field("id", &st.id)
            .field("name", &st.name)
            .finish()
    }
}

impl Lab {
    /// Creates an empty lab with a unique id. Labs left behind by builders
    /// that died are collected first.
    pub fn new(name: &str) -> Result<Lab> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!("the lab needs root (network namespaces, veth, bridges)");
        }
        cmd::require_program("ip", "iproute2")?;
        install_signal_teardown();
        let collected = teardown::collect_garbage();
        if !collected.is_empty() {
            tracing::info!(?collected, "collected labs left by dead builders");
        }
        let id = unique_id();
        let run_dir = run_root().join(format!("{id}-{}", sanitize(name)));
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("create {}", run_dir.display()))?;
        // FRR drops privileges to frr:frr and must traverse into the run folder.
        make_traversable(&run_dir)?;
        let me = std::process::id() as i32;
        let state = LabState {
            id: id.clone(),
            name: name.to_owned(),
            owner_pid: me,
            owner_start_ticks: start_ticks(me),
            detached: false,
            run_dir,
            namespaces: Vec::new(),
            processes: Vec::new(),
            notes: Vec::new(),
        };
        state.save()?;
        let shared = Arc::new(Mutex::new(Inner {
            state,
            children: HashMap::new(),
            finished: false,
        }));
        lock(&LIVE).insert(id.clone(), shared.clone());
        tracing::info!(lab = %id, name, "lab created");
        Ok(Lab { shared })
    }

    /// The lab's unique id (prefix of all its namespaces).
    pub fn id(&self) -> String {
        self.state().id
    }

    /// The per-run folder for logs, captures and daemon databases.
    pub fn run_dir(&self) -> PathBuf {
        self.state().run_dir
    }

    /// A snapshot of what the lab owns.
    pub fn state(&self) -> LabState {
        lock(&self.shared).state.clone()
    }

    fn update(&self, f: impl FnOnce(&mut LabState)) -> Result<()> {
        let mut g = lock(&self.shared);
        f(&mut g.state);
        g.state.save()
    }

    /// Adds a free-form line shown by `lab status`.
    pub fn note(&self, line: impl Into<String>) -> Result<()> {
        let line = line.into();
        self.update(|s| s.notes.push(line))
    }

    /// Creates a host: a namespace with loopback up.
    pub fn add_host(&self, name: &str) -> Result<Host> {
        check_name(name)?;
        let ns = format!("{}-{name}", self.id());
        if self.state().namespaces.contains(&ns) {
            bail!("host {name} already exists in this lab");
        }
        cmd::run(None, &["ip", "netns", "add", &ns])?;
        self.update(|s| s.namespaces.push(ns.clone()))?;
        cmd::run(Some(&ns), &["ip", "link", "set", "dev", "lo", "up"])?;
        Ok(Host {
            name: name.to_owned(),
            ns,
        })
    }

    /// A handle to an existing host of this lab, by name.
    pub fn host(&self, name: &str) -> Result<Host> {
        let ns = format!("{}-{name}", self.id());
        if !self.state().namespaces.contains(&ns) {
            bail!("no host {name} in lab {}", self.id());
        }
        Ok(Host {
            name: name.to_owned(),
            ns,
        })
    }

    /// Creates an L2 segment: a namespace with a bridge `br0`.
    pub fn add_segment(&self, name: &str) -> Result<Segment> {
        let host = self.add_host(name)?;
        Segment::in_host(host)
    }

    /// Plugs `host` into `seg` with a veth pair: `iface` inside the host, a
    /// bridge port named `<host name>` (or `port_name`) inside the segment.
    pub fn attach(&self, host: &Host, seg: &Segment, iface: &Iface) -> Result<()> {
        self.attach_as(host, seg, iface, &host.name)
    }

    /// Like [`Lab::attach`] with an explicit port name on the segment side.
    pub fn attach_as(
        &self,
        host: &Host,
        seg: &Segment,
        iface: &Iface,
        port_name: &str,
    ) -> Result<()> {
        self.veth(host, iface, &seg.host, &Iface::bare(port_name))?;
        seg.host
            .run(&["ip", "link", "set", "dev", port_name, "master", &seg.bridge])?;
        Ok(())
    }

    /// Connects two hosts with a veth pair, configuring both ends.
    pub fn veth(&self, a: &Host, a_if: &Iface, b: &Host, b_if: &Iface) -> Result<()> {
        check_ifname(&a_if.name)?;
        check_ifname(&b_if.name)?;
        let mut argv = vec!["ip", "link", "add", &a_if.name, "netns", &a.ns];
        if let Some(mac) = &a_if.mac {
            argv.extend(["address", mac]);
        }
        argv.extend(["type", "veth", "peer", "name", &b_if.name, "netns", &b.ns]);
        if let Some(mac) = &b_if.mac {
            argv.extend(["address", mac]);
        }
        cmd::run(None, &argv)?;
        configure_iface(a, a_if)?;
        configure_iface(b, b_if)?;
        // The kernel reports carrier asynchronously (linkwatch may take up to
        // a second under load); frames sent before that are dropped, so a
        // link is ready only when both ends say so.
        for (h, i) in [(a, a_if), (b, b_if)] {
            let path = format!("/sys/class/net/{}/operstate", i.name);
            crate::wait::until(
                &format!("{} {} operationally up", h.name, i.name),
                std::time::Duration::from_secs(10),
                std::time::Duration::from_millis(10),
                || h.run(&["cat", &path]).is_ok_and(|s| s.trim() == "up"),
            )?;
        }
        Ok(())
    }

    /// Starts a long-lived process inside `host` (or the root namespace when
    /// `host` is `None`), output to `<run dir>/<name>.log`. Returns its PID.
    pub fn spawn(
        &self,
        host: Option<&Host>,
        name: &str,
        argv: &[&str],
        env: &[(&str, &str)],
    ) -> Result<i32> {
        if self.state().processes.iter().any(|p| p.name == name) {
            bail!("a process named {name} already exists in this lab");
        }
        let log = self.run_dir().join(format!("{}.log", sanitize(name)));
        let ns = host.map(|h| h.ns.as_str());
        let mut command = cmd::command_in(ns, argv);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = process::spawn_logged(command, &log)
            .with_context(|| format!("start {name}: {}", cmd::render(ns, argv)))?;
        let pid = child.id() as i32;
        let rec = ProcRecord {
            name: name.to_owned(),
            ns: ns.map(str::to_owned),
            pid,
            start_ticks: start_ticks(pid),
            log,
        };
        {
            let mut g = lock(&self.shared);
            g.children.insert(pid, child);
            g.state.processes.push(rec);
            g.state.save()?;
        }
        tracing::debug!(lab = %self.id(), process = name, pid, "started");
        Ok(pid)
    }

    /// Where the named process's stdout and stderr go.
    pub fn process_log(&self, name: &str) -> Result<PathBuf> {
        lock(&self.shared)
            .state
            .processes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.log.clone())
            .with_context(|| format!("no process named {name}"))
    }

    /// Fails with the tail of its log when the named process is not running.
    pub fn check_alive(&self, name: &str) -> Result<()> {
        let mut g = lock(&self.shared);
        let rec = g
            .state
            .processes
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .with_context(|| format!("no process named {name}"))?;
        let status = match g.children.get_mut(&rec.pid) {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        };
        let dead = status.is_some() || !crate::state::pid_matches(rec.pid, rec.start_ticks);
        if dead {
            bail!(
                "{name} (pid {}) is not running{}; last log lines:\n{}",
                rec.pid,
                status.map(|s| format!(" ({s})")).unwrap_or_default(),
                log_tail(&rec.log, 20)
            );
        }
        Ok(())
    }

    /// Stops one process by PID (SIGTERM, then SIGKILL after a grace period).
    pub fn stop_process(&self, name: &str) -> Result<process::Stopped> {
        self.signal_process(name, nix::sys::signal::Signal::SIGTERM)
    }

    /// Kills one process with SIGKILL at once (crash injection).
    pub fn kill_process(&self, name: &str) -> Result<process::Stopped> {
        self.signal_process(name, nix::sys::signal::Signal::SIGKILL)
    }

    /// Stops one process with signal `sig` first (SIGKILL after the grace period).
    pub fn signal_process(
        &self,
        name: &str,
        sig: nix::sys::signal::Signal,
    ) -> Result<process::Stopped> {
        let mut g = lock(&self.shared);
        let idx = g
            .state
            .processes
            .iter()
            .position(|p| p.name == name)
            .with_context(|| format!("no process named {name}"))?;
        let rec = g.state.processes[idx].clone();
        let mut child = g.children.remove(&rec.pid);
        let how = process::stop(&rec, child.as_mut(), sig, process::STOP_GRACE);
        g.state.processes.remove(idx);
        g.state.save()?;
        Ok(how)
    }

    /// Keeps the lab running after this handle is gone (`lab up`): `lab down`
    /// stops it later from the state file.
    pub fn detach(self) -> Result<LabState> {
        let st = {
            let mut g = lock(&self.shared);
            g.state.detached = true;
            g.state.save()?;
            g.finished = true;
            g.state.clone()
        };
        lock(&LIVE).remove(&st.id);
        Ok(st)
    }

    /// Stops every process and deletes every namespace now.
    pub fn teardown(self) -> TeardownReport {
        finish(&self.shared)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let rep = finish(&self.shared);
        if !rep.is_clean() {
            tracing::warn!(errors = ?rep.errors, "lab teardown incomplete");
        }
    }
}

fn finish(shared: &Shared) -> TeardownReport {
    let mut g = lock(shared);
    if g.finished {
        return TeardownReport::default();
    }
    g.finished = true;
    let st = g.state.clone();
    let rep = teardown::teardown(&st, &mut g.children);
    drop(g);
    lock(&LIVE).remove(&st.id);
    tracing::info!(lab = %st.id, stopped = rep.stopped.len(), namespaces = rep.deleted_namespaces.len(), "lab torn down");
    rep
}

/// Tears down every lab of this process on SIGINT, SIGTERM or SIGHUP, then
/// exits with 128 + signal, the shell convention.
fn install_signal_teardown() {
    SIGNALS.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            tracing::warn!("cannot install signal handlers: Ctrl-C will not tear labs down");
            return;
        };
        std::thread::Builder::new()
            .name("lab-signals".into())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    SIGNALLED.store(true, Ordering::SeqCst);
                    eprintln!("lab: signal {sig}: tearing down");
                    teardown_all_live();
                    std::process::exit(128 + sig);
                }
            })
            .ok();
    });
}

/// Tears down every lab this process still owns (not the detached ones).
pub fn teardown_all_live() {
    let labs: Vec<Shared> = lock(&LIVE).values().cloned().collect();
    for shared in labs {
        finish(&shared);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock must not stop the teardown that follows it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn configure_iface(h: &Host, i: &Iface) -> Result<()> {
    if let Some(mtu) = i.mtu {
        h.run(&["ip", "link", "set", "dev", &i.name, "mtu", &mtu.to_string()])?;
    }
    if let Some(addr) = &i.addr {
        h.run(&["ip", "addr", "add", addr, "dev", &i.name])?;
    }
    h.run(&["ip", "link", "set", "dev", &i.name, "up"])?;
    if i.tx_offload_off {
        h.run(&["ethtool", "-K", &i.name, "tx", "off"])?;
    }
    Ok(())
}

/// Root of per-run folders (`BRIDGEHEAD_LAB_RUN_DIR`, default /tmp/bridgehead-lab).
pub fn run_root() -> PathBuf {
    std::env::var_os("BRIDGEHEAD_LAB_RUN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/bridgehead-lab"))
}

fn make_traversable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut d = Some(dir);
    while let Some(p) = d {
        if p == Path::new("/") || p == Path::new("/tmp") {
            break;
        }
        let meta = std::fs::metadata(p)?;
        let mode = meta.permissions().mode();
        if mode & 0o005 != 0o005 {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode | 0o755))?;
        }
        d = p.parent();
    }
    Ok(())
}

fn unique_id() -> String {
    let pid = std::process::id() as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
    // FNV-1a over the three: short, and distinct across concurrent builders.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [pid, nanos, n].iter().flat_map(|v| v.to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    format!("bh{:06x}", h & 0xff_ffff)
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !ok {
        bail!(
            "invalid lab name {name:?}: 1-{MAX_NAME} chars of a-z, 0-9 and '-', starting with a letter"
        );
    }
    Ok(())
}

fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ':']) {
        bail!("invalid interface name {name:?}: 1-15 characters, no '/', ':' or space");
    }
    Ok(())
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct() {
        let a = unique_id();
        let b = unique_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 8);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("hv1").is_ok());
        assert!(check_name("underlay").is_ok());
        assert!(check_name("Hv1").is_err());
        assert!(check_name("a-very-long-name").is_err());
        assert!(check_name("").is_err());
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("sixteen-chars-xx").is_err());
    }
}
