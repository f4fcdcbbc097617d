//! The `bfd` command end to end on loopback (127.0.0.0/8, no root): two
//! `bfd run` processes bring a session Up, `bfd status --json` and /metrics
//! show it, SIGHUP reloads add/retime/remove sessions without disturbing
//! the others, a bad file is refused, SIGTERM signals AdminDown.

use bfd::report::{SessionReport, StatusReport};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BFD: &str = env!("CARGO_BIN_EXE_bfd");

/// 127.P.Q.host with P.Q from the pid and a per-test salt.
fn addr(salt: u8, host: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, (pid >> 8) as u8 ^ salt, pid as u8, host)
}

/// A `bfd run` child, killed and reaped on drop.
struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, tag: &str, config: &Path, metrics: Option<u16>) -> Daemon {
        let socket = dir.join(format!("{tag}.sock"));
        let log = dir.join(format!("{tag}.log"));
        let mut c = Command::new(BFD);
        c.args(["run", "--config"])
            .arg(config)
            .arg("--status-socket")
            .arg(&socket)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(p) = metrics {
            c.args(["--metrics-listen", &format!("127.0.0.1:{p}")]);
        }
        Daemon {
            child: c.spawn().unwrap(),
            socket,
            log,
        }
    }

    fn status(&self) -> Option<StatusReport> {
        let out = Command::new(BFD)
            .args(["status", "--json", "--status-socket"])
            .arg(&self.socket)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Waits until `pred` holds for the session named `name`.
    fn wait_session(
        &self,
        name: &str,
        what: &str,
        pred: impl Fn(&SessionReport) -> bool,
    ) -> SessionReport {
        let end = Instant::now() + Duration::from_secs(10);
        let mut last = None;
        while Instant::now() < end {
            if let Some(r) = self.status() {
                last = r.sessions.iter().find(|s| s.name == name).cloned();
                if last.as_ref().is_some_and(&pred) {
                    return last.unwrap();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{name}: never {what}; last {last:?}\nlog:\n{}",
            self.log_text()
        );
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) },
            0
        );
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("log never said {needle:?}:\n{}", self.log_text());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).unwrap();
    s
}

fn config(bind: Ipv4Addr, port_base: u16, peers: &[(&str, Ipv4Addr, &str, u32)]) -> String {
    let mut s =
        format!("[daemon]\nbind = \"{bind}\"\nsrc_port_base = {port_base}\nsrc_port_count = 2\n");
    for (name, remote, mode, tx) in peers {
        s += &format!(
            "[[peer]]\nname = \"{name}\"\nlocal = \"{bind}\"\nremote = \"{remote}\"\nmode = \"{mode}\"\ntx_interval_ms = {tx}\nrx_interval_ms = 100\n"
        );
    }
    s
}

