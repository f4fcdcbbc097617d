//! The observed state a running reconciler reports, against the real
//! ovsdb-server with vtep-ctl playing the switch's own agent (what ovs-vtep
//! or a ToR's firmware writes: local MACs, faults, tunnels with BFD status).
#![cfg(feature = "root-tests")]

mod support;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use api::model::{BfdState, LearnedMac, Object};
use support::{OvsdbServer, until_watched, web_desired};
use vtep_sync::desired::DesiredState;
use vtep_sync::observed::{Observed, diff};
use vtep_sync::reconciler::{Reconciler, ReconcilerConfig};

const T: Duration = Duration::from_secs(20);

/// tor1 knows its own tunnel IP.
fn desired() -> DesiredState {
    DesiredState {
        local_tunnel_ips: BTreeSet::from([Ipv4Addr::new(198, 18, 0, 1)]),
        ..web_desired()
    }
}

async fn until_observed(
    r: &Reconciler,
    what: &str,
    pred: impl Fn(&Observed) -> bool,
) -> Arc<Observed> {
    until_watched(r.watch_observed(), T, what, |o| pred(o), || r.observed()).await
}

fn learned(o: &Observed) -> Vec<LearnedMac> {
    o.learned_macs.values().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_macs_faults_and_tunnel_state_reach_the_observed_state() {
    let mut srv = OvsdbServer::start();
    srv.add_tor1(&["p1"]);
    let mut cfg = ReconcilerConfig::new("tor1", srv.unix_target());
    cfg.reconnect_max = Duration::from_millis(300);
    let r = Reconciler::start(cfg, desired());
    let o = until_observed(&r, "connected, nothing learned", |o| {
        o.switch_status.as_ref().is_some_and(|s| s.connected) && o.switch.is_some()
    })
    .await;
    assert!(o.learned_macs.is_empty() && o.tunnels.is_empty(), "{o:#?}");
    let sw = o.switch.as_ref().unwrap();
    assert_eq!(sw.name, "tor1");
    assert_eq!(sw.tunnel_ips, BTreeSet::from(["198.18.0.1".to_owned()]));
    let before = o.objects();

    // The switch learns a bare-metal MAC (as ovs-vtep does) and an IP for it.
    let ls = until_observed(&r, "web bound on p1", |o| {
        o.switch
            .as_ref()
            .is_some_and(|s| s.ports["p1"].bindings.get(&10).map(String::as_str) == Some("web"))
    })
    .await;
    drop(ls);
    srv.vtep_ctl(&["add-ucast-local", "web", "02:00:00:00:aa:01", "198.18.0.1"]);
    srv.set_local_mac_ip("02:00:00:00:aa:01", "192.0.2.50");
    let o = until_observed(&r, "learned MAC with its IP", |o| {
        learned(o).iter().any(|m| m.ip.is_some())
    })
    .await;
    assert_eq!(
        learned(&o),
        vec![LearnedMac {
            reporter: "tor1".into(),
            logical_switch: "web".into(),
            mac: "02:00:00:00:aa:01".parse().unwrap(),
            ip: Some(Ipv4Addr::new(192, 0, 2, 50)),
        }]
    );

    // Faults on the switch and a port; a tunnel toward hv1 running BFD.
    srv.vtep_ctl(&[
        "set",
        "Physical_Switch",
        "tor1",
        "switch_fault_status=fan_failure",
    ]);
    srv.vtep_ctl(&["set", "Physical_Port", "p1", "port_fault_status=invalid"]);
    // The local locator exists since add-ucast-local; the remote one since our plan.
    srv.add_tunnel(
        "198.18.0.1",
        "198.18.0.11",
        &["enabled=true", "state=up", "diagnostic=\"No Diagnostic\""],
    );
    let o = until_observed(&r, "faults and a tunnel", |o| {
        !o.tunnels.is_empty()
            && o.switch_status.as_ref().is_some_and(|s| {
                !s.faults.is_empty() && s.ports.iter().any(|p| !p.faults.is_empty())
            })
    })
    .await;
    // Switch faults at the switch, port faults under their port.
    let st = o.switch_status.as_ref().unwrap();
    assert_eq!(st.faults, vec!["fan_failure".to_owned()]);
    let p1 = st.ports.iter().find(|p| p.name == "p1").unwrap();
    assert_eq!(p1.faults, vec!["invalid".to_owned()]);
    let t = o.tunnels.values().next().unwrap();
    assert_eq!(t.remote_ip, Ipv4Addr::new(198, 18, 0, 11));
    assert_eq!(t.state, BfdState::Up);
    assert_eq!(t.diag.as_deref(), Some("No Diagnostic"));

    // What a store writer would send since the first look: three puts.
    let d = diff(&before, &o.objects());
    let kinds: Vec<String> = d.puts.iter().map(|p| p.key().to_string()).collect();
    assert_eq!(
        kinds,
        vec![
            "learned-macs/tor1/web/02:00:00:00:aa:01",
            "tunnel-status/tor1/198.18.0.11",
            "switch-status/tor1",
        ]
    );
    assert!(d.deletes.is_empty());

    // The switch goes away: the MAC stays as last seen, connected turns false.
    srv.kill();
    let o2 = until_observed(&r, "disconnected", |o| {
        o.switch_status.as_ref().is_some_and(|s| !s.connected)
    })
    .await;
    assert_eq!(learned(&o2), learned(&o));
    let d = diff(&o.objects(), &o2.objects());
    assert!(d.deletes.is_empty(), "{d:?}");
    assert!(matches!(&d.puts[..], [Object::SwitchStatus(s)] if !s.connected));
    // Fault statuses and bfd_status are ephemeral columns (vtep.ovsschema):
    // a restarted switch database has them empty until its agent writes
    // them again, so the tunnel status goes and the faults clear; the
    // learned MAC (a persistent row) stays.
    srv.restart();
    let o3 = until_observed(&r, "reconnected", |o| {
        o.switch_status.as_ref().is_some_and(|s| s.connected)
    })
    .await;
    assert_eq!(learned(&o3), learned(&o));
    assert!(o3.tunnels.is_empty(), "{o3:#?}");
    let st3 = o3.switch_status.as_ref().unwrap();
    assert!(st3.faults.is_empty());
    assert!(st3.ports.iter().all(|p| p.faults.is_empty()), "{st3:?}");

    // The MAC ages out on the switch: it goes from the observed state.
    srv.vtep_ctl(&["del-ucast-local", "web", "02:00:00:00:aa:01"]);
    let o4 = until_observed(&r, "MAC aged out", |o| o.learned_macs.is_empty()).await;
    let d = diff(&o3.objects(), &o4.objects());
    assert!(d.puts.is_empty(), "{d:#?}");
    assert_eq!(d.deletes.len(), 1, "{d:#?}");
    assert_eq!(
        d.deletes[0].to_string(),
        "learned-macs/tor1/web/02:00:00:00:aa:01"
    );
    r.stop().await;
}
