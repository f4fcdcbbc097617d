//! Tests of the lab harness itself, against the real kernel and real peers.
//! Each test checks that nothing it created is left afterwards, also when it
//! fails (a panicking lab, a killed `lab` process).
#![cfg(feature = "root-tests")]

use lab::peers::frr::Frr;
use lab::process::Stopped;
use lab::scenarios::{pair, vtep_by_hand};
use lab::state::{LabState, pid_matches};
use lab::teardown::existing_namespaces;
use lab::traffic::capture::Capture;
use lab::traffic::ping::{self, BackgroundPing};
use lab::{Iface, Lab, wait};
use std::time::Duration;

/// Asserts that no namespace and no process of `st` survives.
fn assert_gone(st: &LabState) {
    let ns = existing_namespaces();
    let left: Vec<&String> = st.namespaces.iter().filter(|n| ns.contains(n)).collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    for p in &st.processes {
        assert!(
            !pid_matches(p.pid, p.start_ticks),
            "process {} (pid {}) left running",
            p.name,
            p.pid
        );
    }
    assert!(
        !st.path().exists(),
        "state file {} left behind",
        st.path().display()
    );
}

#[test]
fn two_hosts_ping_across_the_underlay() {
    let lab = Lab::new("t-pair").unwrap();
    let p = pair::build(&lab).unwrap();
    let r = ping::ping(&p.h1, "198.18.0.2", 20, Duration::from_millis(10)).unwrap();
    assert_eq!(r.transmitted, 20);
    assert_eq!(r.lost(), 0, "{}", r.summary());
    // The hosts are isolated from the root namespace: the address is not ours.
    let ours = lab::cmd::run(
        None,
        &["ip", "-4", "-o", "addr", "show", "to", "198.18.0.2"],
    )
    .unwrap();
    assert!(
        ours.trim().is_empty(),
        "198.18.0.2 leaked into the root namespace: {ours}"
    );
    let st = lab.state();
    let rep = lab.teardown();
    assert!(rep.is_clean(), "{:?}", rep.errors);
    assert_gone(&st);
}

#[test]
fn emulated_switch_answers_hardware_vtep_and_carries_a_hand_configured_overlay() {
    let lab = Lab::new("t-vtep").unwrap();
    let v = vtep_by_hand::build(&lab).unwrap();

    // The switch's hardware_vtep database answers over TCP, from another host.
    let dbs = v
        .hv1
        .run(&["ovsdb-client", "list-dbs", &v.sw1.db_target()])
        .unwrap();
    assert!(dbs.lines().any(|l| l == "hardware_vtep"), "list-dbs: {dbs}");
    let ps = v.sw1.vtep_ctl(&["list-ps"]).unwrap();
    assert_eq!(ps.trim(), "sw1");

    // Overlay traffic both ways, and the VNI is on the wire.
    // Forwarded frames do not pass br0 itself: capture on hv1's port of the underlay.
    let cap = Capture::start(&lab, &v.underlay, "hv1", "udp port 4789").unwrap();
    let r = ping::ping(&v.vm1, vtep_by_hand::BM1.0, 10, Duration::from_millis(20)).unwrap();
    assert_eq!(r.lost(), 0, "vm1 -> bm1: {}", r.summary());
    let r = ping::ping(&v.bm1, vtep_by_hand::VM1.0, 10, Duration::from_millis(20)).unwrap();
    assert_eq!(r.lost(), 0, "bm1 -> vm1: {}", r.summary());
    let pcap = cap.stop(&lab).unwrap();
    let rows = pcap
        .fields("vxlan && icmp", &["ip.src", "vxlan.vni"])
        .unwrap();
    assert!(
        rows.len() >= 40,
        "expected 40 encapsulated ICMP packets, got {}",
        rows.len()
    );
    for row in &rows {
        assert!(row[1] == "5000", "unexpected VNI in {row:?}");
        assert!(
            row[0].starts_with(&format!("{},", vtep_by_hand::HV1_IP))
                || row[0].starts_with(&format!("{},", vtep_by_hand::SW1_IP)),
            "outer/inner src {row:?}"
        );
    }
    let from_hv1 = rows
        .iter()
        .filter(|r| r[0].starts_with(vtep_by_hand::HV1_IP))
        .count();
    let from_sw1 = rows
        .iter()
        .filter(|r| r[0].starts_with(vtep_by_hand::SW1_IP))
        .count();
    assert!(
        from_hv1 >= 20 && from_sw1 >= 20,
        "both VTEPs encapsulate: hv1 {from_hv1}, sw1 {from_sw1}"
    );
    assert!(pcap.problems().unwrap().is_empty());

    // The switch learned the bare-metal MAC (Ucast_Macs_Local).
    wait::until(
        "bm1 in Ucast_Macs_Local",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || {
            v.sw1
                .vtep_ctl(&["list-local-macs", "ls0"])
                .is_ok_and(|o| o.contains(vtep_by_hand::BM1.1))
        },
    )
    .unwrap();

    let st = lab.state();
    assert_eq!(st.processes.len(), 3, "{:?}", st.processes);
    drop(lab);
    assert_gone(&st);
}

