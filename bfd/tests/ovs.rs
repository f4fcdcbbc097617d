//! Interoperability with Open vSwitch's BFD inside VXLAN: ovs-vswitchd
//! (userspace datapath) with a VXLAN port, key 0, `bfd:enable=true`, in one
//! namespace; our driver with a kernel VNI 0 device in another. Needs root
//! and the openvswitch-switch package.
#![cfg(feature = "root-tests")]

mod common;

use bfd::packet::{Diagnostic, State};
use bfd::session::Status;
use common::{NsPair, add_addr, run};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const US: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const OVS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

/// ovsdb-server and ovs-vswitchd in the foreground, killed and reaped by PID
/// on drop (vswitchd first), before the namespaces go.
struct Ovs {
    dir: tempfile::TempDir,
    ns: String,
    children: Vec<Child>,
}

impl Ovs {
    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, prog]);
        let d = self.dir.path();
        for v in ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"] {
            c.env(v, d);
        }
        c
    }

    fn ok(&self, prog: &str, args: &[&str]) -> String {
        let out = self.cmd(prog).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{prog} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start(ns: &str) -> Ovs {
        let mut o = Ovs {
            dir: tempfile::tempdir().unwrap(),
            ns: ns.to_string(),
            children: Vec::new(),
        };
        let d = o.dir.path().to_path_buf();
        let db = d.join("conf.db");
        run(&[
            "ovsdb-tool",
            "create",
            db.to_str().unwrap(),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        let sock = d.join("db.sock");
        let remote = format!("--remote=punix:{}", sock.display());
        let server = o
            .cmd("ovsdb-server")
            .args([&remote, "--pidfile", "--log-file"])
            .arg(&db)
            .spawn_quiet();
        o.children.push(server);
        wait_path(&sock);
        o.ok("ovs-vsctl", &["--no-wait", "init"]);
        let target = format!("unix:{}", sock.display());
        let vswitchd = o
            .cmd("ovs-vswitchd")
            .args(["--pidfile", "--log-file", &target])
            .spawn_quiet();
        // Children are stopped in reverse order: vswitchd before its database.
        o.children.push(vswitchd);
        o
    }

    fn bfd_show(&self) -> String {
        self.ok("ovs-appctl", &["bfd/show"])
    }

    /// Stops ovs-vswitchd only (by PID), leaving the database.
    fn kill_vswitchd(&mut self) {
        if self.children.len() == 2 {
            let mut c = self.children.pop().unwrap();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

trait SpawnQuiet {
    fn spawn_quiet(&mut self) -> Child;
}

impl SpawnQuiet for Command {
    fn spawn_quiet(&mut self) -> Child {
        self.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        while let Some(mut c) = self.children.pop() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_path(p: &Path) {
    for _ in 0..100 {
        if p.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} never appeared", p.display());
}

fn field<'a>(show: &'a str, key: &str) -> Option<&'a str> {
    show.lines().find_map(|l| {
        l.trim()
            .strip_prefix(key)
            .map(|v| v.trim_start_matches(':').trim())
    })
}

#[test]
fn interoperates_with_open_vswitch_bfd_in_vxlan() {
    // Locals drop in reverse order: the OVS processes stop before the namespaces go.
    let ns = NsPair::new("bfo", "198.18.0.1/24", "198.18.0.2/24");
    // The OVS side's address moves to br-phy (native tunneling needs it there).
    run(&["ip", "-n", &ns.b, "addr", "flush", "dev", &ns.dev_b]);
    // Veth TX checksum offload breaks packets that cross the OVS userspace datapath.
    run(&[
        "ip", "netns", "exec", &ns.a, "ethtool", "-K", &ns.dev_a, "tx", "off",
    ]);
    let mut ovs = Ovs::start(&ns.b);
    ovs.ok(
        "ovs-vsctl",
        &[
            "add-br",
            "br-phy",
            "--",
            "set",
            "Bridge",
            "br-phy",
            "datapath_type=netdev",
            "--",
            "add-port",
            "br-phy",
            &ns.dev_b,
        ],
    );
    add_addr(&ns.b, "198.18.0.2/24", "br-phy");
    run(&["ip", "-n", &ns.b, "link", "set", "br-phy", "up"]);
    ovs.ok(
        "ovs-vsctl",
        &[
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=netdev",
            "--",
            "add-port",
            "br-int",
            "vx",
            "--",
            "set",
            "Interface",
            "vx",
            "type=vxlan",
            "options:remote_ip=198.18.0.1",
            "options:key=0",
            "bfd:enable=true",
            "bfd:min_tx=100",
            "bfd:min_rx=100",
        ],
    );
    common::vxlan_device(&ns.a, &ns.dev_a, "vx0", 0, US, OVS);

    let (stx, srx) = mpsc::channel::<(Instant, Status, Vec<(State, Diagnostic, Instant)>)>();
    let (ctx, crx) = mpsc::channel::<()>();
    let na = ns.a.clone();
    let t = std::thread::spawn(move || {
        common::enter(&na);
        let (mut d, discr) =
            common::vxlan_driver(US, OVS, 9, "vx0", bfd::vxlan::VxlanFlavor::OvsVtep);
        while crx.try_recv().is_err() {
            d.run_until(Instant::now() + Duration::from_millis(20))
                .unwrap();
            let mut ev = Vec::new();
            while let Some((_, _, bfd::session::Event::StateChange { to, diag, at, .. })) =
                d.manager_mut().poll_event()
            {
                ev.push((to, diag, at));
            }
            if stx
                .send((
                    Instant::now(),
                    d.manager().session(discr).unwrap().status(),
                    ev,
                ))
                .is_err()
            {
                return;
            }
        }
    });
    let wait = |timeout: Duration, pred: &dyn Fn(&Status) -> bool| {
        let since = Instant::now();
        let mut events = Vec::new();
        loop {
            let (t, s, ev) = srx.recv_timeout(Duration::from_secs(2)).unwrap();
            events.extend(ev);
            if t > since && (pred(&s) || t > since + timeout) {
                return (s, events);
            }
        }
    };

    // Bring-up with OVS.
    let (s, _) = wait(Duration::from_secs(20), &|s| {
        s.state == State::Up && !s.poll_in_progress
    });
    assert_eq!(s.state, State::Up, "{s:?}\n{}", ovs.bfd_show());
    let mut show = String::new();
    for _ in 0..30 {
        show = ovs.bfd_show();
        if field(&show, "Local Session State") == Some("up") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(field(&show, "Local Session State"), Some("up"), "{show}");
    assert_eq!(
        field(&show, "Remote Discriminator"),
        Some(format!("{:#x}", s.local_discriminator).as_str()),
        "{show}"
    );
    assert_eq!(s.tx_interval, Duration::from_millis(100));
    assert_eq!(s.detection_time, Duration::from_millis(300));

    // Detection: stop ovs-vswitchd; we go Down with diag 1.
    let killed = Instant::now();
    ovs.kill_vswitchd();
    let (s, ev) = wait(Duration::from_secs(5), &|s| s.state == State::Down);
    assert_eq!(
        (s.state, s.local_diag),
        (State::Down, Diagnostic::ControlDetectionTimeExpired)
    );
    let down = ev.iter().find(|(to, ..)| *to == State::Down).unwrap().2;
    let latency = down - killed;
    eprintln!("detection after stopping ovs-vswitchd: {latency:?} (Detection Time 300 ms)");
    assert!(latency <= Duration::from_millis(400), "{latency:?}");
    ctx.send(()).unwrap();
    drop(srx);
    t.join().unwrap();
    drop(ovs);
}
