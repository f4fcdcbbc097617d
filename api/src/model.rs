//! The resource model: desired state written by operators and observed state
//! written by daemons under a lease.
//!
//! Every object has a [`Key`] (`kind/name`); the key is what the store, the
//! watch stream and the REST paths use. Wire types use
//! `deny_unknown_fields` so that a typo in a request is an error, not a
//! silently ignored field. Syntax that serde can check (IPv4 addresses, MAC
//! addresses, enum values) is checked while parsing; everything else
//! (ranges, names, uniqueness, references) is checked by
//! [`crate::validate`] and by the state machine at apply time.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Ethernet address; its own type so that syntax is checked once, at parse time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// True for group (multicast/broadcast) addresses, which can never be a VM's MAC.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// True for 00:00:00:00:00:00, which no host uses.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address syntax (want six hex pairs separated by ':', e.g. 02:00:00:00:00:01)")]
pub struct MacParseError;

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or(MacParseError)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How BUM traffic of a logical switch is replicated (the hardware_vtep `replication_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// Send BUM to a service node, which replicates it (the default: scales with VTEP count).
    #[default]
    ServiceNode,
    /// The ingress VTEP replicates to every other VTEP itself.
    SourceNode,
}

/// One L2 overlay segment, identified on the wire by its VNI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalSwitch {
    /// Unique name; the key.
    pub name: String,
    /// VXLAN network identifier, 1..=16777215, unique among logical switches.
    pub vni: u32,
    /// BUM replication mode.
    #[serde(default)]
    pub replication: Replication,
}

/// What a transport node is; decides which daemon serves it and what may reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A Linux hypervisor running the gateway daemon in host mode.
    Hypervisor,
    /// A Linux gateway box bridging VXLAN to VLANs.
    Gateway,
    /// A BUM replication node.
    ServiceNode,
    /// A ToR switch managed over OVSDB hardware_vtep.
    HardwareSwitch,
}

/// BFD parameters for tunnels toward a node (RFC 5880 terms, in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfdParams {
    /// Whether tunnels to this node run BFD at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Desired min TX interval, 10..=60000 ms.
    #[serde(default = "default_bfd_interval")]
    pub min_tx_ms: u32,
    /// Required min RX interval, 10..=60000 ms.
    #[serde(default = "default_bfd_interval")]
    pub min_rx_ms: u32,
    /// Detection multiplier, 1..=255 (0 is invalid).
    #[serde(default = "default_detect_mult")]
    pub detect_mult: u8,
}

fn default_true() -> bool {
    true
}
fn default_bfd_interval() -> u32 {
    1000
}
fn default_detect_mult() -> u8 {
    3
}

impl Default for BfdParams {
    fn default() -> Self {
        BfdParams {
            enabled: true,
            min_tx_ms: default_bfd_interval(),
            min_rx_ms: default_bfd_interval(),
            detect_mult: default_detect_mult(),
        }
    }
}

/// A VTEP endpoint of the overlay: hypervisor, gateway, service node or hardware switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportNode {
    /// Unique name; the key.
    pub name: String,
    /// What the node is.
    pub kind: NodeKind,
    /// Unicast underlay IP that terminates its tunnels; unique among nodes and group VTEP IPs.
    pub tunnel_ip: Ipv4Addr,
    /// BFD parameters for tunnels to this node.
    #[serde(default)]
    pub bfd: BfdParams,
    /// OVSDB target (`tcp:IP:PORT`, `ssl:IP:PORT`, `unix:PATH`); required for, and only for, hardware switches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ovsdb_target: Option<String>,
}

/// One gateway in a gateway group, with its CFM identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// Name of a transport node of kind `gateway`.
    pub node: String,
    /// 802.1ag MEP identifier, 1..=8191, unique in the group.
    pub mep_id: u16,
    /// Election priority; higher wins, ties broken by MEPID.
    #[serde(default)]
    pub priority: u8,
}

/// CFM election parameters shared by all members of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionParams {
    /// CCM interval in ms; one of the 802.1ag intervals 10, 100, 1000, 10000, 60000, 600000.
    #[serde(default = "default_ccm_interval")]
    pub interval_ms: u32,
    /// Maintenance domain level, 0..=7.
    #[serde(default)]
    pub md_level: u8,
    /// Maintenance association name, 1..=44 printable ASCII characters.
    pub ma_name: String,
}

fn default_ccm_interval() -> u32 {
    100
}

/// Gateways bridging the same physical L2 network; one elected leader holds the group VTEP IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayGroup {
    /// Unique name; the key.
    pub name: String,
    /// At least one member; node names unique.
    pub members: Vec<GroupMember>,
    /// Unicast VTEP IP held by the leader; unique among nodes and groups.
    pub vtep_ip: Ipv4Addr,
    /// Linux interface facing the physical L2 network (1..=15 chars, no '/', no whitespace).
    pub physical_interface: String,
    /// Election parameters.
    pub election: ElectionParams,
}

/// What a binding attaches a logical switch to.
///
/// On the wire `{"type": "hardware_switch", "switch", "port"}` or
/// `{"type": "gateway_group", "group"}`. Deserialised by hand rather than
/// with serde's internally tagged enums, which buffer the object and so
/// lose the path of a bad field (`attachment` instead of `attachment.port`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Attachment {
    /// A port of a hardware switch (a transport node of kind `hardware_switch`).
    HardwareSwitch {
        /// Transport node name.
        switch: String,
        /// Physical port name as the switch's OVSDB names it.
        port: String,
    },
    /// The physical interface of a gateway group.
    GatewayGroup {
        /// Gateway group name.
        group: String,
    },
}

/// The `type` tag of an [`Attachment`].
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AttachmentType {
    HardwareSwitch,
    GatewayGroup,
}

impl<'de> Deserialize<'de> for Attachment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Attachment;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an attachment object with a \"type\"")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Attachment, A::Error> {
                use serde::de::Error;
                const FIELDS: &[&str] = &["type", "switch", "port", "group"];
                let (mut ty, mut switch, mut port, mut group) = (None, None, None, None);
                while let Some(k) = m.next_key::<String>()? {
                    // Each value is read as its own type, so a path-tracking
                    // deserializer sees (and reports) `attachment.<field>`.
                    let slot_taken = match k.as_str() {
                        "type" => ty.replace(m.next_value::<AttachmentType>()?).is_some(),
                        "switch" => switch.replace(m.next_value::<String>()?).is_some(),
                        "port" => port.replace(m.next_value::<String>()?).is_some(),
                        "group" => group.replace(m.next_value::<String>()?).is_some(),
                        other => return Err(A::Error::unknown_field(other, FIELDS)),
                    };
                    if slot_taken {
                        return Err(A::Error::custom(format_args!("duplicate field `{k}`")));
                    }
                }
                match ty.ok_or_else(|| A::Error::missing_field("type"))? {
                    AttachmentType::HardwareSwitch => {
                        if group.is_some() {
                            return Err(A::Error::unknown_field(
                                "group",
                                &["type", "switch", "port"],
                            ));
                        }
                        Ok(Attachment::HardwareSwitch {
                            switch: switch.ok_or_else(|| A::Error::missing_field("switch"))?,
                            port: port.ok_or_else(|| A::Error::missing_field("port"))?,
                        })
                    }
                    AttachmentType::GatewayGroup => {
                        for (f, v) in [("switch", &switch), ("port", &port)] {
                            if v.is_some() {
                                return Err(A::Error::unknown_field(f, &["type", "group"]));
                            }
                        }
                        Ok(Attachment::GatewayGroup {
                            group: group.ok_or_else(|| A::Error::missing_field("group"))?,
                        })
                    }
                }
            }
        }
        d.deserialize_map(V)
    }
}

/// Connects a logical switch to a physical (port or group, VLAN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Unique name; the key.
    pub name: String,
    /// The logical switch being extended.
    pub logical_switch: String,
    /// Where it is extended to.
    pub attachment: Attachment,
    /// VLAN on that attachment, 0..=4094, 0 = untagged; (attachment, vlan) is unique.
    pub vlan: u16,
}

/// Where a VM MAC of a logical switch lives; keyed by (logical switch, MAC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteMac {
    /// Logical switch the MAC is in.
    pub logical_switch: String,
    /// Unicast, non-zero MAC.
    pub mac: MacAddr,
    /// Optional IPv4 address for ARP suppression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    /// Transport node behind which the MAC lives.
    pub transport_node: String,
}

/// A MAC learned locally by a switch (`Ucast_Macs_Local`) or gateway bridge FDB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedMac {
    /// Transport node (or group) that learned it.
    pub reporter: String,
    /// Logical switch it was learned on.
    pub logical_switch: String,
    /// The learned MAC.
    pub mac: MacAddr,
    /// IP if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
}

/// BFD session state as RFC 5880 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BfdState {
    /// Administratively down.
    AdminDown,
    /// Down.
    Down,
    /// Init.
    Init,
    /// Up.
    Up,
}

/// Health of one tunnel as its local end sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelStatus {
    /// Transport node reporting.
    pub reporter: String,
    /// Remote tunnel endpoint.
    pub remote_ip: Ipv4Addr,
    /// BFD state (`down` when BFD is off and the tunnel is unusable).
    pub state: BfdState,
    /// RFC 5880 diagnostic text, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diag: Option<String>,
}

/// A gateway's role in its group's election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElectionRole {
    /// Holds the group VTEP IP and bridges.
    Leader,
    /// Heard a better member; does not bridge.
    Standby,
    /// Fail-closed: does not bridge.
    Fault,
}

/// One member's view of its group's election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElectionState {
    /// Gateway group.
    pub group: String,
    /// Reporting member node.
    pub member: String,
    /// Its role.
    pub role: ElectionRole,
    /// The leader it believes in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
}

/// Connection and fault status of a hardware switch, as its vtep-sync instance sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchStatus {
    /// Hardware switch transport node.
    pub switch: String,
    /// OVSDB session up.
    pub connected: bool,
    /// Faults reported by the switch (`Physical_Switch.switch_fault_status`).
    #[serde(default)]
    pub faults: Vec<String>,
    /// `Physical_Switch.name` as the switch reports it, when it differs from `switch`
    /// (a mismatch is how an operator spots a transport node pointed at the wrong box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_name: Option<String>,
    /// `Physical_Switch.tunnel_ips`: where other VTEPs must send this switch's traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tunnel_ips: Vec<Ipv4Addr>,
    /// The switch's `Physical_Port`s, with their faults and VLAN bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortStatus>,
}

/// One `Physical_Port` of a hardware switch as observed, so port faults stay per port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortStatus {
    /// `Physical_Port.name`.
    pub name: String,
    /// `Physical_Port.port_fault_status`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// VLANs with an entry in `Physical_Port.vlan_bindings` (0 = untagged).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlan_bindings: Vec<u16>,
}

/// The kind of an object: the first segment of its key and of its REST path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// [`LogicalSwitch`].
    LogicalSwitch,
    /// [`TransportNode`].
    TransportNode,
    /// [`GatewayGroup`].
    GatewayGroup,
    /// [`Binding`].
    Binding,
    /// [`RemoteMac`].
    RemoteMac,
    /// [`LearnedMac`] (observed).
    LearnedMac,
    /// [`TunnelStatus`] (observed).
    TunnelStatus,
    /// [`ElectionState`] (observed).
    ElectionState,
    /// [`SwitchStatus`] (observed).
    SwitchStatus,
}

impl Kind {
    /// Every kind, desired first; used to route and to list.
    pub const ALL: [Kind; 9] = [
        Kind::LogicalSwitch,
        Kind::TransportNode,
        Kind::GatewayGroup,
        Kind::Binding,
        Kind::RemoteMac,
        Kind::LearnedMac,
        Kind::TunnelStatus,
        Kind::ElectionState,
        Kind::SwitchStatus,
    ];

    /// Plural path segment, e.g. `logical-switches`; also the key prefix.
    pub fn segment(self) -> &'static str {
        match self {
            Kind::LogicalSwitch => "logical-switches",
            Kind::TransportNode => "transport-nodes",
            Kind::GatewayGroup => "gateway-groups",
            Kind::Binding => "bindings",
            Kind::RemoteMac => "remote-macs",
            Kind::LearnedMac => "learned-macs",
            Kind::TunnelStatus => "tunnel-status",
            Kind::ElectionState => "election-state",
            Kind::SwitchStatus => "switch-status",
        }
    }

    /// Inverse of [`Kind::segment`].
    pub fn from_segment(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.segment() == s)
    }

    /// Observed kinds are written by daemons under a lease; desired kinds by operators.
    pub fn is_observed(self) -> bool {
        matches!(
            self,
            Kind::LearnedMac | Kind::TunnelStatus | Kind::ElectionState | Kind::SwitchStatus
        )
    }

    /// REST path of the kind's collection (`/v1/logical-switches`,
    /// `/v1/observed/learned-macs`): one rule for the router, the client,
    /// the metrics' route templates and the OpenAPI document.
    pub fn collection_path(self) -> String {
        if self.is_observed() {
            format!("/v1/observed/{}", self.segment())
        } else {
            format!("/v1/{}", self.segment())
        }
    }
}

/// The identity of an object in the store: `kind-segment/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// Object kind.
    pub kind: Kind,
    /// Name within the kind; composite names join parts with '/'.
    pub name: String,
}

