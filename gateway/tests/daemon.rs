//! The `bridgehead-gateway` binary in a namespace: programs the desired
//! file, reloads it on change and on SIGHUP, keeps the dataplane when the
//! file goes bad or the daemon stops, serves /metrics, writes learned MACs,
//! and a kill -9 + restart changes nothing in the kernel.
//!
//! Run: `cargo test -p gateway --features root-tests --test daemon` (as root).
#![cfg(feature = "root-tests")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use support::{Killed, Ns, is_self, metrics, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_bridgehead-gateway");
const HOST_MAC: &str = "02:00:00:00:aa:01";
const LIMIT: Duration = Duration::from_secs(5);

/// The daemon process, killed by PID on drop (also on panic).
struct Daemon {
    child: Killed,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &Ns, dir: &Path, extra: &[&str]) -> Daemon {
        let log = dir.join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let log = unique(log);
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["--netns", &ns.name, "--desired"])
            .arg(dir.join("desired.json"))
            .arg("--learned")
            .arg(dir.join("learned.json"))
            .args(["--resync", "2s", "--debounce", "20ms"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start bridgehead-gateway");
        Daemon {
            child: Killed(Some(child)),
            log,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.0.as_ref().unwrap().id() as i32)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, what: &str) {
        let t0 = Instant::now();
        while !self.log().contains(what) {
            assert!(
                t0.elapsed() < LIMIT,
                "no {what:?} in the daemon log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// Waits for the exit status after a signal.
    fn wait_exit(mut self) -> std::process::ExitStatus {
        let mut child = self.child.0.take().unwrap();
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(t0.elapsed() < LIMIT, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn unique(p: PathBuf) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    p.with_extension(format!("{n}.log"))
}

/// eth0 = underlay (198.18.0.10), eth1 (bound) <-> eth1p, a host (192.0.2.1).
fn setup() -> Ns {
    Ns::with_host("gwd", &["198.18.0.10/24"], HOST_MAC)
}

fn desired(revision: u64, remote_mac: &str) -> Value {
    json!({
        "revision": revision,
        "node": "gw1",
        "local_tunnel_ip": "198.18.0.10",
        "underlay_dev": "eth0",
        "switches": [{
            "name": "web",
            "vni": 5000,
            "replication": "source_node",
            "flood": ["198.18.0.20"],
            "remote_macs": [{"mac": remote_mac, "vtep": "198.18.0.20", "ip": "192.0.2.21"}],
            "ports": [{"ifname": "eth1", "vlan": 0}]
        }]
    })
}

fn write(dir: &Path, v: &Value) {
    // Atomic replace, as any real writer of this file should do.
    let tmp = dir.join("desired.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(tmp, dir.join("desired.json")).unwrap();
}

/// Remote (`self`) MACs of bhvx5000.
fn remote_macs(ns: &Ns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .fdb("bhvx5000")
        .iter()
        .filter(|e| is_self(e))
        .filter_map(|e| e["mac"].as_str().map(str::to_string))
        .filter(|m| m != "00:00:00:00:00:00")
        .collect();
    v.sort();
    v
}

/// The daemon on revision 1 of the file, its first pass done and 02:..:21 programmed.
fn start_programmed(ns: &Ns, dir: &Path, poll: &str) -> Daemon {
    write(dir, &desired(1, "02:00:00:00:00:21"));
    let d = Daemon::start(ns, dir, &["--poll", poll]);
    d.wait_log("first reconcile pass done");
    wait_for("programmed", LIMIT, || {
        remote_macs(ns) == ["02:00:00:00:00:21"]
    });
    d
}

fn metric(ns: &Ns, line_prefix: &str) -> Option<f64> {
    metrics(ns)
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
}

#[test]
fn programs_reloads_reports_and_stays_headless() {
    let ns = setup();
    let dir = tempfile::tempdir().unwrap();
    let d = start_programmed(&ns, dir.path(), "100ms");

    // Metrics: objects as of the last dump (our changes trigger a follow-up pass).
    wait_for("objects counted", LIMIT, || {
        metric(&ns, "bridgehead_gateway_objects{kind=\"fdb\"}") == Some(2.0)
    });
    let m = metrics(&ns);
    for l in [
        "bridgehead_gateway_objects{kind=\"bridge\"} 1",
        "bridgehead_gateway_objects{kind=\"vxlan\"} 1",
        "bridgehead_gateway_objects{kind=\"port\"} 1",
        "bridgehead_gateway_objects{kind=\"port_fdb\"} 1",
        "bridgehead_gateway_objects{kind=\"neighbour\"} 1",
        "bridgehead_gateway_desired_revision 1",
        "bridgehead_gateway_desired_source_up 1",
        "bridgehead_gateway_store_lag_revisions 0",
    ] {
        assert!(m.contains(l), "missing {l:?} in\n{m}");
    }
    assert!(metric(&ns, "bridgehead_gateway_reconcile_passes_total").unwrap() >= 2.0);
    assert!(metric(&ns, "bridgehead_gateway_reconcile_duration_seconds_count").unwrap() >= 2.0);

    // Learning reaches the store stand-in.
    ns.try_exec(&["ping", "-c", "1", "-W", "1", "-I", "eth1p", "192.0.2.99"]);
    let learned = dir.path().join("learned.json");
    wait_for("learned MAC written", LIMIT, || {
        std::fs::read_to_string(&learned).is_ok_and(|t| {
            serde_json::from_str::<Value>(&t).is_ok_and(|v| {
                v == json!([{"reporter": "gw1", "logical_switch": "web", "mac": HOST_MAC}])
            })
        })
    });
    assert_eq!(metric(&ns, "bridgehead_gateway_learned_macs"), Some(1.0));

    // A change of the file is applied (MAC moved to a new one).
    write(dir.path(), &desired(2, "02:00:00:00:00:22"));
    wait_for("reloaded", LIMIT, || {
        remote_macs(&ns) == ["02:00:00:00:00:22"]
    });

    // Headless: the source goes away or turns bad; the dataplane stays.
    std::fs::remove_file(dir.path().join("desired.json")).unwrap();
    wait_for("source down", LIMIT, || {
        metric(&ns, "bridgehead_gateway_desired_source_up") == Some(0.0)
    });
    std::fs::write(dir.path().join("desired.json"), "{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(remote_macs(&ns), ["02:00:00:00:00:22"]);
    assert!(d.log().contains("keeping the state in force"));
    // A stale file (older revision) is ignored, even an empty one.
    let mut stale = desired(1, "02:00:00:00:00:21");
    stale["switches"] = json!([]);
    write(dir.path(), &stale);
    wait_for("source up again", LIMIT, || {
        metric(&ns, "bridgehead_gateway_desired_source_up") == Some(1.0)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(ns.link("bhbr5000").is_some());
    assert_eq!(
        metric(&ns, "bridgehead_gateway_desired_revision"),
        Some(2.0)
    );
    // Back with a newer revision: resumes from there.
    write(dir.path(), &desired(3, "02:00:00:00:00:23"));
    wait_for("resumed", LIMIT, || {
        remote_macs(&ns) == ["02:00:00:00:00:23"]
    });

    // SIGTERM: a clean exit that leaves the kernel as it is.
    d.signal(Signal::SIGTERM);
    let log_path = d.log.clone();
    let st = d.wait_exit();
    assert!(st.success(), "{st:?}");
    assert!(
        std::fs::read_to_string(log_path)
            .unwrap()
            .contains("the dataplane is left as it is")
    );
    assert_eq!(remote_macs(&ns), ["02:00:00:00:00:23"]);
    assert!(ns.link("eth1").is_some_and(|l| l["master"] == "bhbr5000"));
}

#[test]
fn sighup_reloads_and_kill_restart_changes_nothing() {
    let ns = setup();
    let dir = tempfile::tempdir().unwrap();
    // Polling effectively off: only SIGHUP reloads.
    let d = start_programmed(&ns, dir.path(), "1h");
    write(dir.path(), &desired(2, "02:00:00:00:00:22"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        remote_macs(&ns),
        ["02:00:00:00:00:21"],
        "reloaded without SIGHUP"
    );
    d.signal(Signal::SIGHUP);
    wait_for("reloaded on SIGHUP", LIMIT, || {
        remote_macs(&ns) == ["02:00:00:00:00:22"]
    });

    // kill -9, then start again: the first pass of the new process plans nothing.
    let monitor = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "stdbuf", "-oL", "bridge", "monitor", "fdb",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut monitor = Killed(Some(monitor));
    std::thread::sleep(Duration::from_millis(200));
    d.signal(Signal::SIGKILL);
    let _ = d.wait_exit();
    let d2 = Daemon::start(&ns, dir.path(), &["--poll", "1h"]);
    d2.wait_log("first reconcile pass done");
    let log = d2.log();
    let first = log
        .lines()
        .find(|l| l.contains("first reconcile pass done"))
        .unwrap();
    assert!(first.contains("planned=0"), "{first}");
    // Positive control for the witness: one more MAC, added by the new process.
    let mut more = desired(3, "02:00:00:00:00:22");
    more["switches"][0]["remote_macs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mac": "02:00:00:00:00:24", "vtep": "198.18.0.20"}));
    write(dir.path(), &more);
    d2.signal(Signal::SIGHUP);
    wait_for("added after restart", LIMIT, || remote_macs(&ns).len() == 2);
    std::thread::sleep(Duration::from_millis(200));
    let events = monitor.stop();
    assert!(
        events.iter().any(|e| e.contains("02:00:00:00:00:24")),
        "the witness saw nothing: {events:#?}"
    );
    let touched: Vec<&String> = events
        .iter()
        .filter(|e| e.contains("bhvx5000") && !e.contains("02:00:00:00:00:24"))
        .collect();
    assert!(
        touched.is_empty(),
        "restart touched FDB entries: {touched:#?}"
    );
}
