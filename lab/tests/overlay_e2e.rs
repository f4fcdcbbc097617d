//! End to end: the `overlay` scenario (controller, gateway gw1 with two
//! gateway groups and a bare-metal host behind each, hypervisor hv1 in host
//! mode with two VMs, emulated hardware switch sw1 (ovs-vtep) programmed by
//! `bridgehead-vtep-sync` with bare-metal host bm1, ls-blue and ls-red with
//! overlapping tenant IPs), configured only with `bridgehead-ctl`. Checks:
//!
//! - every host reaches every other host of its logical switch (10 probes
//!   each way, none lost), and the MACs gw1 learned are in the store and
//!   programmed on hv1 behind the right group VTEP IP;
//! - bm1's MAC, learned by sw1 (`Ucast_Macs_Local`), is in the store as a
//!   LearnedMac reported by sw1 and programmed on hv1 and gw1 behind
//!   sw1's tunnel IP; sw1's SwitchStatus says connected; the store and the
//!   switch's database agree (vtep-sync's store lag is 0);
//! - no cross-talk: 192.0.2.12 answers vm1 with bm2's MAC and vm2 with
//!   bm3's; bm3 never sees a frame of vm1 (and bm2 none of vm2); on the
//!   underlay every VXLAN frame of a VNI travels between that switch's VTEPs
//!   only, carrying only that switch's MACs;
//! - BUM: a broadcast (ping -b) and an unknown unicast (a permanent
//!   neighbour entry pointing at a MAC nobody has) from each host reach
//!   every other VTEP of its switch and no other (counted per outer
//!   destination IP and VNI on each VTEP's underlay port, sw1's included:
//!   ls-blue's reach it, ls-red's never), and are delivered to the hosts of
//!   that switch only;
//! - tshark finds nothing malformed on the underlay;
//! - measured: `bridgehead-ctl create` of a VM MAC to the entry in gw1's
//!   kernel FDB (printed).
//!
//! Run: `cargo test -p lab --features root-tests --test overlay_e2e` (as
//! root); it builds the controller, ctl, gateway and vtep-sync binaries
//! with `$CARGO`.
#![cfg(feature = "root-tests")]

use anyhow::{Context, Result, ensure};
use lab::bins;
use lab::scenarios::overlay::{
    self, BLUE_VNI, BM1, BM2, BM3, GG1_IP, GG2_IP, HV1_IP, Overlay, RED_VNI, SW1_IP, VM1, VM2,
    VTEP_SYNC_METRICS,
};
use lab::traffic::capture::{Capture, Pcap};
use lab::traffic::ping;
use lab::{Host, Lab, wait};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A MAC no host has, per sender: frames to it are unknown unicast.
const UNKNOWN: [(&str, &str); 5] = [
    ("vm1", "02:00:00:00:ee:01"),
    ("vm2", "02:00:00:00:ee:02"),
    ("bm2", "02:00:00:00:ee:03"),
    ("bm3", "02:00:00:00:ee:04"),
    ("bm1", "02:00:00:00:ee:05"),
];

fn pings_both_ways(a: &Host, a_ip: &str, b: &Host, b_ip: &str) -> Result<()> {
    for (from, to) in [(a, b_ip), (b, a_ip)] {
        let r = ping::ping(from, to, 10, Duration::from_millis(20))?;
        ensure!(r.lost() == 0, "{} -> {to}: {}", from.name, r.summary());
    }
    Ok(())
}

/// The MAC `host` resolved `ip` to.
fn neighbour(host: &Host, ip: &str) -> Result<String> {
    let out = host.run(&["ip", "-4", "neigh", "show", ip])?;
    out.split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("{}: no neighbour entry for {ip}: {out:?}", host.name))
}

/// (outer src, outer dst, VNI, inner src MAC, inner dst MAC) of every VXLAN frame.
type Vx = (String, String, u32, String, String);

