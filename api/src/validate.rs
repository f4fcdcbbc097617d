//! Checks an object needs to pass on its own (ranges, names, address classes).
//!
//! Every problem is reported, each naming its field (`members[1].mep_id`), so an
//! operator fixes a request in one round trip. Checks that depend on other
//! objects (uniqueness, references) live in [`crate::state_machine`] because
//! they must run at apply time, where concurrent requests are serialised.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::{
    Attachment, BfdParams, Binding, ElectionState, GatewayGroup, LearnedMac, LogicalSwitch,
    NodeKind, Object, RemoteMac, SwitchStatus, TransportNode, TunnelStatus,
};

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Dotted path of the offending field, e.g. `bfd.detect_mult`.
    pub field: String,
    /// Human-readable reason.
    pub reason: String,
}

impl ValidationError {
    /// Builds an error.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Largest VNI: 24 bits.
pub const MAX_VNI: u32 = 16_777_215;
/// Largest usable VLAN id (4095 is reserved).
pub const MAX_VLAN: u16 = 4094;
/// Longest name; fits a DNS label and an OVSDB string comfortably.
pub const MAX_NAME_LEN: usize = 63;
/// Most tunnel IPs a switch status may list; real switches report one or two.
pub const MAX_SWITCH_TUNNEL_IPS: usize = 16;
/// Most ports a switch status may list; above any top-of-rack switch's port count.
pub const MAX_SWITCH_PORTS: usize = 1024;

/// Collects errors while walking an object.
#[derive(Debug, Default)]
struct Errors(Vec<ValidationError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.0.push(ValidationError::new(field, reason));
    }
}

/// Validates one object on its own; `Err` holds every problem found.
pub fn validate_object(obj: &Object) -> Result<(), Vec<ValidationError>> {
    let mut e = Errors::default();
    match obj {
        Object::LogicalSwitch(o) => logical_switch(o, &mut e),
        Object::TransportNode(o) => transport_node(o, &mut e),
        Object::GatewayGroup(o) => gateway_group(o, &mut e),
        Object::Binding(o) => binding(o, &mut e),
        Object::RemoteMac(o) => remote_mac(o, &mut e),
        Object::LearnedMac(o) => learned_mac(o, &mut e),
        Object::TunnelStatus(o) => tunnel_status(o, &mut e),
        Object::ElectionState(o) => election_state(o, &mut e),
        Object::SwitchStatus(o) => switch_status(o, &mut e),
    }
    if e.0.is_empty() { Ok(()) } else { Err(e.0) }
}