impl Key {
    /// Builds a key.
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.segment(), self.name)
    }
}

/// Any object the store holds; tagged by kind on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "spec", rename_all = "snake_case")]
pub enum Object {
    /// Desired.
    LogicalSwitch(LogicalSwitch),
    /// Desired.
    TransportNode(TransportNode),
    /// Desired.
    GatewayGroup(GatewayGroup),
    /// Desired.
    Binding(Binding),
    /// Desired.
    RemoteMac(RemoteMac),
    /// Observed.
    LearnedMac(LearnedMac),
    /// Observed.
    TunnelStatus(TunnelStatus),
    /// Observed.
    ElectionState(ElectionState),
    /// Observed.
    SwitchStatus(SwitchStatus),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::LogicalSwitch(_) => Kind::LogicalSwitch,
            Object::TransportNode(_) => Kind::TransportNode,
            Object::GatewayGroup(_) => Kind::GatewayGroup,
            Object::Binding(_) => Kind::Binding,
            Object::RemoteMac(_) => Kind::RemoteMac,
            Object::LearnedMac(_) => Kind::LearnedMac,
            Object::TunnelStatus(_) => Kind::TunnelStatus,
            Object::ElectionState(_) => Kind::ElectionState,
            Object::SwitchStatus(_) => Kind::SwitchStatus,
        }
    }

    /// The key derived from the object's identifying fields.
    pub fn key(&self) -> Key {
        let name = match self {
            Object::LogicalSwitch(o) => o.name.clone(),
            Object::TransportNode(o) => o.name.clone(),
            Object::GatewayGroup(o) => o.name.clone(),
            Object::Binding(o) => o.name.clone(),
            Object::RemoteMac(o) => format!("{}/{}", o.logical_switch, o.mac),
            Object::LearnedMac(o) => format!("{}/{}/{}", o.reporter, o.logical_switch, o.mac),
            Object::TunnelStatus(o) => format!("{}/{}", o.reporter, o.remote_ip),
            Object::ElectionState(o) => format!("{}/{}", o.group, o.member),
            Object::SwitchStatus(o) => o.switch.clone(),
        };
        Key::new(self.kind(), name)
    }
}

