//! Shared helpers of the root tests: a throw-away namespace and the real
//! reconciler loop running inside it. `ip`/`bridge` only observe and tamper.
#![allow(dead_code)] // each test file uses a different subset

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gateway::learning::LearnEvent;
use gateway::netns;
use gateway::reconciler::{self, Outputs, PassReport, ReconcilerConfig, ReconcilerStats};
use gateway::{DesiredNode, DesiredSwitch, PortBinding, RemoteMac, Replication};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace with `lo` up, deleted on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    /// A fresh namespace whose name is unique per process and call, IPv6 off.
    pub fn new(tag: &str) -> Ns {
        let ns = Ns::bare(tag);
        // No IPv6: router/neighbour solicitations would refresh learned MACs.
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns
    }

    /// Like [`Ns::new`] but with the kernel's defaults (IPv6 on), for tests
    /// that do not learn MACs.
    pub fn bare(tag: &str) -> Ns {
        let name = format!(
            "bh{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `eth0` (the underlay, `underlay` addresses in order) and `eth1`, whose
    /// peer `eth1p` is a host on the physical segment (`host_mac`, 192.0.2.1).
    pub fn with_host(tag: &str, underlay: &[&str], host_mac: &str) -> Ns {
        let ns = Ns::new(tag);
        ns.veth("eth0", "eth0p");
        for addr in underlay {
            ns.ip(&["addr", "add", addr, "dev", "eth0"]);
        }
        ns.veth("eth1", "eth1p");
        ns.ip(&["link", "set", "eth1p", "address", host_mac]);
        ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth1p"]);
        ns
    }

    /// Sets a bridge's `ageing_time` (in 1/100 s; the kernel accepts any value).
    pub fn set_ageing_time(&self, bridge: &str, centiseconds: &str) {
        self.ip(&[
            "link",
            "set",
            bridge,
            "type",
            "bridge",
            "ageing_time",
            centiseconds,
        ]);
    }

    /// `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Any command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// A command inside the namespace whose failure is fine; true on success.
    pub fn try_exec(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// `ip -j -d link show DEV`, or `None` when it does not exist.
    pub fn link(&self, dev: &str) -> Option<Value> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-j", "-d", "link", "show", "dev", dev])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(v)) => v.into_iter().next(),
            _ => None,
        }
    }

    /// `bridge -j fdb show` entries of port `dev` (empty if it does not exist).
    pub fn fdb(&self, dev: &str) -> Vec<Value> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "bridge", "-j", "fdb", "show"])
            .args(["dev", dev])
            .output()
            .unwrap();
        if !out.status.success() {
            return vec![];
        }
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(v)) => v,
            _ => vec![],
        }
    }

    /// A veth pair `a` (stays) / `b` (stays too), both up.
    pub fn veth(&self, a: &str, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs a command, panicking with its stderr on failure.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `f` every 10 ms until it holds; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return t0.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what}: not within {limit:?}");
}

/// `eth1` bound to a switch, untagged when `vlan` is 0.
pub fn bind_eth1(vlan: u16) -> Vec<PortBinding> {
    vec![PortBinding {
        ifname: "eth1".into(),
        vlan,
    }]
}

/// A node on underlay `eth0` with one switch, VNI 5000, and no VM ports.
pub fn one_switch(
    local: Ipv4Addr,
    replication: Replication,
    remote_macs: Vec<RemoteMac>,
    ports: Vec<PortBinding>,
) -> DesiredNode {
    DesiredNode {
        revision: 0,
        local_tunnel_ip: local,
        underlay_dev: Some("eth0".into()),
        switches: vec![DesiredSwitch {
            local_tunnel_ip: None,
            vni: 5000,
            replication,
            remote_macs,
            ports,
            vm_ports: vec![],
        }],
    }
}

/// Loop timers: `resync` and `debounce` as given, retry after 100 ms.
pub fn timers(resync: Duration, debounce: Duration) -> ReconcilerConfig {
    ReconcilerConfig {
        resync,
        debounce,
        retry: Duration::from_millis(100),
    }
}

/// Whether a `bridge -j fdb show` entry is the device's own (`self`), not the bridge's.
pub fn is_self(entry: &Value) -> bool {
    entry["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "self"))
}

/// GET /metrics of the daemon on the namespace's loopback; empty when it does not answer.
pub fn metrics(ns: &Ns) -> String {
    netns::run_in(&ns.name, || async {
        let Ok(mut s) = tokio::net::TcpStream::connect("127.0.0.1:9470").await else {
            return String::new();
        };
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    })
    .unwrap()
}

type LoopThread =
    std::thread::JoinHandle<Result<Result<(), reconciler::ReconcileError>, netns::NetnsError>>;

/// The real loop in a namespace; dropping it stops the loop (the kernel state stays).
pub struct Running {
    pub tx: Option<watch::Sender<DesiredNode>>,
    pub reports: watch::Receiver<Arc<PassReport>>,
    pub stats: ReconcilerStats,
    pub learned: mpsc::UnboundedReceiver<LearnEvent>,
    thread: Option<LoopThread>,
}

impl Running {
    /// Starts the loop with `d` and fast timers.
    pub fn start(ns: &Ns, d: DesiredNode) -> Running {
        Running::start_with(
            ns,
            d,
            timers(Duration::from_secs(5), Duration::from_millis(20)),
        )
    }

    /// Starts the loop with `d` and the given timers.
    pub fn start_with(ns: &Ns, d: DesiredNode, config: ReconcilerConfig) -> Running {
        let (tx, rx) = watch::channel(d);
        let (rtx, reports) = watch::channel(Arc::new(PassReport::default()));
        let (ltx, learned) = mpsc::unbounded_channel();
        let stats = ReconcilerStats::default();
        let outputs = Outputs {
            stats: stats.clone(),
            reports: Some(rtx),
            learned: Some(ltx),
            metrics: None,
        };
        let thread =
            netns::spawn_in(&ns.name, move || reconciler::run_with(rx, config, outputs)).unwrap();
        Running {
            tx: Some(tx),
            reports,
            stats,
            learned,
            thread: Some(thread),
        }
    }

    /// Replaces the desired state.
    pub fn set(&self, d: DesiredNode) {
        self.tx.as_ref().unwrap().send_replace(d);
    }

    /// Passes completed so far.
    pub fn passes(&self) -> u64 {
        self.stats.passes.load(Ordering::Relaxed)
    }

    /// Waits for the next learning event, up to `limit`.
    pub fn next_event(&mut self, limit: Duration) -> Option<LearnEvent> {
        let t0 = Instant::now();
        loop {
            if let Ok(e) = self.learned.try_recv() {
                return Some(e);
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                r.expect("loop thread").expect("netns").expect("loop");
            }
        }
    }
}

/// A helper process (`bridge monitor`, ...) killed by PID on drop.
pub struct Killed(pub Option<std::process::Child>);

impl Killed {
    /// Kills it and returns its stdout lines.
    pub fn stop(&mut self) -> Vec<String> {
        let Some(mut c) = self.0.take() else {
            return vec![];
        };
        let _ = c.kill();
        let out = c.wait_with_output().expect("output");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