/// Checks a name: 1..=63 chars, ASCII letter or digit first, then letters, digits, '.', '_', '-'.
///
/// The restricted alphabet keeps names safe inside keys (which join parts
/// with '/'), URL paths and OVSDB strings without escaping.
pub fn check_name(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!("longer than {MAX_NAME_LEN} characters"));
    }
    let first = value.as_bytes()[0];
    if !first.is_ascii_alphanumeric() {
        return Err("must start with an ASCII letter or digit".into());
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "character {c:?} not allowed (use letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

fn name(field: &str, value: &str, e: &mut Errors) {
    if let Err(r) = check_name(value) {
        e.push(field, r);
    }
}

/// Checks that an IPv4 address can be a tunnel endpoint (a unicast host address).
pub fn check_unicast(ip: Ipv4Addr) -> Result<(), String> {
    if ip.is_unspecified() {
        Err("must not be 0.0.0.0".into())
    } else if ip.is_broadcast() {
        Err("must not be the broadcast address".into())
    } else if ip.is_multicast() {
        Err("must be unicast, not multicast (224.0.0.0/4)".into())
    } else if ip.is_loopback() {
        Err("must not be a loopback address".into())
    } else if ip.octets()[0] >= 240 {
        Err("must not be in reserved 240.0.0.0/4".into())
    } else if ip.octets()[0] == 0 {
        Err("must not be in 0.0.0.0/8".into())
    } else {
        Ok(())
    }
}

fn unicast(field: &str, ip: Ipv4Addr, e: &mut Errors) {
    if let Err(r) = check_unicast(ip) {
        e.push(field, r);
    }
}

fn logical_switch(o: &LogicalSwitch, e: &mut Errors) {
    name("name", &o.name, e);
    if o.vni == 0 || o.vni > MAX_VNI {
        e.push("vni", format!("must be in 1..={MAX_VNI}"));
    }
}

fn bfd(o: &BfdParams, e: &mut Errors) {
    for (field, v) in [
        ("bfd.min_tx_ms", o.min_tx_ms),
        ("bfd.min_rx_ms", o.min_rx_ms),
    ] {
        if !(10..=60_000).contains(&v) {
            e.push(field, "must be in 10..=60000 ms");
        }
    }
    if o.detect_mult == 0 {
        e.push("bfd.detect_mult", "must be in 1..=255");
    }
}

/// Checks an OVSDB target: `tcp:IP:PORT`, `ssl:IP:PORT` or `unix:/absolute/path`.
pub fn check_ovsdb_target(t: &str) -> Result<(), String> {
    if let Some(path) = t.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err("unix: target needs an absolute path".into());
        }
        return Ok(());
    }
    let rest = t
        .strip_prefix("tcp:")
        .or_else(|| t.strip_prefix("ssl:"))
        .ok_or_else(|| "must start with tcp:, ssl: or unix:".to_string())?;
    let (ip, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| "tcp:/ssl: target needs IP:PORT".to_string())?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() {
        return Err("target IP must be a unicast address".into());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err(format!("{port:?} is not a port in 1..=65535")),
    }
}

fn transport_node(o: &TransportNode, e: &mut Errors) {
    name("name", &o.name, e);
    unicast("tunnel_ip", o.tunnel_ip, e);
    bfd(&o.bfd, e);
    match (&o.kind, &o.ovsdb_target) {
        (NodeKind::HardwareSwitch, None) => {
            e.push("ovsdb_target", "required for a hardware_switch")
        }
        (NodeKind::HardwareSwitch, Some(t)) => {
            if let Err(r) = check_ovsdb_target(t) {
                e.push("ovsdb_target", r);
            }
        }
        (_, Some(_)) => e.push("ovsdb_target", "only a hardware_switch has an OVSDB target"),
        (_, None) => {}
    }
}

/// Checks a Linux interface name: 1..=15 bytes, no '/', no whitespace, not "." or "..".
pub fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 {
        return Err("must be 1..=15 characters (IFNAMSIZ)".into());
    }
    if s == "." || s == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if s.chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err("must not contain '/', ':' or whitespace".into());
    }
    Ok(())
}

fn gateway_group(o: &GatewayGroup, e: &mut Errors) {
    name("name", &o.name, e);
    unicast("vtep_ip", o.vtep_ip, e);
    if let Err(r) = check_ifname(&o.physical_interface) {
        e.push("physical_interface", r);
    }
    if o.members.is_empty() {
        e.push("members", "must have at least one member");
    }
    let mut nodes = HashSet::new();
    let mut meps = HashSet::new();
    for (i, m) in o.members.iter().enumerate() {
        name(&format!("members[{i}].node"), &m.node, e);
        if !nodes.insert(m.node.as_str()) {
            e.push(format!("members[{i}].node"), "duplicate member");
        }
        if !(1..=8191).contains(&m.mep_id) {
            e.push(format!("members[{i}].mep_id"), "must be in 1..=8191");
        } else if !meps.insert(m.mep_id) {
            e.push(format!("members[{i}].mep_id"), "duplicate MEPID in group");
        }
    }
    const INTERVALS: [u32; 6] = [10, 100, 1000, 10_000, 60_000, 600_000];
    if !INTERVALS.contains(&o.election.interval_ms) {
        e.push(
            "election.interval_ms",
            "must be an 802.1ag CCM interval: 10, 100, 1000, 10000, 60000 or 600000",
        );
    }
    if o.election.md_level > 7 {
        e.push("election.md_level", "must be in 0..=7");
    }
    let ma = &o.election.ma_name;
    if ma.is_empty() || ma.len() > 44 || !ma.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        e.push(
            "election.ma_name",
            "must be 1..=44 printable ASCII characters",
        );
    }
}