/// Lease identifier, assigned by the state machine (so all replicas agree).
pub type LeaseId = u64;

/// An object as stored, with the revisions etcd clients expect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The object.
    pub object: Object,
    /// Revision that created it.
    pub create_revision: u64,
    /// Revision that last changed it.
    pub mod_revision: u64,
    /// Lease it hangs off (observed state only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseId>,
}

/// What happened to a key at a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Created or replaced.
    Put,
    /// Removed (by request, cascade or lease expiry).
    Delete,
}

/// One change, as the watch stream reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// `kind-segment/name`.
    pub key: String,
    /// For a put the new object, for a delete the last value.
    pub value: Stored,
}

/// All events of one revision; the unit of the watch stream (never split).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionEvents {
    /// The global revision.
    pub revision: u64,
    /// Events in the order they were applied.
    pub events: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_display_round_trip() {
        let m: MacAddr = "02:AB:cd:00:00:01".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:cd:00:00:01");
        for bad in [
            "",
            "02:ab:cd:00:00",
            "02:ab:cd:00:00:01:02",
            "2:ab:cd:00:00:01",
            "02-ab-cd-00-00-01",
            "zz:ab:cd:00:00:01",
            "02:ab:cd:00:00:+1",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<LogicalSwitch, _> = serde_json::from_str(r#"{"name":"a","vni":5,"vnii":6}"#);
        assert!(r.is_err());
        let r: Result<Binding, _> = serde_json::from_str(
            r#"{"name":"b","logical_switch":"a","vlan":0,"attachment":{"type":"gateway_group","group":"g","x":1}}"#,
        );
        assert!(r.is_err());
    }

    #[test]
    fn attachment_round_trips_and_names_bad_fields() {
        for a in [
            Attachment::HardwareSwitch {
                switch: "tor1".into(),
                port: "Ethernet1/1".into(),
            },
            Attachment::GatewayGroup { group: "g1".into() },
        ] {
            let j = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Attachment>(&j).unwrap(), a);
        }
        for (bad, field) in [
            (r#"{"group":"g1"}"#, "type"),
            (r#"{"type":"port"}"#, "unknown variant"),
            (r#"{"type":"gateway_group"}"#, "group"),
            (r#"{"type":"gateway_group","group":1}"#, "group"),
            (r#"{"type":"gateway_group","group":"g","port":"p"}"#, "port"),
            (r#"{"type":"hardware_switch","switch":"s"}"#, "port"),
            (
                r#"{"type":"hardware_switch","switch":"s","port":"p","x":1}"#,
                "x",
            ),
            (
                r#"{"type":"gateway_group","group":"g","group":"h"}"#,
                "group",
            ),
        ] {
            // The HTTP layer reports the tracked path, or the field the message names.
            let de = &mut serde_json::Deserializer::from_str(bad);
            let e = serde_path_to_error::deserialize::<_, Attachment>(de).unwrap_err();
            let e = format!("{} {}", e.path(), e.inner());
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn object_wire_shape() {
        let o = Object::LogicalSwitch(LogicalSwitch {
            name: "web".into(),
            vni: 5001,
            replication: Replication::SourceNode,
        });
        let j = serde_json::to_value(&o).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind":"logical_switch","spec":{"name":"web","vni":5001,"replication":"source_node"}})
        );
        assert_eq!(o.key().to_string(), "logical-switches/web");
        assert_eq!(serde_json::from_value::<Object>(j).unwrap(), o);
    }
}
