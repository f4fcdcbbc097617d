//! Headless restart of the gateway daemon: two kernel VTEP hosts on an
//! underlay segment, each driven by its own `bridgehead-gateway` process (host
//! mode, one VM each); the VMs ping each other every 10 ms while each daemon
//! in turn is killed with SIGKILL and started again. Not one probe may be
//! lost, and `bridge monitor fdb` must show that the restarted daemons
//! deleted and re-added nothing.
//!
//! The daemon binary: `cargo test -p lab` does not build another package's
//! binaries, and `env!("CARGO_BIN_EXE_..")` exists only inside gateway's own
//! tests. So this test asks the cargo that runs it (`$CARGO`) to build
//! `bridgehead-gateway` into this test's own target directory and profile
//! (a no-op when it is fresh, as after `cargo test --workspace`, which
//! builds it for gateway's tests); it fails with a clear message if the
//! binary cannot be had.
//!
//! Run: `cargo test -p lab --features root-tests --test gateway_restart` (as root).
#![cfg(feature = "root-tests")]

use anyhow::{Context, Result};
use lab::lab::log_tail;
use lab::traffic::ping::{self, BackgroundPing};
use lab::{Host, Iface, Lab, wait};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VNI: u32 = 5000;

/// One VTEP host with its VM.
struct Side {
    host: Host,
    vm: Host,
    tunnel_ip: &'static str,
    vm_mac: &'static str,
    vm_ip: &'static str,
}

/// Builds (or refreshes) the daemon binary next to this test's target folder.
fn gateway_binary() -> Result<PathBuf> {
    // The shared helper builds exactly what scripts/test prebuilds, so this
    // is a no-op there (a narrower -p/--bin build recompiles shared crates).
    lab::bins::build_with_cargo(&[lab::bins::GATEWAY])?;
    lab::bins::locate(lab::bins::GATEWAY)
}

fn desired(me: &Side, peer: &Side) -> serde_json::Value {
    json!({
        "revision": 1,
        "node": me.host.name,
        "local_tunnel_ip": me.tunnel_ip,
        "underlay_dev": "eth0",
        "switches": [{
            "name": "web",
            "vni": VNI,
            "replication": "source_node",
            "flood": [peer.tunnel_ip],
            "remote_macs": [{"mac": peer.vm_mac, "vtep": peer.tunnel_ip, "ip": peer.vm_ip}],
            "vm_ports": [{"ifname": "vm", "macs": [me.vm_mac]}]
        }]
    })
}

fn log_of(lab: &Lab, process: &str) -> Result<PathBuf> {
    lab.state()
        .processes
        .iter()
        .find(|p| p.name == process)
        .map(|p| p.log.clone())
        .with_context(|| format!("no process {process}"))
}

/// Starts a daemon in `side`'s host and waits for its first reconcile pass;
/// returns that log line.
fn start_daemon(lab: &Lab, bin: &Path, side: &Side, name: &str) -> Result<String> {
    let desired = lab.run_dir().join(format!("{}.json", side.host.name));
    let bin = bin.to_str().context("binary path")?;
    let desired = desired.to_str().context("desired path")?;
    lab.spawn(
        Some(&side.host),
        name,
        &[
            bin,
            "--desired",
            desired,
            "--metrics-listen",
            "127.0.0.1:9470",
        ],
        &[("RUST_LOG", "info")],
    )?;
    let log = log_of(lab, name)?;
    let line = wait::until_some(
        &format!("{name}: first reconcile pass"),
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            std::fs::read_to_string(&log)
                .ok()?
                .lines()
                .find(|l| l.contains("first reconcile pass done"))
                .map(str::to_string)
        },
    )
    .map_err(|e| {
        let _ = lab.check_alive(name);
        e.context(log_tail(&log, 20))
    })?;
    Ok(line)
}

