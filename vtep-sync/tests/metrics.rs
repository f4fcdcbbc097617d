//! A reconciler's Prometheus metrics against the real ovsdb-server, with
//! vtep-ctl writing binding statistics the way ovs-vtep does (a
//! `Logical_Binding_Stats` row per VLAN binding, its columns set every second).
#![cfg(feature = "root-tests")]

mod support;

use std::time::{Duration, Instant};

use prometheus::Registry;
use support::{OvsdbServer, web_desired};
use vtep_sync::desired::DesiredState;
use vtep_sync::metrics::Metrics;
use vtep_sync::reconciler::{Reconciler, ReconcilerConfig};

const T: Duration = Duration::from_secs(20);

/// The value of one series in the text exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn until_value(m: &Metrics, series: &str, want: f64) -> String {
    let deadline = Instant::now() + T;
    loop {
        let text = m.render();
        if value(&text, series) == Some(want) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_switch_and_binding_stats_are_reset_safe_counters() {
    let srv = OvsdbServer::start();
    srv.add_tor1(&["p1"]);
    let reg = Registry::new();
    let m = Metrics::new(&reg).unwrap();
    m.store_head(9);
    let mut cfg = ReconcilerConfig::new("tor1", srv.unix_target());
    cfg.metrics = Some(m.clone());
    let r = Reconciler::start(cfg, DesiredState::default());
    r.set_desired_at(web_desired(), 7);
    let text = until_value(&m, r#"bridgehead_vtep_sync_in_sync{switch="tor1"}"#, 1.0).await;
    for (series, want) in [
        (r#"bridgehead_vtep_sync_connected{switch="tor1"}"#, 1.0),
        (r#"bridgehead_vtep_sync_lock_held{switch="tor1"}"#, 1.0),
        (
            r#"bridgehead_vtep_sync_transactions_total{result="committed",switch="tor1"}"#,
            1.0,
        ),
        (
            r#"bridgehead_vtep_sync_transactions_total{result="failed",switch="tor1"}"#,
            0.0,
        ),
        (
            r#"bridgehead_vtep_sync_transaction_duration_seconds_count{switch="tor1"}"#,
            1.0,
        ),
        (
            r#"bridgehead_vtep_sync_rows{switch="tor1",table="Ucast_Macs_Remote"}"#,
            1.0,
        ),
        (
            r#"bridgehead_vtep_sync_rows{switch="tor1",table="Logical_Switch"}"#,
            1.0,
        ),
        // Logical switch, remote MAC, unknown-dst, locator, locator set
        (
            r#"bridgehead_vtep_sync_rows_written_total{op="insert",switch="tor1"}"#,
            5.0,
        ),
        (
            r#"bridgehead_vtep_sync_store_applied_revision{switch="tor1"}"#,
            7.0,
        ),
        (
            r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor1"}"#,
            2.0,
        ),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}:\n{text}");
    }
    assert_eq!(r.status().applied_revision, Some(7));
    let plans = |t: &str| {
        value(
            t,
            r#"bridgehead_vtep_sync_plan_duration_seconds_count{switch="tor1"}"#,
        )
        .unwrap()
    };

    // ovs-vtep's add_binding: a stats row hung off the port's vlan_stats.
    srv.vtep_ctl(&[
        "--",
        "--id=@s",
        "create",
        "Logical_Binding_Stats",
        "packets_from_local=0",
        "--",
        "set",
        "Physical_Port",
        "p1",
        "vlan_stats:10=@s",
    ]);
    let stats = srv.vtep_ctl(&["get", "Physical_Port", "p1", "vlan_stats:10"]);
    let stats = stats.trim();
    let set = |col: &str, v: u64| {
        srv.vtep_ctl(&["set", "Logical_Binding_Stats", stats, &format!("{col}={v}")]);
    };
    let pkts_from = r#"bridgehead_vtep_sync_binding_packets_total{direction="from_local",logical_switch="web",switch="tor1"}"#;
    let bytes_to = r#"bridgehead_vtep_sync_binding_bytes_total{direction="to_local",logical_switch="web",switch="tor1"}"#;
    // ovs-vtep's update_stats: one column per command, every second.
    set("packets_from_local", 100);
    set("bytes_to_local", 6400);
    until_value(&m, pkts_from, 100.0).await;
    until_value(&m, bytes_to, 6400.0).await;
    // The vlan_stats change (a Physical_Port column) was planned once; let it settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plans_before = plans(&m.render());
    set("packets_from_local", 150);
    until_value(&m, pkts_from, 150.0).await;
    // The switch's agent restarted: its counts start again from zero.
    set("packets_from_local", 5);
    let text = until_value(&m, pkts_from, 155.0).await;
    // None of this cost a plan: statistics changes do not mark the switch dirty.
    assert_eq!(plans(&text), plans_before, "{text}");

    // The store moved on; the switch is in sync with the new revision.
    m.store_head(12);
    until_value(
        &m,
        r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor1"}"#,
        5.0,
    )
    .await;
    r.set_desired_at(web_desired(), 12);
    until_value(
        &m,
        r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor1"}"#,
        0.0,
    )
    .await;
    r.stop().await;
    let text = m.render();
    assert_eq!(
        value(&text, r#"bridgehead_vtep_sync_connected{switch="tor1"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"bridgehead_vtep_sync_lock_held{switch="tor1"}"#),
        Some(0.0)
    );
}

/// GET / over loopback with a plain TCP socket; returns the whole response.
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn test_driver_serves_metrics_and_prints_observed_state() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let srv = OvsdbServer::start();
    srv.add_tor1(&["p1"]);
    let path = srv.dir.path().join("desired.json");
    std::fs::write(&path, serde_json::to_vec(&web_desired()).unwrap()).unwrap();
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vtep-sync-test-driver"))
        .args(["--switch", "tor1", "--observed", "--metrics-listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("unix:{}", srv.sock.display()))
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let out = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let mut lines = BufReader::new(out).lines();
    let (mut in_sync, mut observed) = (false, false);
    while !(in_sync && observed) {
        let line = lines.next().expect("driver output").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["in_sync"] == true {
            in_sync = true;
        }
        if v["observed"]["switch_status"]["connected"] == true {
            assert_eq!(v["observed"]["switch"]["name"], "tor1", "{v}");
            observed = true;
        }
    }
    let deadline = Instant::now() + T;
    let text = loop {
        if let Some(t) = http_get(port).filter(|t| t.contains("in_sync{switch=\"tor1\"} 1")) {
            break t;
        }
        assert!(Instant::now() < deadline, "no metrics on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains(
            r#"bridgehead_vtep_sync_transactions_total{result="committed",switch="tor1"} 1"#
        ),
        "{text}"
    );
}
