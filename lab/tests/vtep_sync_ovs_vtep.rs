//! vtep-sync end to end against the ovs-vtep emulator: the emulated switch
//! is programmed only by a vtep-sync reconciler, and traffic crosses it.
//!
//! ```text
//!   vm1 192.0.2.11 ── hv1 (kernel VTEP 198.18.0.10) ─┐      vtep-sync (in hv1's namespace,
//!                                                    ├─ underlay 198.18.0.0/24   over TCP to
//!   bm1 192.0.2.21 ── sw1 (ovs-vtep    198.18.0.30) ─┘      198.18.0.30:6640, like a remote NVC)
//! ```
//!
//! The topology is `lab::scenarios::vtep_by_hand::wire`: the scenario without its
//! `vtep-ctl` programming: hv1's side (VNI 5000, flood to sw1, a static FDB
//! entry for bm1) is configured by hand, sw1's side comes from vtep-sync's
//! desired state (logical switch ls0 VNI 5000 bound to sw1/p0 VLAN 0, vm1's
//! MAC behind 198.18.0.10, unknown-dst to hv1 in source_node mode).
//!
//! Checked: vm1 and bm1 ping each other without loss; the observed state
//! reports bm1's MAC as learned by sw1 on ls0 (from ovs-vtep's
//! `Ucast_Macs_Local`); the binding statistics ovs-vtep writes show up as
//! counters; a reconciler killed with SIGKILL and started again writes no
//! row (its status: 0 transactions; every controller-owned row keeps its
//! `_version`) while a 10 ms ping loses nothing.
//!
//! The reconciler is `vtep-sync-test-driver` (vtep-sync's binary): this test
//! asks the cargo that runs it (`$CARGO`) to build it into this test's own
//! target directory and profile, as the gateway restart test does.
//!
//! Run: `cargo test -p lab --features root-tests --test vtep_sync_ovs_vtep` (as root).
#![cfg(feature = "root-tests")]

use anyhow::{Context, Result};
use lab::lab::log_tail;
use lab::peers::ovs_vtep::EmulatedSwitch;
use lab::scenarios::vtep_by_hand::{self, BM1, HV1_IP, SW1_IP, VM1, VNI, VtepByHand};
use lab::traffic::ping::{self, BackgroundPing};
use lab::{Host, Lab, wait};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vtep_sync::desired::DesiredState;

const METRICS: &str = "127.0.0.1:9480";

/// The hosts of the topology.
/// sw1's desired state, as vtep-sync's `desired::compute` would make it
/// from the store (ls0 bound to sw1/p0 untagged, vm1 behind hv1).
fn desired() -> Result<DesiredState> {
    Ok(serde_json::from_value(json!({
        "local_tunnel_ips": [SW1_IP],
        "logical_switches": {"ls0": {
            "vni": VNI,
            "replication": "source_node",
            "remote_macs": {VM1.1: {"locator": HV1_IP, "ip": VM1.0}},
            "peers": [HV1_IP]
        }},
        "bindings": {"p0": {"0": "ls0"}}
    }))?)
}

/// Builds (or refreshes) vtep-sync's test driver next to this test's target folder.
fn driver_binary() -> Result<PathBuf> {
    // The shared helper builds exactly what scripts/test prebuilds, so this
    // is a no-op there (a narrower -p/--bin build recompiles shared crates).
    lab::bins::build_with_cargo(&["vtep-sync-test-driver"])?;
    lab::bins::locate("vtep-sync-test-driver")
}

/// A running driver: its lab process name and log (one JSON line per change).
struct Driver {
    name: String,
    log: PathBuf,
}

impl Driver {
    /// Starts the driver in hv1's namespace against sw1's TCP OVSDB target.
    fn start(lab: &Lab, t: &VtepByHand, bin: &Path, desired: &Path, name: &str) -> Result<Driver> {
        let target = t.sw1.db_target();
        lab.spawn(
            Some(&t.hv1),
            name,
            &[
                bin.to_str().context("binary path")?,
                "--switch",
                "sw1",
                "--observed",
                "--metrics-listen",
                METRICS,
                &target,
                desired.to_str().context("desired path")?,
            ],
            &[],
        )?;
        let log = lab
            .state()
            .processes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.log.clone())
            .context("driver not recorded")?;
        Ok(Driver {
            name: name.to_owned(),
            log,
        })
    }

    /// Every JSON line printed so far.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a printed line matching `pred` and returns it.
    fn until(
        &self,
        lab: &Lab,
        what: &str,
        secs: u64,
        pred: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        wait::until_some(
            &format!("{}: {what}", self.name),
            Duration::from_secs(secs),
            Duration::from_millis(50),
            || self.lines().into_iter().rev().find(|v| pred(v)),
        )
        .map_err(|e| {
            let _ = lab.check_alive(&self.name);
            e.context(log_tail(&self.log, 10))
        })
    }
}

