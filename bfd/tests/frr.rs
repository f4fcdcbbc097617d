//! Interoperability with an independent implementation: FRR's bfdd in its
//! own network namespace, our driver in another, joined by a veth on the
//! underlay plan (198.18.0.1 us, 198.18.0.2 bfdd). Needs root, `ip` and FRR.
#![cfg(feature = "root-tests")]

mod common;

use bfd::config::SessionConfig;
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::{Diagnostic, State};
use bfd::session::{Event, Status};
use bfd::udp::{Driver, DriverConfig};
use common::{NsPair, run};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const FRR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// Two namespaces, a veth, and bfdd; torn down by Drop (bfdd by PID) even on panic.
struct Lab {
    ns: NsPair,
    dir: tempfile::TempDir,
    bfdd: Option<Child>,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            ns: NsPair::new("bfd", "198.18.0.1/24", "198.18.0.2/24"),
            dir: tempfile::tempdir().unwrap(),
            bfdd: None,
        }
    }

    fn start_bfdd(&mut self, tx_ms: u32, rx_ms: u32, multihop: bool) {
        let d = self.dir.path();
        // bfdd drops privileges to frr: the directory must be theirs and reachable.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = format!(
            "hostname bfdtest\nlog file {}/bfdd.log\nbfd\n peer {FRR_PEER}{MH} local-address {LOCAL}\n  receive-interval {rx_ms}\n  transmit-interval {tx_ms}\n  detect-multiplier 3\n !\n!\n",
            d.display(),
            FRR_PEER = US,
            MH = if multihop { " multihop" } else { "" },
            LOCAL = FRR,
        );
        std::fs::write(d.join("bfdd.conf"), conf).unwrap();
        std::fs::write(d.join("vtysh.conf"), "service integrated-vtysh-config\n").unwrap();
        run(&["chown", "-R", "frr:frr", d.to_str().unwrap()]);
        let p = |f: &str| d.join(f).to_str().unwrap().to_string();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.b,
                "/usr/lib/frr/bfdd",
                "-f",
                &p("bfdd.conf"),
                "-i",
                &p("bfdd.pid"),
            ])
            .args([
                "-z",
                &p("zserv.api"),
                "--vty_socket",
                d.to_str().unwrap(),
                "-P",
                "0",
            ])
            .args(["--bfdctl", &p("bfdd.sock"), "-u", "frr", "-g", "frr"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bfdd");
        // `ip netns exec` execs bfdd in place, so this PID is bfdd's.
        self.bfdd = Some(child);
    }

    fn stop_bfdd(&mut self) {
        if let Some(mut c) = self.bfdd.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn vtysh(&self, cmd: &str) -> String {
        let d = self.dir.path().to_str().unwrap();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns.b,
                "vtysh",
                "--vty_socket",
                d,
                "--config_dir",
                d,
                "-c",
                cmd,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// bfdd's JSON view of its one peer, once it can be read.
    fn peer_json(&self) -> String {
        self.vtysh("show bfd peers json")
    }

    /// [`Lab::peer_json`] once it reports `status` (polled every 100 ms,
    /// for 5 s at most; then the last answer, for the caller's assertion).
    fn peer_json_when(&self, status: &str) -> String {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let json = self.peer_json();
            if json_field(&json, "status") == Some(status) || Instant::now() >= end {
                return json;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // bfdd first (by PID), then the namespaces (NsPair's own Drop).
        self.stop_bfdd();
    }
}

/// A status report from the driver thread: when, the session, its new events.
type Report = (Instant, Status, Vec<Event>);

enum Cmd {
    SetParams(Duration),
    AdminDown,
    AdminUp,
    Stop,
}

/// Our driver in the namespace, run in its own thread (a network namespace
/// is per thread). Reports status and events every 20 ms.
fn spawn_us(
    ns: &str,
    cfg: SessionConfig,
    encap: Encap,
) -> (mpsc::Sender<Cmd>, mpsc::Receiver<Report>) {
    let (ctx, crx) = mpsc::channel::<Cmd>();
    let (stx, srx) = mpsc::channel();
    let ns = ns.to_string();
    std::thread::spawn(move || {
        common::enter(&ns);
        let mut m = Manager::new(ManagerConfig {
            seed: 5,
            ..Default::default()
        })
        .unwrap();
        let peer = PeerKey {
            remote: IpAddr::V4(FRR),
            local: IpAddr::V4(US),
            encap,
        };
        let discr = m.add_session(peer, cfg, Instant::now()).unwrap();
        let mut d = Driver::bind(m, DriverConfig::new(US)).unwrap();
        loop {
            d.run_until(Instant::now() + Duration::from_millis(20))
                .unwrap();
            let mut events = Vec::new();
            while let Some((_, _, e)) = d.manager_mut().poll_event() {
                events.push(e);
            }
            let st = d.manager().session(discr).unwrap().status();
            if stx.send((Instant::now(), st, events)).is_err() {
                return;
            }
            match crx.try_recv() {
                Ok(Cmd::SetParams(t)) => d
                    .manager_mut()
                    .set_params(discr, Instant::now(), t, t, 3)
                    .unwrap(),
                Ok(Cmd::AdminDown) => d.manager_mut().set_admin_down(
                    discr,
                    Instant::now(),
                    Diagnostic::AdministrativelyDown,
                ),
                Ok(Cmd::AdminUp) => d.manager_mut().set_admin_up(discr, Instant::now()),
                Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => {}
            }
        }
    });
    (ctx, srx)
}

/// Starts us with `interval` as Desired Min TX and Required Min RX and waits
/// (15 s at most) for Up with no Poll Sequence outstanding.
fn up_with_bfdd(
    lab: &Lab,
    interval: Duration,
    encap: Encap,
) -> (mpsc::Sender<Cmd>, mpsc::Receiver<Report>, Status) {
    let cfg = SessionConfig {
        desired_min_tx: interval,
        required_min_rx: interval,
        ..Default::default()
    };
    let (ctl, st) = spawn_us(&lab.ns.a, cfg, encap);
    let (_, s, _) = wait_for(&st, Duration::from_secs(15), |s| {
        s.state == State::Up && !s.poll_in_progress
    });
    assert_eq!(s.state, State::Up, "{s:?}\nbfdd: {}", lab.peer_json());
    (ctl, st, s)
}

/// Reads status reports until one made after this call satisfies `pred` or
/// `timeout` passes; returns that report and every event seen meanwhile.
fn wait_for(
    srx: &mpsc::Receiver<Report>,
    timeout: Duration,
    pred: impl Fn(&Status) -> bool,
) -> Report {
    let since = Instant::now();
    let end = since + timeout;
    let mut all = Vec::new();
    loop {
        let (t, st, ev) = srx
            .recv_timeout(Duration::from_secs(2))
            .expect("driver thread alive");
        all.extend(ev);
        // Reports queued before the call describe the past.
        if t > since && (pred(&st) || Instant::now() > end) {
            return (t, st, all);
        }
    }
}

fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let i = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[i..].trim_start();
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().trim_matches('"'))
}

#[test]
fn interoperates_with_frr_bfdd() {
    let mut lab = Lab::new();
    lab.start_bfdd(100, 100, false);

    // 1. Bring-up and negotiation: our TX = max(our 50, bfdd's RX 100).
    let (ctl, st, s) = up_with_bfdd(&lab, Duration::from_millis(50), Encap::SingleHop);
    assert_eq!(s.tx_interval, Duration::from_millis(100));
    assert_eq!(
        s.detection_time,
        Duration::from_millis(300),
        "3 x max(our RX 50, bfdd TX 100)"
    );
    let json = lab.peer_json_when("up");
    assert_eq!(json_field(&json, "status"), Some("up"), "{json}");
    assert_eq!(
        json_field(&json, "remote-id"),
        Some(s.local_discriminator.to_string().as_str()),
        "{json}"
    );
    assert_eq!(
        json_field(&json, "id"),
        Some(s.remote_discriminator.to_string().as_str()),
        "{json}"
    );

    // 2. Poll/Final with bfdd: slow down to 400 ms; bfdd must learn it and stay up.
    ctl.send(Cmd::SetParams(Duration::from_millis(400)))
        .unwrap();
    let (_, s, ev) = wait_for(&st, Duration::from_secs(10), |s| {
        s.tx_interval == Duration::from_millis(400) && !s.poll_in_progress
    });
    assert_eq!(s.tx_interval, Duration::from_millis(400), "{s:?}");
    assert!(
        ev.is_empty(),
        "no state change during the Poll Sequence: {ev:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let json = lab.peer_json();
    assert_eq!(json_field(&json, "status"), Some("up"), "{json}");
    assert_eq!(
        json_field(&json, "remote-transmit-interval"),
        Some("400"),
        "{json}"
    );
    assert_eq!(
        json_field(&json, "remote-receive-interval"),
        Some("400"),
        "{json}"
    );

    // 3. AdminDown reaches bfdd as a signalled down, not a timeout.
    ctl.send(Cmd::AdminDown).unwrap();
    let json = lab.peer_json_when("down");
    assert_eq!(json_field(&json, "status"), Some("down"), "{json}");
    assert_eq!(
        json_field(&json, "remote-diagnostic"),
        Some("administratively down"),
        "{json}"
    );
    ctl.send(Cmd::AdminUp).unwrap();
    let (_, s, _) = wait_for(&st, Duration::from_secs(15), |s| {
        s.state == State::Up && !s.poll_in_progress
    });
    assert_eq!(s.state, State::Up);

    // 4. Detection: kill bfdd; we declare Down with diag 1 one Detection Time
    //    (3 x max(our RX 400, bfdd TX 100) = 1.2 s) after its last packet.
    let (_, s, _) = wait_for(&st, Duration::from_secs(3), |s| {
        s.detection_time == Duration::from_millis(1200)
    });
    assert_eq!(s.detection_time, Duration::from_millis(1200), "{s:?}");
    let killed = Instant::now();
    lab.stop_bfdd();
    let (_, s, ev) = wait_for(&st, Duration::from_secs(5), |s| s.state == State::Down);
    assert_eq!(
        (s.state, s.local_diag),
        (State::Down, Diagnostic::ControlDetectionTimeExpired)
    );
    let down_at = ev
        .iter()
        .find_map(|Event::StateChange { to, at, .. }| (*to == State::Down).then_some(*at))
        .expect("a Down event");
    let latency = down_at - killed;
    // bfdd transmits every max(its TX 100, our RX 400) = 400 ms (less jitter), so
    // its last packet left at most 400 ms before the kill: Down comes in
    // (1.2 s - 400 ms, 1.2 s], plus scheduling slack on a loaded 2-core machine.
    assert!(
        latency > Duration::from_millis(800) && latency <= Duration::from_millis(1300),
        "{latency:?}"
    );
    eprintln!("detection after killing bfdd: {latency:?} (Detection Time 1.2 s)");
    ctl.send(Cmd::Stop).unwrap();
}

#[test]
fn multihop_interoperates_with_frr_bfdd() {
    // RFC 5883: UDP 4784; bfdd as a multihop peer (no interface, no zebra).
    let mut lab = Lab::new();
    lab.start_bfdd(200, 200, true);
    let (ctl, _st, s) = up_with_bfdd(&lab, Duration::from_millis(100), Encap::MultiHop);
    assert_eq!(
        s.tx_interval,
        Duration::from_millis(200),
        "max(our 100, bfdd RX 200)"
    );
    let json = lab.peer_json_when("up");
    assert_eq!(json_field(&json, "multihop"), Some("true"), "{json}");
    assert_eq!(json_field(&json, "status"), Some("up"), "{json}");
    assert_eq!(
        json_field(&json, "remote-id"),
        Some(s.local_discriminator.to_string().as_str()),
        "{json}"
    );
    ctl.send(Cmd::Stop).unwrap();
}