fn vlan(v: u16, e: &mut Errors) {
    if v > MAX_VLAN {
        e.push("vlan", format!("must be in 0..={MAX_VLAN} (0 = untagged)"));
    }
}

fn binding(o: &Binding, e: &mut Errors) {
    name("name", &o.name, e);
    name("logical_switch", &o.logical_switch, e);
    match &o.attachment {
        Attachment::HardwareSwitch { switch, port } => {
            name("attachment.switch", switch, e);
            if port.is_empty() || port.len() > 255 || port.chars().any(|c| c.is_control()) {
                e.push(
                    "attachment.port",
                    "must be 1..=255 characters without control characters",
                );
            }
        }
        Attachment::GatewayGroup { group } => name("attachment.group", group, e),
    }
    vlan(o.vlan, e);
}

fn host_mac(field: &str, m: crate::model::MacAddr, e: &mut Errors) {
    if m.is_multicast() {
        e.push(field, "must be a unicast MAC (group bit clear)");
    } else if m.is_zero() {
        e.push(field, "must not be 00:00:00:00:00:00");
    }
}

fn host_ip(field: &str, ip: Option<Ipv4Addr>, e: &mut Errors) {
    if let Some(ip) = ip {
        unicast(field, ip, e);
    }
}

fn remote_mac(o: &RemoteMac, e: &mut Errors) {
    name("logical_switch", &o.logical_switch, e);
    host_mac("mac", o.mac, e);
    host_ip("ip", o.ip, e);
    name("transport_node", &o.transport_node, e);
}

fn learned_mac(o: &LearnedMac, e: &mut Errors) {
    name("reporter", &o.reporter, e);
    name("logical_switch", &o.logical_switch, e);
    host_mac("mac", o.mac, e);
    host_ip("ip", o.ip, e);
}

fn tunnel_status(o: &TunnelStatus, e: &mut Errors) {
    name("reporter", &o.reporter, e);
    unicast("remote_ip", o.remote_ip, e);
    if o.diag.as_ref().is_some_and(|d| d.len() > 255) {
        e.push("diag", "longer than 255 characters");
    }
}

fn election_state(o: &ElectionState, e: &mut Errors) {
    name("group", &o.group, e);
    name("member", &o.member, e);
    if let Some(l) = &o.leader {
        name("leader", l, e);
    }
}

