//! Programming speed of remote MACs into a switch database: vtep-sync's
//! reconciler against `vtep-ctl` adding the same rows, in the same run, on
//! the real ovsdb-server (Open vSwitch, vtep.ovsschema); then resync after
//! a reconnect with every row present.
//!
//! For each size N (one logical switch `ls0`, VNI 5000, source_node, bound
//! to `sw1`/`p0` VLAN 0; N remote MACs spread over 16 remote VTEPs, which
//! are also its flood list):
//!
//! - **vtep-sync**: a reconciler starts against an empty switch database
//!   (only the switch's own `Physical_Switch` row and port, as its agent
//!   writes them). Timed from `Reconciler::start` until its transaction's
//!   reply (ovsdb-server answers once the transaction is committed: the
//!   database holds every row; a `select` counts them afterwards), and
//!   until the reconciler reports in sync (its own update seen, the next
//!   plan empty).
//! - **vtep-ctl**: a fresh database; one `vtep-ctl` invocation (one
//!   transaction) creating the same logical switch, binding, flood entries
//!   and N `add-ucast-remote` commands; timed until it returns (it waits
//!   for the commit), then counted with a `select`. Linux limits one exec's arguments to 2 MiB here (stack
//!   rlimit / 4), about 20,000 adds: above that vtep-ctl runs in chunks of
//!   10,000 commands (one transaction each), and is said so. It is
//!   quadratic (10,000 adds ≈ 44 s, PEERS.md), so sizes above 10,000 run
//!   only with `BH_BENCH_VTEP_CTL_ALL=1`.
//! - **bare transaction**: the transaction the planner makes for the empty
//!   switch, sent once by a client with no monitor and no lock: what the
//!   server itself costs, so the rest is ours.
//! - **resync**, with N rows present: (1) ovsdb-server killed and started
//!   on the same database: time from the server accepting connections until
//!   the reconciler is in sync again; (2) the reconciler stopped and a new
//!   one started: time to in-sync. Rows written in both: read from the
//!   reconciler's `rows_written_total` metric (target 0).
//!
//! Run (release): `cargo bench -p vtep-sync --bench push`
//! (sizes: `BH_BENCH_SIZES=10000,100000`, the default).
//! Without `--bench` (as `cargo test --all-targets` runs it) it only says how to run it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use api::model::{MacAddr, Replication};
use prometheus::Registry;
use serde_json::json;
use support::OvsdbServer;
use vtep_sync::client::{Client, ClientConfig, Event, MonitorConfig};
use vtep_sync::desired::{DesiredLogicalSwitch, DesiredState, RemoteTarget};
use vtep_sync::metrics::Metrics;
use vtep_sync::plan::{PlanOptions, plan};
use vtep_sync::reconciler::{MONITORED_TABLES, Reconciler, ReconcilerConfig, ReconcilerStatus};
use vtep_sync::replica::MonitorSpec;
use vtep_sync::vtep_tables::VTEP_DB;

const VTEPS: u32 = 16;
const TIMEOUT: Duration = Duration::from_secs(1800);
/// Largest vtep-ctl invocation that fits in one exec's 2 MiB of arguments.
const VTEP_CTL_CHUNK: usize = 10_000;

fn vtep_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 101 + (i % VTEPS) as u8)
}

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([2, 1, b[0], b[1], b[2], b[3]])
}

fn desired(n: u32) -> DesiredState {
    let mut d = DesiredState {
        local_tunnel_ips: BTreeSet::from([Ipv4Addr::new(198, 18, 0, 30)]),
        ..DesiredState::default()
    };
    d.logical_switches.insert(
        "ls0".into(),
        DesiredLogicalSwitch {
            vni: 5000,
            replication: Replication::SourceNode,
            remote_macs: (0..n)
                .map(|i| {
                    (
                        mac(i),
                        RemoteTarget {
                            locator: vtep_ip(i),
                            ip: None,
                        },
                    )
                })
                .collect(),
            service_nodes: BTreeSet::new(),
            peers: (0..VTEPS).map(vtep_ip).collect(),
        },
    );
    d.bindings
        .insert("p0".into(), BTreeMap::from([(0, "ls0".to_owned())]));
    d
}