#[test]
fn frr_bfdd_peers_come_up() {
    let lab = Lab::new("t-frr").unwrap();
    let p = pair::build(&lab).unwrap();
    let peer = |me: &str, other: &str| {
        format!(
            " peer {other} local-address {me}\n  receive-interval 300\n  transmit-interval 300\n !"
        )
    };
    let f1 = Frr::start(&lab, &p.h1, &peer("198.18.0.1", "198.18.0.2")).unwrap();
    let f2 = Frr::start(&lab, &p.h2, &peer("198.18.0.2", "198.18.0.1")).unwrap();
    wait::until(
        "bfd up on both",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            f1.peer_state("198.18.0.2").as_deref() == Some("up")
                && f2.peer_state("198.18.0.1").as_deref() == Some("up")
        },
    )
    .unwrap();
    let st = lab.state();
    assert_eq!(st.processes.len(), 4);
    drop(lab);
    assert_gone(&st);
}

#[test]
fn background_ping_measures_an_outage() {
    let lab = Lab::new("t-outage").unwrap();
    let p = pair::build(&lab).unwrap();
    let bg = BackgroundPing::start(&lab, &p.h1, "198.18.0.2", Duration::from_millis(10)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    p.h2.run(&["ip", "link", "set", "eth0", "down"]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    p.h2.run(&["ip", "link", "set", "eth0", "up"]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let r = bg.stop(&lab).unwrap();
    assert!(r.transmitted > 50, "{}", r.summary());
    assert!(
        r.longest_loss_run() >= 10,
        "the 300 ms cut must show: {}",
        r.summary()
    );
    assert!(
        r.timeline.last().unwrap().rtt.is_some(),
        "traffic recovered: {}",
        r.summary()
    );
}

#[test]
fn a_panicking_test_leaves_nothing_behind() {
    let mut seen: Option<LabState> = None;
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new("t-panic").unwrap();
        let p = pair::build(&lab).unwrap();
        lab.spawn(Some(&p.h1), "sleeper", &["sleep", "600"], &[])
            .unwrap();
        // A process that ignores SIGTERM must still go (SIGKILL after the grace period).
        lab.spawn(
            Some(&p.h2),
            "stubborn",
            &["sh", "-c", "trap '' TERM; sleep 600 & wait; sleep 600"],
            &[],
        )
        .unwrap();
        seen = Some(lab.state());
        panic!("deliberate failure inside a lab");
    }));
    assert!(res.is_err());
    let st = seen.unwrap();
    assert_eq!(st.processes.len(), 2);
    assert_gone(&st);
}

#[test]
fn a_stopped_process_is_reported_and_kill_works() {
    let lab = Lab::new("t-proc").unwrap();
    let h = lab.add_host("h").unwrap();
    lab.spawn(Some(&h), "short", &["sh", "-c", "echo hello; exit 3"], &[])
        .unwrap();
    wait::until(
        "short to exit",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || lab.check_alive("short").is_err(),
    )
    .unwrap();
    let err = format!("{:#}", lab.check_alive("short").unwrap_err());
    assert!(
        err.contains("exit status: 3") && err.contains("hello"),
        "{err}"
    );
    lab.spawn(Some(&h), "long", &["sleep", "600"], &[]).unwrap();
    let pid = lab
        .state()
        .processes
        .iter()
        .find(|p| p.name == "long")
        .unwrap()
        .pid;
    assert_eq!(lab.kill_process("long").unwrap(), Stopped::Terminated);
    assert!(!pid_matches(pid, 0));
    // It runs inside the host's namespace, not ours.
    lab.spawn(
        Some(&h),
        "where",
        &["sh", "-c", "ip -o link show; sleep 600"],
        &[],
    )
    .unwrap();
    let log = lab
        .state()
        .processes
        .iter()
        .find(|p| p.name == "where")
        .unwrap()
        .log
        .clone();
    wait::until(
        "where to print",
        Duration::from_secs(5),
        Duration::from_millis(20),
        || std::fs::read_to_string(&log).is_ok_and(|s| s.contains("lo:")),
    )
    .unwrap();
    let links = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        links.lines().count(),
        1,
        "only loopback in a fresh host: {links}"
    );
    let st = lab.state();
    drop(lab);
    assert_gone(&st);
}

