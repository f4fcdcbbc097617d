//! The reconciler against a real kernel, each test in its own network
//! namespace. `ip`/`bridge` are used only as an independent observer and as
//! the "external tamperer"; everything Bridgehead does goes over netlink.
//!
//! Run: `cargo test -p gateway --features root-tests` (as root).
#![cfg(feature = "root-tests")]

mod support;

use std::net::Ipv4Addr;
use std::ops::Deref;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gateway::desired::{NEXTHOP_PROTOCOL, NH_MEMBER_BASE, nh_group_id};
use gateway::diff::Action;
use gateway::kernel::{Kernel, KernelError};
use gateway::netns;
use gateway::reconciler::{self, PassReport};
use gateway::{DesiredNode, DesiredSwitch, MacAddr, RemoteMac, Replication};
use serde_json::Value;
use support::{Killed, Running, bind_eth1, is_self, one_switch, run, timers};

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const V20: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const V30: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 30);
const SN1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SN2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);

/// A namespace with `eth0` (198.18.0.10/24, veth peer inside too) and `eth1`; deleted on drop.
/// Its own observers read the kernel's answers the way these tests compare them.
struct Ns(support::Ns);

impl Deref for Ns {
    type Target = support::Ns;
    fn deref(&self) -> &support::Ns {
        &self.0
    }
}

impl Ns {
    /// A namespace with only `lo` (up).
    fn bare() -> Ns {
        Ns(support::Ns::bare("gw"))
    }