/// A fresh database with what the switch's agent writes first.
fn switch() -> OvsdbServer {
    let srv = OvsdbServer::start();
    srv.vtep_ctl(&[
        "add-ps",
        "sw1",
        "--",
        "set",
        "Physical_Switch",
        "sw1",
        "tunnel_ips=198.18.0.30",
        "--",
        "add-port",
        "sw1",
        "p0",
    ]);
    srv
}

/// A bare client (no monitor) for counting rows.
async fn counter(srv: &OvsdbServer) -> Client {
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.inactivity_probe = None;
    let (c, mut ev) = Client::start(cfg).expect("client");
    while !matches!(ev.recv().await, Some(Event::Connected)) {}
    c
}

/// Counts `Ucast_Macs_Remote` rows with a `select`.
async fn count_rows(c: &Client) -> usize {
    let v = c
        .request(
            "transact",
            json!([VTEP_DB, {"op": "select", "table": "Ucast_Macs_Remote", "where": [], "columns": ["_uuid"]}]),
        )
        .await
        .expect("select");
    v[0]["rows"].as_array().map_or(0, Vec::len)
}

fn config(srv: &OvsdbServer, metrics: &Metrics) -> ReconcilerConfig {
    let mut c = ReconcilerConfig::new("sw1", srv.unix_target());
    c.metrics = Some(metrics.clone());
    // A 100,000-row transaction keeps the single-threaded server busy for
    // seconds: no echo probe and a long request timeout, so the benchmark
    // measures the push, not our impatience.
    c.inactivity_probe = None;
    c.request_timeout = TIMEOUT;
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(100);
    c
}

async fn until_status(r: &Reconciler, what: &str, pred: impl Fn(&ReconcilerStatus) -> bool) {
    let mut rx = r.watch_status();
    let ok = tokio::time::timeout(TIMEOUT, async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                panic!("reconciler stopped");
            }
        }
    })
    .await;
    assert!(
        ok.is_ok(),
        "timed out waiting for {what}: {:#?}",
        r.status()
    );
}

fn in_sync(s: &ReconcilerStatus) -> bool {
    s.in_sync && s.connected && s.lock_held
}

