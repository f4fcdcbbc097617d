//! Programming speed of remote MACs: the reconciler's first pass (dump,
//! diff, one netlink request per kernel entry) against `bridge -batch` adding
//! the same kernel entries, and both deleting them again, in the same run.
//!
//! Each remote MAC is two kernel entries: the VXLAN device's
//! `MAC dst VTEP self permanent` and the bridge's `MAC master static` on the
//! VXLAN port; `bridge -batch` gets exactly those commands. Each side runs in
//! a fresh network namespace with the same devices.
//!
//! Run (root, release): `cargo bench -p gateway --bench fdb`
//! (sizes: `BH_BENCH_SIZES=10000,100000`, the default).
//! Without `--bench` (as `cargo test --all-targets` runs it) it only says how to run it.

// The root tests' namespace and command helpers (only those; the rest is
// unused here).
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use gateway::kernel::Kernel;
use gateway::netns;
use gateway::reconciler::reconcile_once;
use gateway::{DesiredNode, MacAddr, RemoteMac, Replication};
use support::{Ns, one_switch, run};

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const V20: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const V30: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 30);

/// A namespace (deleted on drop) with `eth0` at 198.18.0.10/24, its veth peer inside too.
fn underlay_ns() -> Ns {
    let ns = Ns::bare("bench");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ]);
    ns.ip(&["addr", "add", "198.18.0.10/24", "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "eth0p", "up"]);
    ns
}

/// Runs `bridge -batch` over `lines` inside `ns`; returns its wall time.
fn batch(ns: &Ns, lines: &[String]) -> Duration {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    for l in lines {
        writeln!(f, "{l}").expect("write batch");
    }
    f.flush().expect("flush batch");
    let path = f.path().to_str().expect("path").to_string();
    let t = Instant::now();
    run(&["bridge", "-n", &ns.name, "-batch", &path]);
    t.elapsed()
}

/// `bridge fdb show dev DEV` lines in `ns`.
fn count_fdb(ns: &Ns, dev: &str) -> usize {
    let out = Command::new("bridge")
        .args(["-n", &ns.name, "fdb", "show", "dev", dev])
        .output()
        .expect("bridge fdb show");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn mac(i: u32) -> MacAddr {
    MacAddr([
        0x02,
        0x10,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ])
}

fn vtep(i: u32) -> Ipv4Addr {
    if i % 2 == 0 { V20 } else { V30 }
}

fn desired(n: u32) -> DesiredNode {
    let replication = Replication::SourceNode {
        remote_vteps: vec![V20, V30],
    };
    let remote_macs = (0..n)
        .map(|i| RemoteMac {
            mac: mac(i),
            vtep: vtep(i),
            ip: None,
        })
        .collect();
    one_switch(LOCAL, replication, remote_macs, vec![])
}

/// Reconciler timings in one namespace: first pass, converged pass, removal pass.
struct Ours {
    add: Duration,
    actions: usize,
    noop: Duration,
    del: Duration,
    /// `bridge fdb show dev bhvx5000` lines after the first pass.
    entries: usize,
}

/// One reconcile pass inside `ns`, timed from inside (no thread set-up).
fn timed_pass(ns: &Ns, d: DesiredNode) -> (Duration, usize) {
    netns::run_in(&ns.name, move || async move {
        let mut k = Kernel::connect().expect("netlink");
        let t = Instant::now();
        let r = reconcile_once(&mut k, &d).await.expect("pass");
        let took = t.elapsed();
        assert!(
            r.failed.is_empty(),
            "{:?}",
            &r.failed[..r.failed.len().min(3)]
        );
        (took, r.planned.len())
    })
    .expect("netns")
}

fn reconciler(n: u32) -> Ours {
    let ns = underlay_ns();
    let (add, actions) = timed_pass(&ns, desired(n));
    let entries = count_fdb(&ns, "bhvx5000");
    let (noop, planned) = timed_pass(&ns, desired(n));
    assert_eq!(planned, 0, "not converged");
    let (del, _) = timed_pass(&ns, desired(0));
    Ours {
        add,
        actions,
        noop,
        del,
        entries,
    }
}

/// `bridge -batch` timings for the same entries on equivalent devices.
fn bridge_batch(n: u32) -> (Duration, Duration, usize) {
    let ns = underlay_ns();
    ns.ip(&["link", "add", "bhbr5000", "type", "bridge"]);
    ns.ip(&[
        "link",
        "add",
        "bhvx5000",
        "type",
        "vxlan",
        "id",
        "5000",
        "local",
        "198.18.0.10",
        "dstport",
        "4789",
        "nolearning",
        "dev",
        "eth0",
    ]);
    ns.ip(&["link", "set", "bhvx5000", "master", "bhbr5000"]);
    ns.ip(&["link", "set", "bhvx5000", "up"]);
    ns.ip(&["link", "set", "bhbr5000", "up"]);
    let mut add = vec![
        "fdb append 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.20 self permanent".to_string(),
        "fdb append 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.30 self permanent".to_string(),
    ];
    let mut del = Vec::new();
    for i in 0..n {
        let (m, v) = (mac(i), vtep(i));
        add.push(format!(
            "fdb replace {m} dev bhvx5000 dst {v} self permanent"
        ));
        add.push(format!("fdb replace {m} dev bhvx5000 master static"));
        del.push(format!("fdb del {m} dev bhvx5000 dst {v} self"));
        del.push(format!("fdb del {m} dev bhvx5000 master"));
    }
    let t_add = batch(&ns, &add);
    let entries = count_fdb(&ns, "bhvx5000");
    let t_del = batch(&ns, &del);
    (t_add, t_del, entries)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("fdb benchmark: run it with `cargo bench -p gateway --bench fdb` (root)");
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { nix::libc::geteuid() } != 0 {
        println!("fdb benchmark skipped: it needs root (network namespaces)");
        return;
    }
    let sizes: Vec<u32> = std::env::var("BH_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let uname = Command::new("uname").arg("-r").output().ok();
    println!(
        "kernel {}; each remote MAC = 2 kernel entries (vxlan self dst + bridge master static)\n",
        uname
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );
    println!(
        "{:>8} | {:>8} | {:>22} | {:>22} | {:>18} | {:>18} | {:>14}",
        "MACs",
        "entries",
        "reconciler add",
        "bridge -batch add",
        "reconciler del",
        "bridge -batch del",
        "no-op pass"
    );
    println!("{}", "-".repeat(130));
    for n in sizes {
        let ours = reconciler(n);
        let (b_add, b_del, b_entries) = bridge_batch(n);
        let entries = 2 * n as usize;
        assert!(
            ours.actions >= entries,
            "first pass planned {}",
            ours.actions
        );
        // Same FDB on both sides after adding.
        assert_eq!(ours.entries, b_entries, "different FDB contents");
        println!(
            "{:>8} | {:>8} | {:>22} | {:>22} | {:>18} | {:>18} | {:>14}",
            n,
            entries,
            format!("{} ({})", ms(ours.add), rate(entries, ours.add)),
            format!("{} ({})", ms(b_add), rate(entries, b_add)),
            format!("{} ({})", ms(ours.del), rate(entries, ours.del)),
            format!("{} ({})", ms(b_del), rate(entries, b_del)),
            ms(ours.noop),
        );
    }
    println!(
        "\nreconciler add = first pass in an empty namespace (dump + diff + create bridge, vxlan, \
         flood entries + all MAC entries); del = pass with the MACs removed; no-op pass = \
         dump + diff of the converged state."
    );
}