fn in_sync(v: &Value) -> bool {
    v["in_sync"] == true && v["lock_held"] == true
}

/// `_uuid` → `_version` of every row of the tables the controller writes,
/// read with `ovsdb-client transact` over the switch's local socket.
fn versions(sw: &EmulatedSwitch) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let sock = format!("unix:{}", sw.db_socket().display());
    let mut out = BTreeMap::new();
    for table in [
        "Logical_Switch",
        "Physical_Port",
        "Ucast_Macs_Remote",
        "Mcast_Macs_Remote",
        "Physical_Locator_Set",
        "Physical_Locator",
    ] {
        let q = json!(["hardware_vtep",
            {"op": "select", "table": table, "where": [], "columns": ["_uuid", "_version"]}]);
        let text = sw
            .host
            .run(&["ovsdb-client", "transact", &sock, &q.to_string()])?;
        let v: Value = serde_json::from_str(&text)?;
        let rows = v[0]["rows"].as_array().context("select rows")?;
        let m = rows
            .iter()
            .map(|r| (r["_uuid"][1].to_string(), r["_version"][1].to_string()))
            .collect();
        out.insert(table.to_owned(), m);
    }
    Ok(out)
}

/// The driver's metrics, fetched inside hv1 with bash's /dev/tcp (no HTTP client needed).
fn metrics(hv1: &Host) -> Result<String> {
    let (host, port) = METRICS.split_once(':').context("metrics address")?;
    hv1.run(&[
        "bash",
        "-c",
        &format!(
            "exec 3<>/dev/tcp/{host}/{port}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3"
        ),
    ])
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn ovs_vtep_programmed_by_vtep_sync_carries_traffic_and_survives_a_restart() -> Result<()> {
    let bin = driver_binary()?;
    let lab = Lab::new("vtep-sync")?;
    let t = vtep_by_hand::wire(&lab)?;
    let desired_path = lab.run_dir().join("sw1-desired.json");
    std::fs::write(&desired_path, serde_json::to_vec(&desired()?)?)?;

    let d1 = Driver::start(&lab, &t, &bin, &desired_path, "vtep-sync-1")?;
    let st = d1.until(&lab, "programmed sw1", 30, |v| {
        in_sync(v) && v["transactions"].as_u64() >= Some(1)
    })?;
    assert_eq!(st["failed_transactions"], 0, "{st}");
    assert!(st["schema_error"].is_null(), "{st}");
    let ls = t.sw1.vtep_ctl(&["list-remote-macs", "ls0"])?;
    assert!(
        ls.contains(&format!("{} -> vxlan_over_ipv4/{HV1_IP}", VM1.1))
            && ls.contains(&format!("unknown-dst -> vxlan_over_ipv4/{HV1_IP}")),
        "{ls}"
    );

    // ovs-vtep polls once per second and forks a command per item.
    wait::until(
        "vm1 reaches bm1 through the switch vtep-sync programmed",
        Duration::from_secs(40),
        Duration::from_millis(500),
        || ping::reachable(&t.vm1, BM1.0),
    )?;
    let there = ping::ping(&t.vm1, BM1.0, 20, Duration::from_millis(50))?;
    assert_eq!(there.lost(), 0, "vm1 -> bm1: {}", there.summary());
    let back = ping::ping(&t.bm1, VM1.0, 20, Duration::from_millis(50))?;
    assert_eq!(back.lost(), 0, "bm1 -> vm1: {}", back.summary());

    // sw1 learned bm1 on p0 (Ucast_Macs_Local): reported under the store's
    // logical switch of VNI 5000, by the switch's transport node name.
    let obs = d1.until(&lab, "bm1 learned", 30, |v| {
        v["observed"]["learned_macs"]
            .as_object()
            .is_some_and(|m| m.values().any(|l| l["mac"] == BM1.1))
    })?;
    let learned: Vec<&Value> = obs["observed"]["learned_macs"]
        .as_object()
        .map(|m| m.values().collect())
        .unwrap_or_default();
    let bm = learned
        .iter()
        .find(|l| l["mac"] == BM1.1)
        .context("bm1 not learned")?;
    assert_eq!(bm["reporter"], "sw1", "{bm}");
    assert_eq!(bm["logical_switch"], "ls0", "{bm}");
    let status = &obs["observed"]["switch_status"];
    assert_eq!(status["connected"], true, "{status}");
    assert_eq!(status["switch"], "sw1");
    let report = &obs["observed"]["switch"];
    assert_eq!(report["name"], "sw1", "{report}");
    assert_eq!(report["tunnel_ips"], json!([SW1_IP]), "{report}");
    assert_eq!(report["ports"]["p0"]["bindings"]["0"], "ls0", "{report}");

    // ovs-vtep copies the binding's interface statistics into
    // Logical_Binding_Stats every second: they arrive as counters.
    let series = r#"bridgehead_vtep_sync_binding_packets_total{direction="from_local",logical_switch="ls0",switch="sw1"}"#;
    let counted = wait::until_some(
        "binding statistics from ovs-vtep",
        Duration::from_secs(15),
        Duration::from_millis(500),
        || metric(&metrics(&t.hv1).ok()?, series).filter(|v| *v > 0.0),
    )?;
    eprintln!("{series} = {counted}");

    // Restart: kill -9, start another; a 10 ms ping must not notice, and
    // no controller-owned row may be rewritten.
    let before = versions(&t.sw1)?;
    // The witness sees our rows: one remote MAC, one unknown-dst, one binding.
    assert_eq!(before["Ucast_Macs_Remote"].len(), 1, "{before:?}");
    assert_eq!(before["Mcast_Macs_Remote"].len(), 1, "{before:?}");
    assert_eq!(before["Logical_Switch"].len(), 1, "{before:?}");
    let ping10 = BackgroundPing::start(&lab, &t.vm1, BM1.0, Duration::from_millis(10))?;
    std::thread::sleep(Duration::from_millis(500));
    lab.kill_process(&d1.name)?;
    std::thread::sleep(Duration::from_millis(500));
    let d2 = Driver::start(&lab, &t, &bin, &desired_path, "vtep-sync-2")?;
    let st2 = d2.until(&lab, "resynced after the restart", 30, in_sync)?;
    assert_eq!(st2["transactions"], 0, "the restart wrote: {st2}");
    assert_eq!(st2["failed_transactions"], 0, "{st2}");
    std::thread::sleep(Duration::from_millis(1500));
    let rep = ping10.stop(&lab)?;
    eprintln!(
        "10 ms ping across kill -9 + restart of vtep-sync: {}",
        rep.summary()
    );
    assert!(rep.transmitted >= 100, "{}", rep.summary());
    assert_eq!(rep.lost(), 0, "lost {:?}", rep.lost_seqs());
    let after = versions(&t.sw1)?;
    assert_eq!(
        after, before,
        "controller-owned rows changed across the restart"
    );
    let m = metrics(&t.hv1)?;
    let written: f64 = ["insert", "update", "mutate", "delete"]
        .iter()
        .filter_map(|op| {
            metric(
                &m,
                &format!(r#"bridgehead_vtep_sync_rows_written_total{{op="{op}",switch="sw1"}}"#),
            )
        })
        .sum();
    assert_eq!(
        written, 0.0,
        "rows written by the restarted reconciler:\n{m}"
    );
    // The restarted reconciler also reports bm1 (still learned on sw1).
    d2.until(&lab, "bm1 learned (restarted)", 20, |v| {
        v["observed"]["learned_macs"].as_object().is_some_and(|m| {
            m.values()
                .any(|l| l["mac"] == BM1.1 && l["logical_switch"] == "ls0")
        })
    })?;
    let rep = lab.teardown();
    assert!(rep.is_clean(), "{:?}", rep.errors);
    Ok(())
}
