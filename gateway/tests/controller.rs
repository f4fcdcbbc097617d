//! `bridgehead-gateway --controller` against a real `bridgehead-controller`
//! (with tokens: the daemon runs with its node's token), both inside one
//! throw-away namespace: objects created through the client appear in the
//! kernel; a MAC the bridge learns on the physical port appears in the store
//! as a LearnedMac under the daemon's lease and is withdrawn when it ages
//! out; the store-lag metric settles at 0; with the controller stopped the
//! kernel stays as it is, and once it is back the changes made since are
//! applied and a MAC learned meanwhile is written; a revoked lease is
//! noticed at the next renewal and the learned MACs are rewritten.
//!
//! The controller binary is another package's: `api::testing` asks the
//! cargo that runs the test (`$CARGO`) to build it into this test's own
//! target directory (a no-op when fresh).
//!
//! Run: `cargo test -p gateway --features root-tests --test controller` (as root).
#![cfg(feature = "root-tests")]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use api::client::{Client, ClientConfig};
use api::model::{
    Attachment, BfdParams, Binding, ElectionParams, GatewayGroup, GroupMember, Key, Kind,
    LogicalSwitch, NodeKind, Object, RemoteMac, Replication, Stored, TransportNode,
};
use api::testing::{Controller, ControllerCmd, build_controller};
use gateway::netns;
use support::{Killed, Ns, is_self, metrics, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_bridgehead-gateway");
const HOST_MAC: &str = "02:00:00:00:aa:01";
const ADMIN_TOKEN: &str = "admin-token-0123456789";
const NODE_TOKEN: &str = "gw1-node-token-0123456789";
const LIMIT: Duration = Duration::from_secs(10);

/// Starts the controller inside `ns` with the tokens file (its log named
/// after `listen`); returns it and its address.
fn start_controller(ns: &Ns, bin: &Path, dir: &Path, listen: &str) -> (Controller, String) {
    let c = ControllerCmd::new(bin, dir.join("store"))
        .wrapped_in(["ip", "netns", "exec", ns.name.as_str()])
        .listen(listen)
        .tokens(dir.join("tokens.toml"))
        .args(["--progress-ms", "200"])
        .log(dir.join(format!("controller-{}.log", listen.replace(':', "_"))))
        .spawn();
    let addr = c.addr.to_string();
    (c, addr)
}

fn write_tokens(dir: &Path) {
    std::fs::write(
        dir.join("tokens.toml"),
        format!(
            "[[tokens]]\nname = \"test\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
             [[tokens]]\nname = \"gw1-daemon\"\nrole = \"node\"\nnode = \"gw1\"\ntoken = \"{NODE_TOKEN}\"\n"
        ),
    )
    .unwrap();
}

/// Runs `f` with an admin client inside the namespace (where the controller listens).
fn api<T, F, Fut>(ns: &Ns, addr: &str, f: F) -> T
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let cfg = ClientConfig::new(format!("http://{addr}")).token(ADMIN_TOKEN);
    netns::run_in(&ns.name, move || async move {
        f(Client::new(cfg).unwrap()).await
    })
    .unwrap()
}

fn create(ns: &Ns, addr: &str, objects: Vec<Object>) {
    api(ns, addr, |c| async move {
        for o in objects {
            c.put(&o).await.unwrap_or_else(|e| panic!("{o:?}: {e}"));
        }
    })
}

fn learned_in_store(ns: &Ns, addr: &str) -> Vec<Stored> {
    api(ns, addr, |c| async move {
        c.list(Some(Kind::LearnedMac))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    })
}

fn remote_mac(mac: &str, ip: &str) -> Object {
    Object::RemoteMac(RemoteMac {
        logical_switch: "web".into(),
        mac: mac.parse().unwrap(),
        ip: Some(ip.parse().unwrap()),
        transport_node: "hv1".into(),
    })
}