    fn new() -> Ns {
        let ns = Ns::bare();
        ns.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]);
        ns.ip(&[
            "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
        ]);
        for dev in ["eth0", "eth0p", "eth1", "eth1p"] {
            ns.ip(&["link", "set", dev, "up"]);
        }
        ns.ip(&["addr", "add", "198.18.0.10/24", "dev", "eth0"]);
        ns
    }

    fn bridge(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.name, "bridge"];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Like `bridge` but a failure (device not there yet) reads as no output.
    fn bridge_soft(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "bridge"])
            .args(args)
            .output()
            .unwrap();
        if out.status.success() {
            String::from_utf8(out.stdout).unwrap()
        } else {
            String::new()
        }
    }

    fn json(&self, out: String) -> Vec<Value> {
        if out.trim().is_empty() {
            return vec![];
        }
        match serde_json::from_str(&out) {
            Ok(Value::Array(v)) => v,
            other => panic!("unexpected JSON {other:?} from {out}"),
        }
    }

    /// `bridge fdb show dev DEV` as (mac, "dst IP" | "nhid N") pairs, self entries only.
    fn fdb(&self, dev: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .json(self.bridge_soft(&["-j", "-d", "fdb", "show", "dev", dev]))
            .into_iter()
            .filter(is_self)
            .filter_map(|e| {
                let mac = e["mac"].as_str()?.to_string();
                let to = if let Some(d) = e["dst"].as_str() {
                    format!("dst {d}")
                } else if let Some(n) = e["nhid"].as_u64() {
                    format!("nhid {n}")
                } else {
                    return None;
                };
                Some((mac, to))
            })
            .collect();
        v.sort();
        v
    }

    /// Static bridge-level (`master`) FDB MACs on port `dev`.
    fn port_fdb(&self, dev: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .json(self.bridge_soft(&["-j", "-d", "fdb", "show", "dev", dev]))
            .into_iter()
            .filter(|e| e.get("master").is_some() && e["state"] == "static")
            .filter_map(|e| e["mac"].as_str().map(str::to_string))
            .collect();
        v.sort();
        v
    }

    /// `ip nexthop show` as (id, protocol, "via IP" | "group a/b", fdb).
    fn nexthops(&self) -> Vec<(u64, String, String, bool)> {
        let mut v: Vec<_> = self
            .json(self.ip(&["-j", "nexthop", "show"]))
            .into_iter()
            .map(|n| {
                let what = if let Some(g) = n["gateway"].as_str() {
                    format!("via {g}")
                } else {
                    let ids: Vec<String> = n["group"]
                        .as_array()
                        .map(|g| g.iter().map(|m| m["id"].to_string()).collect())
                        .unwrap_or_default();
                    format!("group {}", ids.join("/"))
                };
                let proto = n["protocol"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| n["protocol"].to_string());
                (
                    n["id"].as_u64().unwrap(),
                    proto,
                    what,
                    n["fdb"].is_null().not_null_flag(&n),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn neighbours(&self, dev: &str) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = self
            .json(self.ip(&["-j", "neigh", "show", "dev", dev]))
            .into_iter()
            .map(|n| {
                (
                    n["dst"].as_str().unwrap_or("").to_string(),
                    n["lladdr"].as_str().unwrap_or("").to_string(),
                    n["state"].to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// One dump + diff + apply inside the namespace.
    fn reconcile(&self, desired: &DesiredNode) -> PassReport {
        let d = desired.clone();
        netns::run_in(&self.name, move || async move {
            let mut k = Kernel::connect().expect("netlink");
            reconciler::reconcile_once(&mut k, &d).await.expect("dump")
        })
        .expect("netns")
    }
}

/// `fdb` is a JSON flag printed as `"fdb": null` by iproute2 when set.
trait FdbFlag {
    fn not_null_flag(self, n: &Value) -> bool;
}
impl FdbFlag for bool {
    fn not_null_flag(self, n: &Value) -> bool {
        n.as_object().is_some_and(|o| o.contains_key("fdb"))
    }
}

/// `bridge monitor fdb` in the namespace, killed by pid (also on panic).
struct Monitor(Killed);

impl Monitor {
    fn start(ns: &Ns) -> Monitor {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "bridge", "monitor", "fdb"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("bridge monitor");
        // Let it subscribe before anything happens.
        std::thread::sleep(Duration::from_millis(200));
        Monitor(Killed(Some(child)))
    }

    fn stop(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        self.0.stop()
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn desired() -> DesiredNode {
    DesiredNode {
        revision: 0,
        local_tunnel_ip: LOCAL,
        underlay_dev: Some("eth0".into()),
        switches: vec![
            DesiredSwitch {
                local_tunnel_ip: None,
                vni: 5000,
                replication: Replication::SourceNode {
                    remote_vteps: vec![V20, V30],
                },
                remote_macs: vec![
                    RemoteMac {
                        mac: mac("02:00:00:00:00:21"),
                        vtep: V20,
                        ip: Some(ip("192.0.2.21")),
                    },
                    RemoteMac {
                        mac: mac("02:00:00:00:00:31"),
                        vtep: V30,
                        ip: None,
                    },
                ],
                ports: vec![],
                vm_ports: vec![],
            },
            DesiredSwitch {
                local_tunnel_ip: None,
                vni: 5001,
                replication: Replication::ServiceNode {
                    service_nodes: vec![SN1, SN2],
                },
                remote_macs: vec![RemoteMac {
                    mac: mac("02:00:00:00:01:21"),
                    vtep: V20,
                    ip: None,
                }],
                ports: bind_eth1(0),
                vm_ports: vec![],
            },
        ],
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

/// Nothing failed and nothing in the desired state was a problem.
fn assert_clean(r: &PassReport) {
    assert!(
        r.failed.is_empty() && r.problems.is_empty(),
        "{:#?} {:#?}",
        r.failed,
        r.problems
    );
}

fn assert_converged(ns: &Ns, d: &DesiredNode) {
    let again = ns.reconcile(d);
    assert!(
        again.planned.is_empty(),
        "not converged, would still do {:#?}",
        again.planned
    );
}

fn check_initial(ns: &Ns) {
    let vx = ns.link("bhvx5000").expect("bhvx5000");
    let info = &vx["linkinfo"];
    assert_eq!(info["info_kind"], "vxlan");
    assert_eq!(info["info_data"]["id"], 5000);
    assert_eq!(info["info_data"]["local"], "198.18.0.10");
    assert_eq!(info["info_data"]["port"], 4789);
    assert_eq!(info["info_data"]["learning"], false);
    assert_eq!(info["info_data"]["link"], "eth0");
    assert_eq!(vx["master"], "bhbr5000");
    assert_eq!(vx["ifalias"], "bridgehead:vxlan:vni=5000");
    assert_eq!(info["info_slave_data"]["neigh_suppress"], true);
    assert!(vx["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let br = ns.link("bhbr5000").unwrap();
    assert_eq!(br["linkinfo"]["info_kind"], "bridge");
    assert_eq!(br["ifalias"], "bridgehead:bridge:vni=5000");
    assert_eq!(
        ns.link("bhvx5001").unwrap()["linkinfo"]["info_slave_data"]["neigh_suppress"],
        false
    );
    assert_eq!(ns.link("eth1").unwrap()["master"], "bhbr5001");

    assert_eq!(
        ns.fdb("bhvx5000"),
        vec![
            (s("00:00:00:00:00:00"), s("dst 198.18.0.20")),
            (s("00:00:00:00:00:00"), s("dst 198.18.0.30")),
            (s("02:00:00:00:00:21"), s("dst 198.18.0.20")),
            (s("02:00:00:00:00:31"), s("dst 198.18.0.30")),
        ]
    );
    assert_eq!(
        ns.port_fdb("bhvx5000"),
        vec![s("02:00:00:00:00:21"), s("02:00:00:00:00:31")]
    );
    assert_eq!(ns.port_fdb("bhvx5001"), vec![s("02:00:00:00:01:21")]);
    let g = nh_group_id(5001);
    assert_eq!(
        ns.fdb("bhvx5001"),
        vec![
            (s("00:00:00:00:00:00"), format!("nhid {g}")),
            (s("02:00:00:00:01:21"), s("dst 198.18.0.20"))
        ]
    );
    let (m1, m2) = (NH_MEMBER_BASE as u64, NH_MEMBER_BASE as u64 + 1);
    let proto = NEXTHOP_PROTOCOL.to_string();
    assert_eq!(
        ns.nexthops(),
        vec![
            (g as u64, proto.clone(), format!("group {m1}/{m2}"), true),
            (m1, proto.clone(), s("via 198.18.0.100"), true),
            (m2, proto, s("via 198.18.0.101"), true),
        ]
    );
    let n = ns.neighbours("bhbr5000");
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(
        (n[0].0.as_str(), n[0].1.as_str()),
        ("192.0.2.21", "02:00:00:00:00:21")
    );
    assert!(n[0].2.contains("PERMANENT"), "{n:?}");
}

#[test]
fn create_update_delete() {
    let ns = Ns::new();
    let mut d = desired();
    let r = ns.reconcile(&d);
    assert_clean(&r);
    check_initial(&ns);
    assert_converged(&ns, &d);

    // Update: add a MAC, remove one, move one, shrink the flood list, flip 5001 to source_node.
    let sw = &mut d.switches[0];
    sw.remote_macs.retain(|m| m.mac != mac("02:00:00:00:00:31"));
    sw.remote_macs.push(RemoteMac {
        mac: mac("02:00:00:00:00:41"),
        vtep: V30,
        ip: Some(ip("192.0.2.41")),
    });
    sw.remote_macs[0].vtep = V30; // 02:..:21 moves from .20 to .30
    sw.replication = Replication::SourceNode {
        remote_vteps: vec![V30],
    };
    d.switches[1].replication = Replication::SourceNode {
        remote_vteps: vec![V20],
    };
    // An independent witness of what changed in the kernel during the pass.
    let monitor = Monitor::start(&ns);
    let r = ns.reconcile(&d);
    let events = monitor.stop();
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    // Unchanged entries never disappear; the moved MAC is replaced in place.
    for e in &events {
        assert!(
            !e.contains("02:00:00:00:01:21"),
            "unchanged entry touched: {e}"
        );
        assert!(
            !(e.starts_with("Deleted") && e.contains("02:00:00:00:00:21")),
            "moved MAC was deleted: {e}"
        );
    }
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("02:00:00:00:00:21 dev bhvx5000 dst 198.18.0.30")),
        "{events:#?}"
    );
    let text: Vec<String> = r.planned.iter().map(|a| a.to_string()).collect();
    let g = nh_group_id(5001);
    let (m1, m2) = (NH_MEMBER_BASE, NH_MEMBER_BASE + 1);
    // Exactly the differences, nothing wiped and rebuilt.
    assert_eq!(
        text,
        vec![
            s("fdb del 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.20"),
            s("fdb del 02:00:00:00:00:31 dev bhvx5000 dst 198.18.0.30"),
            s("fdb del 02:00:00:00:00:31 dev bhvx5000 master"),
            format!("fdb del 00:00:00:00:00:00 dev bhvx5001 nhid {g}"),
            format!("nexthop del id {g}"),
            format!("nexthop del id {m1}"),
            format!("nexthop del id {m2}"),
            s("fdb replace 02:00:00:00:00:21 dev bhvx5000 dst 198.18.0.30 self permanent"),
            s("fdb replace 02:00:00:00:00:41 dev bhvx5000 dst 198.18.0.30 self permanent"),
            s("fdb replace 02:00:00:00:00:41 dev bhvx5000 master static"),
            s("neigh replace 192.0.2.41 lladdr 02:00:00:00:00:41 dev bhbr5000 nud permanent"),
            s("fdb append 00:00:00:00:00:00 dev bhvx5001 dst 198.18.0.20 self permanent"),
        ]
    );
    assert_eq!(
        ns.fdb("bhvx5000"),
        vec![
            (s("00:00:00:00:00:00"), s("dst 198.18.0.30")),
            (s("02:00:00:00:00:21"), s("dst 198.18.0.30")),
            (s("02:00:00:00:00:41"), s("dst 198.18.0.30")),
        ]
    );
    assert_eq!(
        ns.fdb("bhvx5001"),
        vec![
            (s("00:00:00:00:00:00"), s("dst 198.18.0.20")),
            (s("02:00:00:00:01:21"), s("dst 198.18.0.20"))
        ]
    );
    assert_eq!(ns.nexthops(), vec![]);
    assert_eq!(ns.neighbours("bhbr5000").len(), 2);
    assert_converged(&ns, &d);

    // Back to service_node with a new flood list: members and group come back.
    d.switches[1].replication = Replication::ServiceNode {
        service_nodes: vec![SN2],
    };
    let r = ns.reconcile(&d);
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    assert_eq!(
        ns.fdb("bhvx5001")[0],
        (s("00:00:00:00:00:00"), format!("nhid {g}"))
    );
    assert_converged(&ns, &d);

    // Delete switch 5001: its devices go, the bound NIC is released, not deleted.
    d.switches.truncate(1);
    let r = ns.reconcile(&d);
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    assert!(ns.link("bhvx5001").is_none() && ns.link("bhbr5001").is_none());
    let eth1 = ns.link("eth1").expect("eth1 must survive");
    assert!(eth1.get("master").is_none(), "{eth1}");
    assert_eq!(ns.nexthops(), vec![]);
    assert!(ns.link("bhvx5000").is_some());
    assert_converged(&ns, &d);
}

/// The foreign objects of `foreign_objects_are_never_touched` as the observers see
/// them: vxf's FDB, the nexthops, brf's neighbours, vxf's master.
type ForeignState = (
    Vec<(String, String)>,
    Vec<(u64, String, String, bool)>,
    Vec<(String, String, String)>,
    Value,
);

fn foreign_state(ns: &Ns) -> ForeignState {
    (
        ns.fdb("vxf"),
        ns.nexthops(),
        ns.neighbours("brf"),
        ns.link("vxf").unwrap()["master"].clone(),
    )
}

#[test]
fn foreign_objects_are_never_touched() {
    let ns = Ns::new();
    ns.ip(&["link", "add", "brf", "type", "bridge"]);
    ns.ip(&[
        "link",
        "add",
        "vxf",
        "type",
        "vxlan",
        "id",
        "77",
        "dstport",
        "4789",
        "local",
        "198.18.0.10",
        "nolearning",
    ]);
    ns.ip(&["link", "set", "vxf", "master", "brf"]);
    ns.bridge(&[
        "fdb",
        "add",
        "02:00:00:00:77:77",
        "dev",
        "vxf",
        "dst",
        "198.18.0.20",
        "self",
        "permanent",
    ]);
    ns.ip(&["nexthop", "add", "id", "7", "via", "198.18.0.20", "fdb"]);
    ns.ip(&[
        "neigh",
        "add",
        "192.0.2.77",
        "lladdr",
        "02:00:00:00:77:77",
        "dev",
        "brf",
        "nud",
        "permanent",
    ]);
    let before = foreign_state(&ns);

    let d = desired();
    let r = ns.reconcile(&d);
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    let empty = DesiredNode {
        revision: 0,
        switches: vec![],
        ..d
    };
    let r = ns.reconcile(&empty);
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    for a in &r.planned {
        let t = a.to_string();
        assert!(
            !t.contains("brf") && !t.contains("vxf") && !t.contains("id 7 "),
            "{t}"
        );
    }
    assert!(ns.link("bhvx5000").is_none() && ns.link("bhbr5001").is_none());
    let after = foreign_state(&ns);
    assert_eq!(before, after);
    assert_eq!(after.1.len(), 1);
}

#[test]
fn vlan_binding_without_8021q_fails_clearly_and_the_rest_is_applied() {
    let ns = Ns::new();
    let mut d = desired();
    d.switches[1].ports = bind_eth1(100);
    let r = ns.reconcile(&d);
    let vlan_failures: Vec<&(Action, KernelError)> = r
        .failed
        .iter()
        .filter(|(a, _)| matches!(a, Action::CreateVlan { .. }))
        .collect();
    let kernel_has_vlan = vlan_failures.is_empty();
    if kernel_has_vlan {
        // A kernel with 8021q: the sub-interface exists and is a port of our bridge.
        assert!(r.failed.is_empty(), "{:#?}", r.failed);
        let name = gateway::desired::vlan_name(
            ns.link("eth1").unwrap()["ifindex"].as_u64().unwrap() as u32,
            100,
        );
        assert_eq!(ns.link(&name).unwrap()["master"], "bhbr5001");
        return;
    }
    let (_, err) = vlan_failures[0];
    assert!(matches!(err, KernelError::MissingFeature { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("802.1Q") && msg.contains("8021q") && msg.contains("vlan 0"),
        "{msg}"
    );
    // Only the vlan's own follow-ups fail (alias/master/up of a device that does not exist).
    assert!(
        r.failed.iter().all(|(a, _)| a.to_string().contains("bhq")),
        "{:#?}",
        r.failed
    );
    check_initial_without_eth1(&ns);
}

#[test]
fn arp_for_a_remote_ip_is_answered_locally() {
    // eth1p stands for a host on the bound physical segment.
    let ns = Ns::new();
    let mut d = desired();
    d.switches[0].ports = bind_eth1(0);
    d.switches[1].ports.clear();
    let r = ns.reconcile(&d);
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth1p"]);
    // The reply can only come from the bridge's suppression: 02:..:21 lives behind a VTEP
    // that does not exist here, so nothing else could answer.
    ns.try_exec(&["ping", "-c", "1", "-W", "1", "-I", "eth1p", "192.0.2.21"]);
    let n = ns.neighbours("eth1p");
    assert!(
        n.iter()
            .any(|(ip, mac, _)| ip == "192.0.2.21" && mac == "02:00:00:00:00:21"),
        "ARP not answered from the neighbour table: {n:?}"
    );
}

fn check_initial_without_eth1(ns: &Ns) {
    assert_eq!(ns.link("bhvx5001").unwrap()["master"], "bhbr5001");
    assert_eq!(ns.fdb("bhvx5000").len(), 4);
    assert!(ns.link("eth1").unwrap().get("master").is_none());
}

/// Deletes the remote entry of 02:..:21 behind the reconciler's back.
fn delete_remote_21(ns: &Ns) {
    ns.bridge(&[
        "fdb",
        "del",
        "02:00:00:00:00:21",
        "dev",
        "bhvx5000",
        "dst",
        "198.18.0.20",
        "self",
    ]);
}

/// Polls `f` until it holds; panics after 5 s.
fn wait_for(what: &str, f: impl FnMut() -> bool) -> Duration {
    support::wait_for(what, Duration::from_secs(5), f)
}

#[test]
fn external_tampering_is_repaired_by_notifications() {
    let ns = Ns::new();
    let d = desired();
    // Long resync: the repairs below must come from the notification path.
    let config = timers(Duration::from_secs(3600), Duration::from_millis(20));
    let run = Running::start_with(&ns, d.clone(), config);
    wait_for("initial pass", || {
        ns.fdb("bhvx5000").len() == 4 && ns.fdb("bhvx5001").len() == 2
    });
    check_initial(&ns);

    delete_remote_21(&ns);
    let t = wait_for("fdb del", || {
        ns.fdb("bhvx5000")
            .contains(&(s("02:00:00:00:00:21"), s("dst 198.18.0.20")))
    });
    eprintln!("fdb entry deleted externally: repaired in {t:?}");

    ns.bridge(&[
        "fdb",
        "replace",
        "02:00:00:00:00:31",
        "dev",
        "bhvx5000",
        "dst",
        "198.18.0.99",
        "self",
        "permanent",
    ]);
    let t = wait_for("fdb changed", || {
        ns.fdb("bhvx5000")
            .contains(&(s("02:00:00:00:00:31"), s("dst 198.18.0.30")))
    });
    eprintln!("fdb entry changed externally: repaired in {t:?}");

    ns.ip(&["link", "set", "bhvx5000", "nomaster"]);
    let t = wait_for("nomaster", || {
        ns.link("bhvx5000").is_some_and(|l| {
            l["master"] == "bhbr5000" && l["linkinfo"]["info_slave_data"]["neigh_suppress"] == true
        })
    });
    eprintln!("vxlan released from bridge: repaired in {t:?}");

    ns.ip(&["link", "del", "bhvx5000"]);
    let t = wait_for("link del", || {
        ns.fdb("bhvx5000").len() == 4
            && ns
                .link("bhvx5000")
                .is_some_and(|l| l["master"] == "bhbr5000")
    });
    eprintln!("vxlan deleted: repaired (device + 4 FDB entries) in {t:?}");

    ns.ip(&["neigh", "del", "192.0.2.21", "dev", "bhbr5000"]);
    let t = wait_for("neigh del", || ns.neighbours("bhbr5000").len() == 1);
    eprintln!("neighbour deleted: repaired in {t:?}");

    let g = nh_group_id(5001);
    ns.ip(&["nexthop", "del", "id", &NH_MEMBER_BASE.to_string()]);
    let t = wait_for("nexthop del", || {
        ns.nexthops().len() == 3
            && ns
                .fdb("bhvx5001")
                .contains(&(s("00:00:00:00:00:00"), format!("nhid {g}")))
    });
    eprintln!("member nexthop deleted: repaired in {t:?}");

    ns.ip(&["link", "set", "eth1", "nomaster"]);
    wait_for("port released", || {
        ns.link("eth1").is_some_and(|l| l["master"] == "bhbr5001")
    });

    check_initial(&ns);
    // Desired-state change through the channel is applied too.
    let mut d2 = d.clone();
    d2.switches.truncate(1);
    run.set(d2);
    wait_for("switch removed", || ns.link("bhbr5001").is_none());
    assert!(run.passes() >= 8);
    assert_eq!(
        run.stats.actions_failed.load(Ordering::Relaxed),
        0,
        "{:#?}",
        run.reports.borrow().failed
    );
    drop(run);
}

/// Numbers for the issue tracker: programming speed against the `bridge -batch`
/// reference in PEERS.md (10,000 FDB entries ≈ 0.1 s).
#[test]
fn scale_10k_remote_macs() {
    let ns = Ns::new();
    let n = 10_000u32;
    let mut d = desired();
    d.switches.truncate(1);
    d.switches[0].remote_macs = (0..n)
        .map(|i| RemoteMac {
            mac: MacAddr([0x02, 0x10, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]),
            vtep: if i % 2 == 0 { V20 } else { V30 },
            ip: (i < 250).then(|| Ipv4Addr::new(198, 51, 100, 1 + i as u8)),
        })
        .collect();
    let t = Instant::now();
    let r = ns.reconcile(&d);
    let create = t.elapsed();
    assert!(
        r.failed.is_empty(),
        "{:#?}",
        &r.failed[..r.failed.len().min(3)]
    );
    let t = Instant::now();
    let again = ns.reconcile(&d);
    let converged = t.elapsed();
    assert!(again.planned.is_empty());
    d.switches[0].remote_macs[7].vtep = V20;
    let t = Instant::now();
    let one = ns.reconcile(&d);
    let one_change = t.elapsed();
    assert_eq!(one.planned.len(), 1, "{:?}", one.planned);
    assert_eq!(ns.fdb("bhvx5000").len(), n as usize + 2);
    eprintln!(
        "{n} remote MACs: first pass {} actions in {create:?}; converged pass (dump+diff, 0 actions) {converged:?}; one MAC moved {one_change:?}",
        r.planned.len()
    );
}

/// Two kernel VTEPs joined by an underlay veth, each with a host port
/// (`eth1p`, 192.0.2.x) bound untagged: frames really cross VXLAN.
#[test]
fn two_vteps_carry_traffic_in_both_replication_modes() {
    let a = Ns::bare();
    let b = Ns::bare();
    run(&[
        "ip", "link", "add", "eth0", "netns", &a.name, "type", "veth", "peer", "name", "eth0",
        "netns", &b.name,
    ]);
    for (ns, addr, host_mac, host_ip) in [
        (&a, "198.18.0.10/24", "02:00:00:00:aa:01", "192.0.2.1/24"),
        (&b, "198.18.0.20/24", "02:00:00:00:bb:01", "192.0.2.2/24"),
    ] {
        ns.ip(&["addr", "add", addr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        ns.ip(&[
            "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p",
        ]);
        ns.ip(&["link", "set", "eth1p", "address", host_mac]);
        ns.ip(&["link", "set", "eth1p", "mtu", "1450"]); // 1500 underlay - 50 B VXLAN overhead
        ns.ip(&["addr", "add", host_ip, "dev", "eth1p"]);
        for dev in ["eth1", "eth1p"] {
            ns.ip(&["link", "set", dev, "up"]);
        }
    }
    let node = |local: Ipv4Addr, peer: Ipv4Addr, peer_host: &str, replication: Replication| {
        // No IP: ARP must be flooded, which is what this test exercises.
        let peer_host = RemoteMac {
            mac: mac(peer_host),
            vtep: peer,
            ip: None,
        };
        one_switch(local, replication, vec![peer_host], bind_eth1(0))
    };
    let da = node(
        LOCAL,
        V20,
        "02:00:00:00:bb:01",
        Replication::SourceNode {
            remote_vteps: vec![V20],
        },
    );
    let db = node(
        V20,
        LOCAL,
        "02:00:00:00:aa:01",
        Replication::SourceNode {
            remote_vteps: vec![LOCAL],
        },
    );
    for (ns, d) in [(&a, &da), (&b, &db)] {
        let r = ns.reconcile(d);
        assert_clean(&r);
    }
    let ping = |what: &str| {
        a.ip(&["neigh", "flush", "dev", "eth1p"]);
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &a.name,
                "ping",
                "-c",
                "2",
                "-W",
                "1",
                "-I",
                "eth1p",
                "192.0.2.2",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: ping over VXLAN failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    ping("source_node flooding");

    // A floods through an FDB nexthop group whose only member is B, acting as
    // A's service node: the ARP request reaches B only if the nhid path works.
    let da2 = node(
        LOCAL,
        V20,
        "02:00:00:00:bb:01",
        Replication::ServiceNode {
            service_nodes: vec![V20],
        },
    );
    let r = a.reconcile(&da2);
    assert!(r.failed.is_empty(), "{:#?}", r.failed);
    assert_eq!(
        a.fdb("bhvx5000")[0],
        (
            s("00:00:00:00:00:00"),
            format!("nhid {}", nh_group_id(5000))
        )
    );
    ping("service_node flooding via nexthop group");
}

#[test]
fn invalid_desired_state_changes_nothing() {
    let ns = Ns::new();
    let good = desired();
    assert!(ns.reconcile(&good).failed.is_empty());
    let mut bad = good.clone();
    bad.switches[1].vni = 5000; // duplicate VNI
    bad.switches.push(DesiredSwitch {
        local_tunnel_ip: None,
        vni: 0x0100_0000, // > 24 bits
        replication: Replication::SourceNode {
            remote_vteps: vec![],
        },
        remote_macs: vec![],
        ports: vec![],
        vm_ports: vec![],
    });
    let r = ns.reconcile(&bad);
    assert!(r.planned.is_empty());
    let errs: Vec<String> = r.invalid.iter().map(|e| e.to_string()).collect();
    assert!(errs.iter().any(|e| e.contains("duplicate VNI")), "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.contains("16777216") && e.contains("1..=16777215")),
        "{errs:?}"
    );
    // Still exactly the previous good state.
    check_initial(&ns);
}

#[test]
fn periodic_resync_repairs_even_without_notifications() {
    // A minute of debounce: a notification alone cannot trigger a pass within
    // the test, so the repair below is the resync's (the path that covers
    // notifications lost to a socket overrun).
    let ns = Ns::new();
    let config = timers(Duration::from_millis(300), Duration::from_secs(60));
    let run = Running::start_with(&ns, desired(), config);
    wait_for("initial pass", || ns.fdb("bhvx5000").len() == 4);
    let before = run.passes();
    delete_remote_21(&ns);
    let t = wait_for("resync repair", || ns.fdb("bhvx5000").len() == 4);
    assert!(run.passes() > before);
    eprintln!("repaired by periodic resync in {t:?}");
    drop(run);
}