fn lab_bin() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_lab"));
    c.env("LAB_LOG", "warn");
    c
}

fn find_lab(name: &str) -> Option<LabState> {
    lab::state::load_all()
        .into_iter()
        .flatten()
        .find(|s| s.name == name)
}

#[test]
fn ctrl_c_on_a_holding_lab_tears_it_down() {
    // A unique scenario name is not possible (`lab up` takes scenario names),
    // so use a topology file with a unique name.
    let dir = tempdir();
    let name = format!("hold{}", std::process::id() % 100000);
    let topo = dir.join("t.toml");
    std::fs::write(
        &topo,
        format!(
            "name = \"{name}\"\nsegments = [\"u\"]\n[[hosts]]\nname = \"a\"\nifaces = [{{ name = \"eth0\", segment = \"u\", addr = \"198.18.0.1/24\" }}]\n"
        ),
    )
    .unwrap();
    let mut child = lab_bin()
        .args(["up", topo.to_str().unwrap(), "--hold"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it says it is holding (fully built).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("holding") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "lab up exited early"
        );
    }
    let st = find_lab(&name).unwrap();
    assert_eq!(st.namespaces.len(), 2);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit 128 + SIGINT");
    assert_gone(&st);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn lab_up_status_down_from_the_command_line_and_orphans_are_collected() {
    let dir = tempdir();
    let name = format!("cli{}", std::process::id() % 100000);
    let topo = dir.join("t.toml");
    std::fs::write(
        &topo,
        format!(
            "name = \"{name}\"\nsegments = [\"u\"]\n[[hosts]]\nname = \"a\"\nifaces = [{{ name = \"eth0\", segment = \"u\", addr = \"198.18.0.1/24\", mtu = 1450 }}]\n"
        ),
    )
    .unwrap();
    let out = lab_bin()
        .args(["up", topo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = find_lab(&name).expect("state file of the detached lab");
    assert!(st.detached);
    let status = lab_bin().args(["status"]).output().unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&st.id) && text.contains("detached"), "{text}");
    let exec = lab_bin()
        .args([
            "exec", "a", "--lab", &name, "--", "ip", "-o", "link", "show", "eth0",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&exec.stdout).contains("mtu 1450"));
    // Running `up` again replaces it.
    let out = lab_bin()
        .args(["up", topo.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_gone(&st);
    let st2 = find_lab(&name).unwrap();
    assert_ne!(st2.id, st.id);
    let out = lab_bin().args(["down", &name]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_gone(&st2);

    // A lab whose builder was SIGKILLed is collected by the next Lab::new.
    let mut child = lab_bin()
        .args(["up", topo.to_str().unwrap(), "--hold"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let st3 = wait::until_some(
        "held lab",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || find_lab(&name).filter(|s| s.namespaces.len() == 2),
    )
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        existing_namespaces().contains(&st3.namespaces[0]),
        "SIGKILL leaves it behind"
    );
    let collector = Lab::new("t-collector").unwrap();
    assert_gone(&st3);
    drop(collector);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn links_between_hosts_carry_fixed_macs() {
    let lab = Lab::new("t-veth").unwrap();
    let a = lab.add_host("a").unwrap();
    let b = lab.add_host("b").unwrap();
    lab.veth(
        &a,
        &Iface::new("x0", "192.0.2.1/24").mac("02:00:00:00:aa:01"),
        &b,
        &Iface::new("y0", "192.0.2.2/24").mac("02:00:00:00:bb:01"),
    )
    .unwrap();
    assert!(ping::reachable(&a, "192.0.2.2"));
    let neigh = a.run(&["ip", "neigh", "show", "192.0.2.2"]).unwrap();
    assert!(neigh.contains("02:00:00:00:bb:01"), "{neigh}");
    assert!(lab.add_host("a").is_err(), "duplicate host refused");
    assert!(lab.add_host("Bad_Name").is_err());
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lab-test-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