fn desired_objects() -> Vec<Object> {
    let node = |name: &str, kind, ip: &str| {
        Object::TransportNode(TransportNode {
            name: name.into(),
            kind,
            tunnel_ip: ip.parse().unwrap(),
            bfd: BfdParams::default(),
            ovsdb_target: None,
        })
    };
    vec![
        Object::LogicalSwitch(LogicalSwitch {
            name: "web".into(),
            vni: 5000,
            replication: Replication::SourceNode,
        }),
        node("gw1", NodeKind::Gateway, "198.18.0.20"),
        node("hv1", NodeKind::Hypervisor, "198.18.0.10"),
        Object::GatewayGroup(GatewayGroup {
            name: "gg1".into(),
            members: vec![GroupMember {
                node: "gw1".into(),
                mep_id: 1,
                priority: 0,
            }],
            vtep_ip: "198.18.0.100".parse().unwrap(),
            physical_interface: "eth1".into(),
            election: ElectionParams {
                interval_ms: 100,
                md_level: 0,
                ma_name: "gg1".into(),
            },
        }),
        Object::Binding(Binding {
            name: "web-gg1".into(),
            logical_switch: "web".into(),
            attachment: Attachment::GatewayGroup {
                group: "gg1".into(),
            },
            vlan: 0,
        }),
        remote_mac("02:00:00:00:00:21", "192.0.2.21"),
    ]
}

/// (MAC, dst) of bhvx5000's `self` entries, flood entries included.
fn vxlan_fdb(ns: &Ns) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = ns
        .fdb("bhvx5000")
        .iter()
        .filter(|e| is_self(e))
        .filter_map(|e| Some((e["mac"].as_str()?.into(), e["dst"].as_str()?.into())))
        .collect();
    v.sort();
    v
}

fn fdb_of(macs: &[&str]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = macs
        .iter()
        .map(|m| (m.to_string(), "198.18.0.10".to_string()))
        .collect();
    v.push(("00:00:00:00:00:00".into(), "198.18.0.10".into()));
    v.sort();
    v
}