fn vxlan_frames(p: &Pcap) -> Result<Vec<Vx>> {
    let rows = p.fields(
        "vxlan",
        &["ip.src", "ip.dst", "vxlan.vni", "eth.src", "eth.dst"],
    )?;
    let first = |s: &str| s.split(',').next().unwrap_or_default().to_string();
    let last = |s: &str| s.split(',').next_back().unwrap_or_default().to_string();
    rows.iter()
        .map(|r| {
            ensure!(r.len() == 5, "short tshark row {r:?}");
            Ok((
                first(&r[0]),
                first(&r[1]),
                r[2].parse().with_context(|| format!("VNI in {r:?}"))?,
                last(&r[3]),
                last(&r[4]),
            ))
        })
        .collect()
}

/// The inner frames of one sender to one inner destination MAC, as
/// (outer destination, VNI) -> count, over the frames delivered to the
/// VTEP ports captured.
fn delivered(frames: &[Vx], src_mac: &str, dst_mac: &str) -> BTreeMap<(String, u32), usize> {
    let mut m = BTreeMap::new();
    for (_, dst, vni, isrc, idst) in frames {
        if isrc == src_mac && idst == dst_mac {
            *m.entry((dst.clone(), *vni)).or_insert(0) += 1;
        }
    }
    m
}