fn switch_status(o: &SwitchStatus, e: &mut Errors) {
    name("switch", &o.switch, e);
    if o.faults.len() > 64 || o.faults.iter().any(|f| f.len() > 255) {
        e.push("faults", "at most 64 entries of at most 255 characters");
    }
    if let Some(n) = &o.reported_name {
        if n.is_empty() || n.len() > 255 {
            e.push("reported_name", "1 to 255 characters");
        }
    }
    if o.tunnel_ips.len() > MAX_SWITCH_TUNNEL_IPS {
        e.push(
            "tunnel_ips",
            format!("at most {MAX_SWITCH_TUNNEL_IPS} entries"),
        );
    }
    if o.ports.len() > MAX_SWITCH_PORTS {
        e.push("ports", format!("at most {MAX_SWITCH_PORTS} entries"));
    }
    let mut seen = HashSet::new();
    for (i, p) in o.ports.iter().enumerate() {
        if p.name.is_empty() || p.name.len() > 255 {
            e.push(format!("ports[{i}].name"), "1 to 255 characters");
        } else if !seen.insert(p.name.as_str()) {
            e.push(format!("ports[{i}].name"), "duplicate port name");
        }
        if p.faults.len() > 64 {
            e.push(format!("ports[{i}].faults"), "at most 64 entries");
        }
        for (j, f) in p.faults.iter().enumerate() {
            if f.len() > 255 {
                e.push(
                    format!("ports[{i}].faults[{j}]"),
                    "longer than 255 characters",
                );
            }
        }
        if p.vlan_bindings.len() > usize::from(MAX_VLAN) + 1 {
            e.push(
                format!("ports[{i}].vlan_bindings"),
                format!("at most {} entries", usize::from(MAX_VLAN) + 1),
            );
        }
        for (j, v) in p.vlan_bindings.iter().enumerate() {
            if *v > MAX_VLAN {
                e.push(
                    format!("ports[{i}].vlan_bindings[{j}]"),
                    format!("VLAN 0..={MAX_VLAN}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn fields(o: Object) -> Vec<String> {
        match validate_object(&o) {
            Ok(()) => vec![],
            Err(v) => v.into_iter().map(|e| e.field).collect(),
        }
    }

    fn ls(name: &str, vni: u32) -> Object {
        Object::LogicalSwitch(LogicalSwitch {
            name: name.into(),
            vni,
            replication: Replication::ServiceNode,
        })
    }

    fn node(kind: NodeKind, ip: [u8; 4], target: Option<&str>) -> TransportNode {
        TransportNode {
            name: "n1".into(),
            kind,
            tunnel_ip: Ipv4Addr::from(ip),
            bfd: BfdParams::default(),
            ovsdb_target: target.map(Into::into),
        }
    }

    #[test]
    fn vni_range() {
        assert!(fields(ls("a", 1)).is_empty());
        assert!(fields(ls("a", MAX_VNI)).is_empty());
        assert_eq!(fields(ls("a", 0)), ["vni"]);
        assert_eq!(fields(ls("a", MAX_VNI + 1)), ["vni"]);
    }

    #[test]
    fn names() {
        for ok in ["a", "web-1", "A.b_c", &"x".repeat(63)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "ä", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        // Every problem is reported, not just the first.
        assert_eq!(fields(ls("bad name", 0)), ["name", "vni"]);
    }

    #[test]
    fn tunnel_ip_must_be_unicast() {
        let ok = node(NodeKind::Hypervisor, [198, 18, 0, 1], None);
        assert!(fields(Object::TransportNode(ok)).is_empty());
        for ip in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [224, 0, 0, 1],
            [239, 1, 1, 1],
            [127, 0, 0, 1],
            [240, 0, 0, 1],
            [0, 1, 2, 3],
        ] {
            let n = node(NodeKind::Hypervisor, ip, None);
            assert_eq!(fields(Object::TransportNode(n)), ["tunnel_ip"], "{ip:?}");
        }
    }

    #[test]
    fn ovsdb_target_rules() {
        let hw = |t: Option<&str>| {
            fields(Object::TransportNode(node(
                NodeKind::HardwareSwitch,
                [198, 18, 0, 9],
                t,
            )))
        };
        assert!(hw(Some("tcp:198.18.1.5:6640")).is_empty());
        assert!(hw(Some("ssl:198.18.1.5:6640")).is_empty());
        assert!(hw(Some("unix:/run/openvswitch/db.sock")).is_empty());
        for bad in [
            None,
            Some("tcp:198.18.1.5"),
            Some("tcp:198.18.1.5:0"),
            Some("tcp:198.18.1.5:70000"),
            Some("tcp:host:6640"),
            Some("http://x"),
            Some("unix:relative"),
            Some("tcp:0.0.0.0:6640"),
        ] {
            assert_eq!(hw(bad), ["ovsdb_target"], "{bad:?}");
        }
        let hv = node(NodeKind::Gateway, [198, 18, 0, 9], Some("tcp:1.2.3.4:1"));
        assert_eq!(fields(Object::TransportNode(hv)), ["ovsdb_target"]);
    }

    #[test]
    fn bfd_params() {
        let mut n = node(NodeKind::Hypervisor, [198, 18, 0, 1], None);
        n.bfd = BfdParams {
            enabled: true,
            min_tx_ms: 9,
            min_rx_ms: 60_001,
            detect_mult: 0,
        };
        assert_eq!(
            fields(Object::TransportNode(n)),
            ["bfd.min_tx_ms", "bfd.min_rx_ms", "bfd.detect_mult"]
        );
    }

    fn group() -> GatewayGroup {
        GatewayGroup {
            name: "g1".into(),
            members: vec![
                GroupMember {
                    node: "gw1".into(),
                    mep_id: 1,
                    priority: 10,
                },
                GroupMember {
                    node: "gw2".into(),
                    mep_id: 2,
                    priority: 5,
                },
            ],
            vtep_ip: Ipv4Addr::new(198, 18, 0, 100),
            physical_interface: "eth1".into(),
            election: ElectionParams {
                interval_ms: 100,
                md_level: 5,
                ma_name: "rack1-vlan".into(),
            },
        }
    }

    #[test]
    fn gateway_group_fields() {
        assert!(fields(Object::GatewayGroup(group())).is_empty());
        let mut g = group();
        g.members[1].node = "gw1".into();
        g.members[1].mep_id = 1;
        g.members[0].mep_id = 0;
        g.vtep_ip = Ipv4Addr::new(224, 0, 0, 5);
        g.physical_interface = "a-very-long-interface".into();
        g.election.interval_ms = 50;
        g.election.md_level = 8;
        g.election.ma_name = String::new();
        assert_eq!(
            fields(Object::GatewayGroup(g)),
            [
                "vtep_ip",
                "physical_interface",
                "members[0].mep_id",
                "members[1].node",
                "election.interval_ms",
                "election.md_level",
                "election.ma_name"
            ]
        );
        let mut g = group();
        g.members.clear();
        g.physical_interface = "eth/1".into();
        assert_eq!(
            fields(Object::GatewayGroup(g)),
            ["physical_interface", "members"]
        );
    }

    #[test]
    fn binding_fields() {
        let b = |vlan, att| {
            fields(Object::Binding(Binding {
                name: "b1".into(),
                logical_switch: "ls".into(),
                attachment: att,
                vlan,
            }))
        };
        let hw = |port: &str| Attachment::HardwareSwitch {
            switch: "tor1".into(),
            port: port.into(),
        };
        assert!(b(0, hw("Ethernet1/1")).is_empty());
        assert!(b(4094, Attachment::GatewayGroup { group: "g".into() }).is_empty());
        assert_eq!(b(4095, hw("p")), ["vlan"]);
        assert_eq!(b(1, hw("")), ["attachment.port"]);
        assert_eq!(
            b(
                1,
                Attachment::GatewayGroup {
                    group: "g/x".into()
                }
            ),
            ["attachment.group"]
        );
    }

    #[test]
    fn remote_mac_fields() {
        let r = |mac: &str, ip: Option<[u8; 4]>| {
            fields(Object::RemoteMac(RemoteMac {
                logical_switch: "ls".into(),
                mac: mac.parse().unwrap(),
                ip: ip.map(Ipv4Addr::from),
                transport_node: "hv1".into(),
            }))
        };
        assert!(r("02:00:00:00:00:01", Some([192, 0, 2, 10])).is_empty());
        assert_eq!(r("01:00:5e:00:00:01", None), ["mac"]);
        assert_eq!(r("ff:ff:ff:ff:ff:ff", None), ["mac"]);
        assert_eq!(r("00:00:00:00:00:00", None), ["mac"]);
        assert_eq!(r("02:00:00:00:00:01", Some([224, 0, 0, 1])), ["ip"]);
    }

    #[test]
    fn every_name_field_is_checked() {
        let bad = "no/slash";
        let mut n = node(NodeKind::Hypervisor, [198, 18, 0, 1], None);
        n.name = bad.into();
        assert_eq!(fields(Object::TransportNode(n)), ["name"]);
        let mut g = group();
        g.name = bad.into();
        g.members[0].node = bad.into();
        assert_eq!(fields(Object::GatewayGroup(g)), ["name", "members[0].node"]);
        let b = Binding {
            name: bad.into(),
            logical_switch: bad.into(),
            attachment: Attachment::HardwareSwitch {
                switch: bad.into(),
                port: "p\n".into(),
            },
            vlan: 0,
        };
        assert_eq!(
            fields(Object::Binding(b)),
            [
                "name",
                "logical_switch",
                "attachment.switch",
                "attachment.port"
            ]
        );
        let r = RemoteMac {
            logical_switch: bad.into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            ip: None,
            transport_node: bad.into(),
        };
        assert_eq!(
            fields(Object::RemoteMac(r)),
            ["logical_switch", "transport_node"]
        );
        let s = SwitchStatus {
            switch: bad.into(),
            connected: false,
            faults: vec![],
            reported_name: None,
            tunnel_ips: vec![],
            ports: vec![],
        };
        assert_eq!(fields(Object::SwitchStatus(s)), ["switch"]);
    }

    #[test]
    fn interface_and_ma_names() {
        for ok in ["eth1", "enp3s0f1", "bond0.100"] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a:b", "a b", "sixteen-chars-xx"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
        let mut g = group();
        g.election.ma_name = "tab\there".into();
        assert_eq!(fields(Object::GatewayGroup(g)), ["election.ma_name"]);
        let mut g = group();
        g.election.ma_name = "x".repeat(45);
        assert_eq!(fields(Object::GatewayGroup(g)), ["election.ma_name"]);
    }

    #[test]
    fn observed_fields() {
        let t = TunnelStatus {
            reporter: "hv 1".into(),
            remote_ip: Ipv4Addr::new(0, 0, 0, 0),
            state: BfdState::Up,
            diag: None,
        };
        assert_eq!(fields(Object::TunnelStatus(t)), ["reporter", "remote_ip"]);
        let l = LearnedMac {
            reporter: "tor1".into(),
            logical_switch: "".into(),
            mac: "01:00:00:00:00:00".parse().unwrap(),
            ip: None,
        };
        assert_eq!(fields(Object::LearnedMac(l)), ["logical_switch", "mac"]);
        let s = ElectionState {
            group: "g".into(),
            member: "gw1".into(),
            role: ElectionRole::Leader,
            leader: Some("/".into()),
        };
        assert_eq!(fields(Object::ElectionState(s)), ["leader"]);
        let s = SwitchStatus {
            switch: "tor1".into(),
            connected: true,
            faults: vec!["x".repeat(256)],
            reported_name: Some(String::new()),
            tunnel_ips: vec![Ipv4Addr::new(198, 18, 0, 30)],
            ports: vec![
                PortStatus {
                    name: "p0".into(),
                    faults: vec!["x".repeat(256)],
                    vlan_bindings: vec![0, 4095],
                },
                PortStatus {
                    name: "p0".into(),
                    faults: vec![],
                    vlan_bindings: vec![],
                },
                PortStatus {
                    name: String::new(),
                    faults: vec![],
                    vlan_bindings: vec![],
                },
            ],
        };
        assert_eq!(
            fields(Object::SwitchStatus(s)),
            [
                "faults",
                "reported_name",
                "ports[0].faults[0]",
                "ports[0].vlan_bindings[1]",
                "ports[1].name",
                "ports[2].name"
            ]
        );
    }

    #[test]
    fn switch_status_old_shape_still_loads() {
        // Raft logs and snapshots written before tunnel_ips/ports existed.
        let old = r#"{"switch":"tor1","connected":true,"faults":["f"]}"#;
        let s: SwitchStatus = serde_json::from_str(old).unwrap();
        assert_eq!(s.faults, ["f"]);
        assert!(s.reported_name.is_none() && s.tunnel_ips.is_empty() && s.ports.is_empty());
        // And the new fields stay out of what it writes until they are set.
        assert_eq!(serde_json::to_string(&s).unwrap(), old);
    }
}