#[test]
fn two_processes_come_up_report_status_and_metrics_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (addr(0x55, 1), addr(0x55, 2));
    let (ca, cb) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&ca, config(a, 51000, &[("to-b", b, "single-hop", 100)])).unwrap();
    std::fs::write(&cb, config(b, 51100, &[("to-a", a, "single-hop", 100)])).unwrap();
    let port = free_port();
    let da = Daemon::start(dir.path(), "a", &ca, Some(port));
    let db = Daemon::start(dir.path(), "b", &cb, None);

    // Up, and the Poll Sequence that leaves the 1 s bring-up rate is done.
    let up = da.wait_session("to-b", "Up at 100 ms", |s| {
        s.state == "up" && s.detection_time_us == 300_000
    });
    assert_eq!(
        (up.local.as_str(), up.mode.as_str()),
        (a.to_string().as_str(), "single-hop")
    );
    assert_ne!(up.remote_discriminator, 0);
    assert_eq!(
        (up.tx_interval_us, up.detection_time_us),
        (100_000, 300_000)
    );
    db.wait_session("to-a", "Up", |s| s.state == "up");
    da.wait_log("state change");
    assert!(da.log_text().contains("to=\"up\""), "{}", da.log_text());

    let m = http_get(port, "/metrics");
    assert!(m.starts_with("HTTP/1.0 200 OK"), "{m}");
    for line in [
        r#"bfd_sessions{state="up"} 1"#,
        r#"bfd_sessions{state="down"} 0"#,
        "bfd_flaps_total 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} missing in\n{m}");
    }
    assert!(m.contains("bfd_event_loop_lag_seconds_bucket"), "{m}");
    assert!(http_get(port, "/").starts_with("HTTP/1.0 404"));

    // The human table names the session.
    let table = Command::new(BFD)
        .args(["status", "--status-socket"])
        .arg(&da.socket)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("to-b") && table.contains("1 sessions: 1 up"),
        "{table}"
    );
    let out = Command::new(BFD)
        .args(["status", "--summary", "--json", "--status-socket"])
        .arg(&da.socket)
        .output()
        .unwrap();
    let summary: StatusReport = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary.sessions.is_empty());
    assert_eq!((summary.summary.sessions, summary.summary.up), (1, 1));

    // Reload: retime to-b, add a multihop session on both sides.
    std::fs::write(
        &ca,
        config(
            a,
            51000,
            &[("to-b", b, "single-hop", 150), ("mh", b, "multihop", 100)],
        ),
    )
    .unwrap();
    std::fs::write(
        &cb,
        config(
            b,
            51100,
            &[("to-a", a, "single-hop", 100), ("mh", a, "multihop", 100)],
        ),
    )
    .unwrap();
    da.signal(libc::SIGHUP);
    db.signal(libc::SIGHUP);
    da.wait_session("mh", "Up", |s| s.state == "up");
    let retimed = da.wait_session("to-b", "retimed", |s| s.tx_interval_us == 150_000);
    assert_eq!(
        retimed.local_discriminator, up.local_discriminator,
        "same session"
    );
    assert_eq!(
        (retimed.state.as_str(), retimed.flaps),
        ("up", 0),
        "undisturbed"
    );

    // A bad file is refused and changes nothing.
    std::fs::write(&ca, "[[peer]]\nlocal = \"nope\"\n").unwrap();
    da.signal(libc::SIGHUP);
    da.wait_log("reload refused");
    let r = da.status().unwrap();
    assert_eq!((r.summary.sessions, r.summary.up), (2, 2));

    // B drops the multihop session: it says AdminDown first.
    std::fs::write(&cb, config(b, 51100, &[("to-a", a, "single-hop", 100)])).unwrap();
    db.signal(libc::SIGHUP);
    let mh = da.wait_session("mh", "Down", |s| s.state == "down");
    assert_eq!(
        (mh.diag.as_str(), mh.remote_diag.as_str()),
        ("neighbor_signaled_session_down", "administratively_down")
    );
    // B deletes it once it has signalled for a Detection Time (3 x 1 s).
    let end = Instant::now() + Duration::from_secs(10);
    while db.status().unwrap().summary.sessions != 1 {
        assert!(Instant::now() < end, "B never deleted the retired session");
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM: A tells B AdminDown, exits 0 and removes its socket.
    let mut da = da;
    da.signal(libc::SIGTERM);
    let st = da.child.wait().unwrap();
    assert!(st.success(), "{st:?}\n{}", da.log_text());
    assert!(!da.socket.exists());
    let s = db.wait_session("to-a", "Down", |s| s.state == "down");
    assert_eq!(s.remote_diag, "administratively_down");
    assert_eq!(s.diag, "neighbor_signaled_session_down");
}

#[test]
fn check_names_every_bad_field_and_status_without_daemon_fails() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "[[peer]]\nlocal = \"127.0.0.1\"\nremote = \"x\"\nmode = \"multihop\"\nmultiplier = 0\n",
    )
    .unwrap();
    let out = Command::new(BFD)
        .args(["check", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("peer[0].remote") && err.contains("peer[0].multiplier"),
        "{err}"
    );

    std::fs::write(
        &f,
        "[[peer]]\nlocal = \"127.0.0.1\"\nremote = \"127.0.0.2\"\nmode = \"multihop\"\n",
    )
    .unwrap();
    let out = Command::new(BFD)
        .args(["check", "--config"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 sessions"));

    let out = Command::new(BFD)
        .args(["status", "--status-socket"])
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is `bfd run` running?"));
}