/// Rows written according to the metrics.
fn rows_written(m: &Metrics) -> u64 {
    let text = m.render();
    ["insert", "update", "mutate", "delete"]
        .iter()
        .map(|op| {
            let series =
                format!(r#"bridgehead_vtep_sync_rows_written_total{{op="{op}",switch="sw1"}}"#);
            text.lines()
                .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// One histogram's sum (seconds) from the metrics text.
fn histogram_sum(m: &Metrics, name: &str) -> f64 {
    let series = format!(r#"bridgehead_vtep_sync_{name}_sum{{switch="sw1"}}"#);
    m.render()
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse().ok())
        .unwrap_or(0.0)
}

struct PushResult {
    in_db: Duration,
    in_sync: Duration,
    txn: f64,
    plan: f64,
    written: u64,
}

async fn push_vtep_sync(n: u32) -> (PushResult, OvsdbServer, Reconciler, Metrics) {
    let srv = switch();
    let d = desired(n);
    let m = Metrics::new(&Registry::new()).expect("metrics");
    let t0 = Instant::now();
    let r = Reconciler::start(config(&srv, &m), d);
    // ovsdb-server answers a transaction once it is committed.
    until_status(&r, "committed", |s| s.transactions >= 1).await;
    let seen = Instant::now();
    until_status(&r, "in sync", in_sync).await;
    let synced = Instant::now();
    let c = counter(&srv).await;
    assert_eq!(count_rows(&c).await, n as usize, "select count");
    c.shutdown();
    let res = PushResult {
        in_db: seen - t0,
        in_sync: synced - t0,
        txn: histogram_sum(&m, "transaction_duration_seconds"),
        plan: histogram_sum(&m, "plan_duration_seconds"),
        written: rows_written(&m),
    };
    (res, srv, r, m)
}

/// The transaction the planner makes for an empty switch, sent once by a
/// bare client (no monitor on the server, no lock): the server's own cost.
async fn raw_transact(n: u32) -> Duration {
    let srv = switch();
    let mut cfg = ClientConfig::new(srv.unix_target());
    let mut tables = MonitorSpec::new();
    for t in MONITORED_TABLES {
        tables.insert((*t).to_owned(), None);
    }
    cfg.monitor = Some(MonitorConfig {
        db: VTEP_DB.into(),
        tables,
        prefer_monitor_cond: true,
    });
    let (reader, mut ev) = Client::start(cfg).expect("reader");
    while !matches!(ev.recv().await, Some(Event::Synced { .. })) {}
    let p = reader
        .with_replica(|r| plan(&desired(n), r.expect("synced"), &PlanOptions::default()))
        .expect("plan");
    reader.shutdown();
    drop(ev);
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.inactivity_probe = None;
    let (c, mut ev) = Client::start(cfg).expect("client");
    while !matches!(ev.recv().await, Some(Event::Connected)) {}
    drop(ev);
    let t0 = Instant::now();
    tokio::time::timeout(TIMEOUT, c.transact(VTEP_DB, &p.ops))
        .await
        .expect("raw transact timed out")
        .expect("raw transact");
    let took = t0.elapsed();
    assert_eq!(count_rows(&c).await, n as usize, "select count");
    c.shutdown();
    took
}

/// vtep-ctl adding the same rows; returns (time until its last call
/// returned: it waits for the commit, invocations).
async fn push_vtep_ctl(n: u32) -> (Duration, usize) {
    let srv = switch();
    let mut head: Vec<String> = [
        "--",
        "add-ls",
        "ls0",
        "--",
        "set",
        "Logical_Switch",
        "ls0",
        "tunnel_key=5000",
        "replication_mode=source_node",
        "--",
        "bind-ls",
        "sw1",
        "p0",
        "0",
        "ls0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for i in 0..VTEPS {
        head.extend([
            "--".into(),
            "add-mcast-remote".into(),
            "ls0".into(),
            "unknown-dst".into(),
            vtep_ip(i).to_string(),
        ]);
    }
    let adds: Vec<[String; 5]> = (0..n)
        .map(|i| {
            [
                "--".into(),
                "add-ucast-remote".into(),
                "ls0".into(),
                mac(i).to_string(),
                vtep_ip(i).to_string(),
            ]
        })
        .collect();
    let t0 = Instant::now();
    let mut invocations = 0;
    for (k, chunk) in adds.chunks(VTEP_CTL_CHUNK).enumerate() {
        let mut args: Vec<String> = if k == 0 { head.clone() } else { Vec::new() };
        args.extend(chunk.iter().flatten().cloned());
        let t = Instant::now();
        vtep_ctl(&srv.sock, &args);
        invocations += 1;
        if n as usize > VTEP_CTL_CHUNK {
            eprintln!(
                "push: vtep-ctl call {invocations}: {} adds onto {} rows took {}",
                chunk.len(),
                k * VTEP_CTL_CHUNK,
                secs(t.elapsed())
            );
        }
    }
    let took = t0.elapsed();
    let c = counter(&srv).await;
    assert_eq!(count_rows(&c).await, n as usize, "select count");
    c.shutdown();
    (took, invocations)
}

fn vtep_ctl(sock: &Path, args: &[String]) {
    let out = Command::new("vtep-ctl")
        .arg(format!("--db=unix:{}", sock.display()))
        .args(args)
        .output()
        .expect("run vtep-ctl");
    assert!(
        out.status.success(),
        "vtep-ctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Resync {
    server_start: Duration,
    after_server_restart: Duration,
    written_server: u64,
    after_reconciler_restart: Duration,
    written_reconciler: u64,
}

async fn resync(mut srv: OvsdbServer, r: Reconciler, m: Metrics, n: u32) -> Resync {
    // (1) The switch's database server restarts with every row present.
    let before = rows_written(&m);
    let t = Instant::now();
    srv.restart();
    let up = Instant::now();
    let server_start = up - t;
    until_status(&r, "disconnect noticed", |s| !s.in_sync).await;
    until_status(&r, "in sync after the server restart", in_sync).await;
    let after_server_restart = up.elapsed();
    let written_server = rows_written(&m) - before;
    // (2) The reconciler restarts (a new process would do the same).
    r.stop().await;
    let m2 = Metrics::new(&Registry::new()).expect("metrics");
    let t = Instant::now();
    let r2 = Reconciler::start(config(&srv, &m2), desired(n));
    until_status(&r2, "in sync after a reconciler restart", in_sync).await;
    let after_reconciler_restart = t.elapsed();
    let st = r2.status();
    assert_eq!(st.transactions, 0, "{st:#?}");
    let written_reconciler = rows_written(&m2);
    r2.stop().await;
    Resync {
        server_start,
        after_server_restart,
        written_server,
        after_reconciler_restart,
        written_reconciler,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "push: a benchmark against the real ovsdb-server; run it with \
             `cargo bench -p vtep-sync --bench push` (BH_BENCH_SIZES=10000,100000)"
        );
        return;
    }
    for (prog, pkg) in [
        ("/usr/sbin/ovsdb-server", "openvswitch-switch"),
        ("/usr/bin/vtep-ctl", "openvswitch-vtep"),
    ] {
        if !Path::new(prog).exists() {
            println!("push: skipped: {prog} is missing (install {pkg})");
            return;
        }
    }
    let sizes: Vec<u32> = std::env::var("BH_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let vtep_ctl_all = std::env::var("BH_BENCH_VTEP_CTL_ALL").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("push: {n} remote MACs: vtep-sync ...");
        let (push, srv, r, m) = rt.block_on(push_vtep_sync(n));
        // n MACs, 16 locators, a locator set, unknown-dst, ls0, the binding.
        assert!(push.written >= u64::from(n), "rows written by the push");
        eprintln!("push: {n}: resync ...");
        let rs = rt.block_on(resync(srv, r, m, n));
        let ctl = if n as usize <= VTEP_CTL_CHUNK || vtep_ctl_all {
            eprintln!("push: {n}: vtep-ctl ...");
            let (t, inv) = rt.block_on(push_vtep_ctl(n));
            if inv == 1 {
                format!("{} (1 call)", secs(t))
            } else {
                format!("{} ({inv} calls of {VTEP_CTL_CHUNK})", secs(t))
            }
        } else {
            "not run (see doc)".into()
        };
        eprintln!("push: {n}: the same transaction from a bare client ...");
        let raw = rt.block_on(raw_transact(n));
        rows.push((n, push, raw, ctl, rs));
    }
    println!();
    println!(
        "{:>7} | {:>24} | {:>18} | {:>11} | {:>10} | {:>12} | {:>20} | {:>30} | {:>34} | {:>36}",
        "MACs",
        "vtep-sync: committed",
        "vtep-sync: in sync",
        "transaction",
        "plan",
        "rows written",
        "same txn, bare client",
        "vtep-ctl (same rows)",
        "server restart: resync (written)",
        "reconciler restart: resync (written)"
    );
    for (n, p, raw, ctl, rs) in rows {
        println!(
            "{:>7} | {:>24} | {:>18} | {:>11} | {:>10} | {:>12} | {:>20} | {:>30} | {:>34} | {:>36}",
            n,
            secs(p.in_db),
            secs(p.in_sync),
            format!("{:.2} s", p.txn),
            format!("{:.3} s", p.plan),
            p.written,
            secs(raw),
            ctl,
            format!(
                "{} ({}) [server up in {}]",
                secs(rs.after_server_restart),
                rs.written_server,
                secs(rs.server_start)
            ),
            format!(
                "{} ({})",
                secs(rs.after_reconciler_restart),
                rs.written_reconciler
            ),
        );
    }
}