#[test]
fn kill_and_restart_loses_no_packet() -> Result<()> {
    let bin = gateway_binary()?;
    let lab = Lab::new("gw-restart")?;
    let underlay = lab.add_segment("underlay")?;
    let mut sides = Vec::new();
    for (i, (tunnel_ip, vm_mac, vm_ip)) in [
        ("198.18.0.1", "02:00:00:00:05:01", "192.0.2.1"),
        ("198.18.0.2", "02:00:00:00:05:02", "192.0.2.2"),
    ]
    .into_iter()
    .enumerate()
    {
        let host = lab.add_host(&format!("vtep{}", i + 1))?;
        lab.attach(
            &host,
            &underlay,
            &Iface::new("eth0", &format!("{tunnel_ip}/24")),
        )?;
        let vm = lab.add_host(&format!("vm{}", i + 1))?;
        lab.veth(
            &vm,
            &Iface::new("eth0", &format!("{vm_ip}/24"))
                .mac(vm_mac)
                .mtu(1450),
            &host,
            &Iface::bare("vm"),
        )?;
        sides.push(Side {
            host,
            vm,
            tunnel_ip,
            vm_mac,
            vm_ip,
        });
    }
    for (me, peer) in [(0, 1), (1, 0)] {
        let path = lab.run_dir().join(format!("{}.json", sides[me].host.name));
        std::fs::write(&path, desired(&sides[me], &sides[peer]).to_string())?;
    }
    for s in &sides {
        start_daemon(&lab, &bin, s, &format!("{}/gw", s.host.name))?;
    }
    wait::until(
        "VM1 reaches VM2 over VXLAN",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || ping::reachable(&sides[0].vm, sides[1].vm_ip),
    )?;

    // Independent witnesses of every FDB change on both VTEPs.
    for s in &sides {
        lab.spawn(
            Some(&s.host),
            &format!("{}/monitor", s.host.name),
            &["stdbuf", "-oL", "bridge", "monitor", "fdb"],
            &[],
        )?;
    }
    std::thread::sleep(Duration::from_millis(300));

    let ping = BackgroundPing::start(
        &lab,
        &sides[0].vm,
        sides[1].vm_ip,
        Duration::from_millis(10),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    for s in &sides {
        let name = format!("{}/gw", s.host.name);
        lab.kill_process(&name)?;
        // Headless for a while: the kernel keeps forwarding on its own.
        std::thread::sleep(Duration::from_millis(500));
        let first = start_daemon(&lab, &bin, s, &format!("{}/gw-again", s.host.name))?;
        assert!(
            first.contains("planned=0"),
            "restarted daemon changed the kernel: {first}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let report = ping.stop(&lab)?;
    eprintln!("ping across two kill -9 + restarts: {}", report.summary());
    // The ping ran across both kill/restart windows (~3 s; iputils paces a
    // 10 ms interval at somewhat more than 10 ms under load).
    assert!(report.transmitted >= 100, "{}", report.summary());
    assert_eq!(report.lost(), 0, "lost {:?}", report.lost_seqs());

    for s in &sides {
        let name = format!("{}/monitor", s.host.name);
        let log = log_of(&lab, &name)?;
        lab.stop_process(&name)?;
        let events = std::fs::read_to_string(log)?;
        // Our objects: the VXLAN device's entries (`dst`/`self`), the static
        // bridge entries of remote MACs and VM pins. Entries the bridge learns
        // on its own (e.g. the remote bridge's MAC, flooded over VXLAN) are not.
        let ours = |l: &&str| {
            (l.contains("bhvx") || l.contains("dev vm "))
                && [" dst ", " self", " static", " permanent"]
                    .iter()
                    .any(|k| l.contains(k))
        };
        let touched: Vec<&str> = events.lines().filter(ours).collect();
        assert!(
            touched.is_empty(),
            "{}: FDB entries changed across the restart: {touched:#?}",
            s.host.name
        );
    }
    // Positive control: the witness does see a change when one happens.
    let s = &sides[0];
    let name = format!("{}/monitor2", s.host.name);
    lab.spawn(
        Some(&s.host),
        &name,
        &["stdbuf", "-oL", "bridge", "monitor", "fdb"],
        &[],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    s.host.run(&[
        "bridge",
        "fdb",
        "del",
        sides[1].vm_mac,
        "dev",
        "bhvx5000",
        "self",
    ])?;
    let log = log_of(&lab, &name)?;
    wait::until(
        "witness sees the deletion and the daemon's repair",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || {
            let t = std::fs::read_to_string(&log).unwrap_or_default();
            let mac = sides[1].vm_mac;
            let ours = |l: &&str| l.contains(mac) && l.contains(" dst ");
            t.lines().filter(ours).any(|l| l.starts_with("Deleted"))
                && t.lines().filter(ours).any(|l| !l.starts_with("Deleted"))
        },
    )?;
    let rep = lab.teardown();
    assert!(rep.is_clean(), "{:?}", rep.errors);
    Ok(())
}