fn metric(ns: &Ns, name: &str) -> Option<f64> {
    metrics(ns)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn follows_the_store_reports_learned_macs_and_survives_the_controller() {
    let controller = build_controller();
    // The underlay address and the group VTEP IP, held by the only member.
    let ns = Ns::with_host("gwc", &["198.18.0.20/24", "198.18.0.100/24"], HOST_MAC);
    let dir = tempfile::tempdir().unwrap();
    write_tokens(dir.path());
    let (ctl, addr) = start_controller(&ns, &controller, dir.path(), "127.0.0.1:0");
    create(&ns, &addr, desired_objects());

    let log = dir.path().join("gateway.log");
    let mut gw = Killed(Some(
        Command::new(BIN)
            .args(["--netns", &ns.name])
            .args(["--controller", &format!("http://{addr}")])
            .args([
                "--token",
                NODE_TOKEN,
                "--node",
                "gw1",
                "--underlay-dev",
                "eth0",
            ])
            .args(["--lease-ttl", "3s", "--resync", "2s", "--debounce", "20ms"])
            .env("RUST_LOG", "info,gateway=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    ));
    let gw_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // 1. The store's objects are in the kernel: sourced from the group IP.
    wait_for("programmed from the store", LIMIT, || {
        vxlan_fdb(&ns) == fdb_of(&["02:00:00:00:00:21"])
    });
    let vx = ns.link("bhvx5000").unwrap();
    assert_eq!(vx["linkinfo"]["info_data"]["local"], "198.18.0.100");
    assert!(ns.link("eth1").is_some_and(|l| l["master"] == "bhbr5000"));
    create(
        &ns,
        &addr,
        vec![remote_mac("02:00:00:00:00:22", "192.0.2.22")],
    );
    wait_for("a new remote MAC is applied", LIMIT, || {
        vxlan_fdb(&ns) == fdb_of(&["02:00:00:00:00:21", "02:00:00:00:00:22"])
    });

    // 2. A learned MAC goes to the store under the daemon's lease...
    ns.set_ageing_time("bhbr5000", "300");
    ns.try_exec(&["ping", "-c", "1", "-W", "1", "-I", "eth1p", "192.0.2.99"]);
    let took = wait_for("learned MAC in the store", LIMIT, || {
        learned_in_store(&ns, &addr).iter().any(|s| {
            matches!(&s.object, Object::LearnedMac(m)
                if m.reporter == "gw1" && m.logical_switch == "web" && m.mac.to_string() == HOST_MAC)
                && s.lease.is_some()
        })
    });
    eprintln!("learned MAC reached the store in {took:?}");
    assert_eq!(
        metric(&ns, "bridgehead_gateway_learned_macs_published"),
        Some(1.0)
    );
    // ...and is withdrawn when it ages out (3 s here).
    let took = wait_for("aged-out MAC withdrawn from the store", LIMIT, || {
        learned_in_store(&ns, &addr).is_empty()
    });
    eprintln!("aged-out MAC withdrawn from the store {took:?} after it was seen there");
    ns.set_ageing_time("bhbr5000", "30000");

    // 3. Store lag settles at 0 with the head known from bookmarks.
    wait_for("store lag 0", LIMIT, || {
        metric(&ns, "bridgehead_gateway_store_lag_revisions") == Some(0.0)
            && metric(&ns, "bridgehead_gateway_applied_revision").is_some_and(|r| r > 0.0)
    });
    let head = metric(&ns, "bridgehead_gateway_store_head_revision").unwrap();
    assert!(head >= metric(&ns, "bridgehead_gateway_applied_revision").unwrap());

    // 4. Headless: the controller goes away; the kernel stays as it is.
    let before = vxlan_fdb(&ns);
    ctl.kill9();
    wait_for("source down", LIMIT, || {
        metric(&ns, "bridgehead_gateway_desired_source_up") == Some(0.0)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(vxlan_fdb(&ns), before, "kernel changed while headless");
    assert!(ns.link("eth1").is_some_and(|l| l["master"] == "bhbr5000"));
    // A MAC learned while headless is written once the controller is back.
    ns.try_exec(&["ping", "-c", "1", "-W", "1", "-I", "eth1p", "192.0.2.98"]);

    // 5. Back on the same address and store; changes made since are applied.
    let (_ctl2, addr2) = start_controller(&ns, &controller, dir.path(), &addr);
    assert_eq!(addr2, addr);
    api(&ns, &addr, |c| async move {
        c.delete(&Key::new(Kind::RemoteMac, "web/02:00:00:00:00:21"))
            .await
            .unwrap();
    });
    create(
        &ns,
        &addr,
        vec![remote_mac("02:00:00:00:00:23", "192.0.2.23")],
    );
    let took = wait_for(
        "changes made after the restart applied",
        Duration::from_secs(20),
        || vxlan_fdb(&ns) == fdb_of(&["02:00:00:00:00:22", "02:00:00:00:00:23"]),
    );
    eprintln!("resumed and applied {took:?} after the controller came back");
    wait_for("learned MAC written after reconnecting", LIMIT, || {
        learned_in_store(&ns, &addr)
            .iter()
            .any(|s| matches!(&s.object, Object::LearnedMac(m) if m.mac.to_string() == HOST_MAC))
    });
    // A lease the controller no longer has (revoked here; expired after a
    // long partition) is noticed at the next renewal: new lease, MACs rewritten.
    let lease_of = |ns: &Ns| {
        learned_in_store(ns, &addr)
            .iter()
            .find(|s| matches!(&s.object, Object::LearnedMac(m) if m.mac.to_string() == HOST_MAC))
            .and_then(|s| s.lease)
    };
    let old = lease_of(&ns).unwrap();
    api(&ns, &addr, move |c| async move {
        c.revoke_lease(old).await.unwrap()
    });
    let took = wait_for("learned MAC rewritten under a new lease", LIMIT, || {
        lease_of(&ns).is_some_and(|l| l != old)
    });
    eprintln!("revoked lease noticed and learned MACs rewritten in {took:?}");
    assert!(
        gw_log().contains("controller reachable again"),
        "{}",
        gw_log()
    );
    let neigh = ns.ip(&["neigh", "show", "dev", "bhbr5000"]);
    assert!(
        neigh.contains("192.0.2.23") && !neigh.contains("192.0.2.21"),
        "{neigh}"
    );
    gw.stop();
}