fn learned_in_store(o: &Overlay) -> Result<BTreeSet<(String, String, String)>> {
    let v: serde_json::Value =
        serde_json::from_str(&o.ctl(&["-o", "json", "list", "learned-mac"])?)?;
    Ok(v["items"]
        .as_array()
        .context("items")?
        .iter()
        .filter_map(|i| {
            let s = &i["object"]["spec"];
            Some((
                s["reporter"].as_str()?.to_string(),
                s["logical_switch"].as_str()?.to_string(),
                s["mac"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// sw1's SwitchStatus in the store: connected?
fn sw1_connected(o: &Overlay) -> Result<bool> {
    let v: serde_json::Value =
        serde_json::from_str(&o.ctl(&["-o", "json", "list", "switch-status"])?)?;
    Ok(v["items"].as_array().context("items")?.iter().any(|i| {
        i["object"]["spec"]["switch"] == "sw1" && i["object"]["spec"]["connected"] == true
    }))
}

/// One series of vtep-sync's metrics (fetched inside sw1's namespace).
fn vtep_sync_metric(o: &Overlay, series: &str) -> Option<f64> {
    let text = o
        .sw1
        .host
        .run(&["curl", "-s", &format!("http://{VTEP_SYNC_METRICS}/metrics")])
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// `bridge fdb` destination of `mac` on VXLAN device `dev` of `host`.
fn vxlan_dst(host: &Host, dev: &str, mac: &str) -> Option<String> {
    let out = host.run(&["bridge", "fdb", "show", "dev", dev]).ok()?;
    out.lines()
        .find(|l| l.starts_with(mac) && l.contains(" dst "))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "dst").nth(1))
        .map(str::to_string)
}

#[test]
fn overlay_end_to_end() -> Result<()> {
    bins::build_with_cargo(&[bins::CONTROLLER, bins::CTL, bins::GATEWAY, bins::VTEP_SYNC])?;
    let lab = Lab::new("t-overlay")?;
    let t0 = std::time::Instant::now();
    let o = overlay::build(&lab)?;
    eprintln!("overlay built and converged in {:?}", t0.elapsed());

    // --- every host reaches every other host of its logical switch
    pings_both_ways(&o.vm1, VM1.0, &o.bm2, BM2.0).context("ls-blue")?;
    pings_both_ways(&o.vm2, VM2.0, &o.bm3, BM3.0).context("ls-red")?;
    pings_both_ways(&o.vm1, VM1.0, &o.bm1, BM1.0).context("ls-blue, vm1 and bm1 (sw1)")?;
    pings_both_ways(&o.bm2, BM2.0, &o.bm1, BM1.0).context("ls-blue, bm2 (gw1) and bm1 (sw1)")?;

    // --- learned on gw1, in the store, programmed on hv1 behind the group IPs
    let want: BTreeSet<(String, String, String)> =
        [("gw1", "ls-blue", BM2.1), ("gw1", "ls-red", BM3.1)]
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
    let by = |l: BTreeSet<(String, String, String)>, reporter: &str| -> BTreeSet<_> {
        l.into_iter().filter(|m| m.0 == reporter).collect()
    };
    wait::until(
        "gw1's learned MACs in the store",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || learned_in_store(&o).is_ok_and(|l| by(l, "gw1") == want),
    )
    .with_context(|| format!("store has {:?}", learned_in_store(&o)))?;
    wait::until(
        "bm2 and bm3 programmed on hv1",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            vxlan_dst(&o.hv1, "bhvx5000", BM2.1).as_deref() == Some(GG1_IP)
                && vxlan_dst(&o.hv1, "bhvx5001", BM3.1).as_deref() == Some(GG2_IP)
        },
    )?;

    // --- learned on sw1 (ovs-vtep's Ucast_Macs_Local, which ages out after
    // 15 s idle: bm1 keeps talking), in the store as sw1's, programmed on
    // hv1 and gw1 behind sw1's tunnel IP.
    let sw1_want = BTreeSet::from([("sw1".to_string(), "ls-blue".to_string(), BM1.1.to_string())]);
    let t = std::time::Instant::now();
    wait::until(
        "bm1's MAC learned by sw1 in the store and on hv1 and gw1",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            o.bm1.succeeds(&["ping", "-c1", "-W1", VM1.0]);
            learned_in_store(&o).is_ok_and(|l| by(l, "sw1") == sw1_want)
                && vxlan_dst(&o.hv1, "bhvx5000", BM1.1).as_deref() == Some(SW1_IP)
                && vxlan_dst(&o.gw1, "bhvx5000", BM1.1).as_deref() == Some(SW1_IP)
        },
    )
    .with_context(|| {
        format!(
            "store has {:?}; hv1: {:?}; gw1: {:?}; sw1's local MACs: {:?}",
            learned_in_store(&o),
            vxlan_dst(&o.hv1, "bhvx5000", BM1.1),
            vxlan_dst(&o.gw1, "bhvx5000", BM1.1),
            o.sw1.vtep_ctl(&["list-local-macs", "ls-blue"])
        )
    })?;
    eprintln!(
        "bm1's MAC from sw1 in the store and on hv1 and gw1 after {:?} (ovs-vtep polls once a second)",
        t.elapsed()
    );
    ensure!(sw1_connected(&o)?, "sw1's SwitchStatus: not connected");
    // What vtep-sync wrote on sw1: vm1 behind hv1, bm2 behind gg1's IP,
    // ls-blue's other VTEPs as the flood set.
    let remote = o.sw1.vtep_ctl(&["list-remote-macs", "ls-blue"])?;
    for want in [
        format!("{} -> vxlan_over_ipv4/{HV1_IP}", VM1.1),
        format!("{} -> vxlan_over_ipv4/{GG1_IP}", BM2.1),
    ] {
        ensure!(remote.contains(&want), "sw1 lacks {want}: {remote}");
    }
    let lag = "bridgehead_vtep_sync_store_lag_revisions{switch=\"sw1\"}";
    wait::until(
        "vtep-sync's store lag at 0",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || vtep_sync_metric(&o, lag) == Some(0.0),
    )
    .with_context(|| format!("lag {:?}", vtep_sync_metric(&o, lag)))?;

    // --- propagation: API write -> controller -> watch -> gw1's kernel
    let probe_mac = "02:00:00:00:01:99";
    let t = std::time::Instant::now();
    o.ctl(&[
        "create",
        "remote-mac",
        "--logical-switch",
        "ls-blue",
        "--mac",
        probe_mac,
        "--transport-node",
        "hv1",
    ])?;
    wait::until(
        "a new VM MAC programmed on gw1",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || vxlan_dst(&o.gw1, "bhvx5000", probe_mac).as_deref() == Some(HV1_IP),
    )?;
    eprintln!(
        "bridgehead-ctl create -> gw1's kernel FDB: {:?}",
        t.elapsed()
    );
    let on_sw1 = || {
        o.sw1
            .vtep_ctl(&["list-remote-macs", "ls-blue"])
            .is_ok_and(|t| t.contains(&format!("{probe_mac} -> vxlan_over_ipv4/{HV1_IP}")))
    };
    wait::until(
        "a new VM MAC written on sw1 by vtep-sync",
        Duration::from_secs(10),
        Duration::from_millis(5),
        on_sw1,
    )?;
    eprintln!(
        "bridgehead-ctl create -> sw1's Ucast_Macs_Remote row: {:?}",
        t.elapsed()
    );
    o.ctl(&["delete", "remote-mac", &format!("ls-blue/{probe_mac}")])?;
    wait::until(
        "the deleted VM MAC removed on sw1",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || !on_sw1(),
    )?;
    wait::until(
        "the deleted VM MAC removed on gw1",
        Duration::from_secs(10),
        Duration::from_millis(5),
        || vxlan_dst(&o.gw1, "bhvx5000", probe_mac).is_none(),
    )?;

    // --- captures: each VTEP's underlay port, and every tenant host
    let caps_underlay = [
        Capture::start(&lab, &o.underlay.host, "hv1", "udp port 4789")?,
        Capture::start(&lab, &o.underlay.host, "gw1", "udp port 4789")?,
        Capture::start(&lab, &o.underlay.host, "sw1", "udp port 4789")?,
    ];
    let tenants = [&o.vm1, &o.vm2, &o.bm2, &o.bm3, &o.bm1];
    let mut caps_tenant = Vec::new();
    for h in tenants {
        caps_tenant.push(Capture::start(&lab, h, "eth0", "")?);
    }

    // Same IP, two switches: each VM is answered by its own switch's host.
    for vm in [&o.vm1, &o.vm2] {
        vm.run(&["ip", "neigh", "flush", "dev", "eth0"])?;
        let r = ping::ping(vm, BM2.0, 5, Duration::from_millis(20))?;
        ensure!(r.lost() == 0, "{}: {}", vm.name, r.summary());
    }
    ensure!(neighbour(&o.vm1, BM2.0)? == BM2.1, "vm1 answered by bm2");
    ensure!(neighbour(&o.vm2, BM3.0)? == BM3.1, "vm2 answered by bm3");

    // BUM from every host: a broadcast and an unknown unicast.
    for (name, unknown) in UNKNOWN {
        let h = lab.host(name)?;
        // Receivers ignore broadcast echo requests: the frames travel, nobody answers.
        h.succeeds(&[
            "ping",
            "-b",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "192.0.2.255",
        ]);
        h.run(&[
            "ip",
            "neigh",
            "replace",
            "192.0.2.99",
            "lladdr",
            unknown,
            "nud",
            "permanent",
            "dev",
            "eth0",
        ])?;
        h.succeeds(&[
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "1",
            "192.0.2.99",
        ]);
    }

    let mut frames = Vec::new();
    for (cap, vtep_ips) in
        caps_underlay
            .into_iter()
            .zip([vec![HV1_IP], vec![GG1_IP, GG2_IP], vec![SW1_IP]])
    {
        let p = cap.stop(&lab)?;
        // tshark's ARP analysis is per capture, not per VNI: the overlapping
        // tenant IPs look like duplicates to it. Everything else must be clean.
        let problems: Vec<String> = p
            .problems()?
            .into_iter()
            .filter(|l| !l.contains("duplicate use of 192.0.2."))
            .collect();
        ensure!(
            problems.is_empty(),
            "tshark flags underlay frames: {problems:#?}"
        );
        // Count each frame once: where it is delivered (its outer destination's port).
        frames.extend(
            vxlan_frames(&p)?
                .into_iter()
                .filter(|f| vtep_ips.contains(&f.1.as_str())),
        );
    }
    let mut seen_by: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (h, cap) in tenants.iter().zip(caps_tenant) {
        let p = cap.stop(&lab)?;
        let rows = p.fields("", &["eth.src", "eth.dst"])?;
        seen_by.insert(
            h.name.as_str(),
            rows.into_iter()
                .filter(|r| r.len() == 2)
                .map(|r| (r[0].clone(), r[1].clone()))
                .collect(),
        );
    }

    // Each VNI only between its switch's VTEPs, carrying only its switch's MACs.
    let blue_vteps = BTreeSet::from([HV1_IP, GG1_IP, SW1_IP]);
    let red_vteps = BTreeSet::from([HV1_IP, GG2_IP]);
    let blue_macs = BTreeSet::from([
        VM1.1,
        BM2.1,
        BM1.1,
        UNKNOWN[0].1,
        UNKNOWN[2].1,
        UNKNOWN[4].1,
    ]);
    let red_macs = BTreeSet::from([VM2.1, BM3.1, UNKNOWN[1].1, UNKNOWN[3].1]);
    ensure!(frames.len() > 40, "too few VXLAN frames: {}", frames.len());
    for f in &frames {
        let (vteps, macs) = match f.2 {
            BLUE_VNI => (&blue_vteps, &blue_macs),
            RED_VNI => (&red_vteps, &red_macs),
            other => anyhow::bail!("unexpected VNI {other}: {f:?}"),
        };
        ensure!(
            vteps.contains(f.0.as_str()) && vteps.contains(f.1.as_str()),
            "VNI {} between {} and {}: not that switch's VTEPs",
            f.2,
            f.0,
            f.1
        );
        ensure!(
            macs.contains(f.3.as_str())
                && (macs.contains(f.4.as_str()) || f.4 == "ff:ff:ff:ff:ff:ff"),
            "VNI {} carries a frame of another switch: {f:?}",
            f.2
        );
    }

    // BUM reaches every other VTEP of the switch, and no other.
    let bcast = "ff:ff:ff:ff:ff:ff";
    let cases = [
        (VM1.1, UNKNOWN[0].1, vec![GG1_IP, SW1_IP], BLUE_VNI),
        (VM2.1, UNKNOWN[1].1, vec![GG2_IP], RED_VNI),
        (BM2.1, UNKNOWN[2].1, vec![HV1_IP, SW1_IP], BLUE_VNI),
        (BM3.1, UNKNOWN[3].1, vec![HV1_IP], RED_VNI),
        (BM1.1, UNKNOWN[4].1, vec![HV1_IP, GG1_IP], BLUE_VNI),
    ];
    for (src, unknown, vteps, vni) in cases {
        for (what, dst) in [("broadcast", bcast), ("unknown unicast", unknown)] {
            let d = delivered(&frames, src, dst);
            let keys: Vec<&(String, u32)> = d.keys().collect();
            let want: Vec<(String, u32)> = vteps.iter().map(|v| (v.to_string(), vni)).collect();
            ensure!(
                keys == want.iter().collect::<Vec<_>>(),
                "{what} from {src}: delivered to {d:?}, want only {vteps:?} VNI {vni}"
            );
            ensure!(
                d.values().all(|n| *n >= 3),
                "{what} from {src}: {d:?}, want 3 frames"
            );
        }
    }
    eprintln!(
        "BUM checked on {} VXLAN frames: each broadcast/unknown unicast reached exactly the other VTEPs of its switch",
        frames.len()
    );

    // Delivered to the hosts of that switch only.
    let got =
        |host: &str, src: &str, dst: &str| seen_by[host].iter().any(|(s, d)| s == src && d == dst);
    for (src, unknown, same, other) in [
        (VM1.1, UNKNOWN[0].1, vec!["bm2", "bm1"], vec!["vm2", "bm3"]),
        (VM2.1, UNKNOWN[1].1, vec!["bm3"], vec!["vm1", "bm2", "bm1"]),
        (BM2.1, UNKNOWN[2].1, vec!["vm1", "bm1"], vec!["vm2", "bm3"]),
        (BM3.1, UNKNOWN[3].1, vec!["vm2"], vec!["vm1", "bm2", "bm1"]),
        (BM1.1, UNKNOWN[4].1, vec!["vm1", "bm2"], vec!["vm2", "bm3"]),
    ] {
        for h in same {
            ensure!(got(h, src, bcast), "{h} did not get {src}'s broadcast");
            ensure!(
                got(h, src, unknown),
                "{h} did not get {src}'s unknown unicast"
            );
        }
        for h in other {
            ensure!(
                !seen_by[h].iter().any(|(s, _)| s == src),
                "{h} saw a frame of {src}, which is in another switch"
            );
        }
    }

    let rep = lab.teardown();
    ensure!(rep.is_clean(), "{:?}", rep.errors);
    Ok(())
}
