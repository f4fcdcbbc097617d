//! MAC learning against a real kernel bridge: a host behind the bound NIC
//! sends frames, the loop reports its MAC learned; it ages out (bridge
//! `ageing_time` 3 s) or moves behind the tunnel, the loop withdraws it.
//!
//! Run: `cargo test -p gateway --features root-tests --test learning` (as root).
#![cfg(feature = "root-tests")]

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use gateway::learning::LearnEvent;
use gateway::{DesiredNode, MacAddr, RemoteMac, Replication};
use support::{Ns, Running, bind_eth1, one_switch, wait_for};

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const HOST_MAC: &str = "02:00:00:00:aa:01";

fn desired(remote_macs: Vec<RemoteMac>) -> DesiredNode {
    let replication = Replication::SourceNode {
        remote_vteps: vec![PEER],
    };
    one_switch(LOCAL, replication, remote_macs, bind_eth1(0))
}

/// eth0 = underlay; eth1 (bound) <-> eth1p, the host on the physical segment.
fn setup() -> Ns {
    Ns::with_host("lrn", &["198.18.0.10/24"], HOST_MAC)
}

/// One ARP request (a broadcast with the host's source MAC) into the bridge.
fn host_speaks(ns: &Ns) {
    ns.ip(&["neigh", "flush", "dev", "eth1p"]);
    ns.try_exec(&["ping", "-c", "1", "-W", "1", "-I", "eth1p", "192.0.2.99"]);
}

fn bridge_has_learned(ns: &Ns) -> bool {
    ns.fdb("eth1").iter().any(|e| {
        // iproute2 prints a learned entry's state as "" (or "stale" just before it ages out).
        let state = e["state"].as_str().unwrap_or("");
        e["mac"] == HOST_MAC && e["master"] == "bhbr5000" && (state.is_empty() || state == "stale")
    })
}

#[test]
fn learned_mac_is_reported_and_withdrawn_on_ageing_and_on_move() {
    let ns = setup();
    let mut run = Running::start(&ns, desired(vec![]));
    wait_for("initial pass", Duration::from_secs(5), || {
        ns.link("eth1").is_some_and(|l| l["master"] == "bhbr5000")
    });
    // Kernel bridges accept any ageing time; 3 s keeps the test short.
    ns.set_ageing_time("bhbr5000", "300");
    let host_mac: MacAddr = HOST_MAC.parse().unwrap();

    let t0 = Instant::now();
    host_speaks(&ns);
    let ev = run.next_event(Duration::from_secs(5));
    assert_eq!(
        ev,
        Some(LearnEvent::Learned {
            vni: 5000,
            mac: host_mac,
            port: "eth1".into()
        })
    );
    eprintln!("learned reported {:?} after the ping started", t0.elapsed());
    assert!(bridge_has_learned(&ns), "witness: {:?}", ns.fdb("eth1"));

    // Ageing: the host stays silent, the bridge forgets it, so do we.
    let ev = run.next_event(Duration::from_secs(15));
    assert_eq!(
        ev,
        Some(LearnEvent::Withdrawn {
            vni: 5000,
            mac: host_mac
        })
    );
    eprintln!(
        "withdrawn {:?} after the ping started (ageing 3 s)",
        t0.elapsed()
    );
    assert!(!bridge_has_learned(&ns));

    // Learned again, then the controller declares that MAC remote: our static
    // entry on the VXLAN port moves it, and the local report is withdrawn.
    host_speaks(&ns);
    assert!(matches!(
        run.next_event(Duration::from_secs(5)),
        Some(LearnEvent::Learned { .. })
    ));
    run.set(desired(vec![RemoteMac {
        mac: host_mac,
        vtep: PEER,
        ip: None,
    }]));
    assert_eq!(
        run.next_event(Duration::from_secs(5)),
        Some(LearnEvent::Withdrawn {
            vni: 5000,
            mac: host_mac
        })
    );
    assert!(run.next_event(Duration::from_millis(300)).is_none());
    drop(run);
}

#[test]
fn restart_reports_what_is_already_learned() {
    // Level-based: a fresh loop learns the current table from its first dump.
    let ns = setup();
    let run = Running::start(&ns, desired(vec![]));
    wait_for("initial pass", Duration::from_secs(5), || {
        ns.link("eth1").is_some_and(|l| l["master"] == "bhbr5000")
    });
    drop(run);
    host_speaks(&ns);
    wait_for("bridge learned", Duration::from_secs(5), || {
        bridge_has_learned(&ns)
    });
    let mut run = Running::start(&ns, desired(vec![]));
    assert_eq!(
        run.next_event(Duration::from_secs(5)),
        Some(LearnEvent::Learned {
            vni: 5000,
            mac: HOST_MAC.parse().unwrap(),
            port: "eth1".into()
        })
    );
    drop(run);
}
