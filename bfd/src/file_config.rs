//! The operator's configuration file (TOML) for a BFD instance: which
//! sessions to run and how. Unknown fields are errors, and
//! [`FileConfig::validate`] reports every bad field at once with its path
//! (`peer[2].tx_interval_ms`), so one edit fixes them all.
//!
//! ```toml
//! [daemon]                 # optional; a change needs a restart
//! bind = "0.0.0.0"         # address the sockets bind (0.0.0.0: every local address)
//! xdp_device = "eth1"      # optional: single-hop/multihop BFD on this device
//!                          # bypasses the kernel's IP/UDP layers (bfd::xdp)
//!
//! [defaults]               # optional; what a peer leaves out
//! tx_interval_ms = 300
//! rx_interval_ms = 300
//! multiplier = 3
//!
//! [[peer]]
//! name = "sn1"             # optional, unique; shown in logs and status
//! local = "198.18.0.10"
//! remote = "198.18.0.20"
//! mode = "single-hop"      # single-hop (RFC 5881) | multihop (RFC 5883) | vxlan
//!
//! [[peer]]
//! local = "198.18.0.10"    # our underlay address on the device
//! remote = "198.18.0.30"   # the switch's tunnel IP
//! mode = "vxlan"           # BFD inside VXLAN
//! vxlan_flavor = "ovs"     # default: VNI 0, Open vSwitch / hardware_vtep convention
//! vxlan_device = "vxbfd"   # an existing VNI 0 device toward that switch
//!
//! [[peer]]
//! local = "198.18.0.10"
//! remote = "198.18.0.40"
//! mode = "vxlan"
//! vxlan_flavor = "rfc8971" # RFC 8971 BFD for VXLAN
//! management_vni = 777     # required for rfc8971: 1..=16777215, no tenant uses it
//! vxlan_device = "vxmgmt"  # an existing device with id 777 toward that VTEP
//! [peer.auth]
//! type = "meticulous-keyed-sha1"
//! key_id = 1
//! secret = "correct horse"
//! ```

use crate::auth::{AuthKey, AuthType};
use crate::config::{MAX_INTERVAL, SessionConfig};
use crate::manager::{Encap, ManagerConfig, PeerKey};
use crate::vxlan::{MAX_VNI, VxlanFlavor};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use thiserror::Error;

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Instance-wide settings (sockets, source ports).
    #[serde(default)]
    pub daemon: DaemonSection,
    /// Values a peer falls back to.
    #[serde(default)]
    pub defaults: Defaults,
    /// The sessions.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerSection>,
}

/// Settings of the instance itself; they apply at start only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// IPv4 address the sockets bind; 0.0.0.0 serves every local address.
    pub bind: String,
    /// First UDP source port (RFC 5881 §4: 49152–65535).
    pub src_port_base: u16,
    /// How many source ports (one socket each).
    pub src_port_count: u16,
    /// RFC 5883 §5: lowest TTL accepted on multihop sessions (0: no check).
    pub multihop_min_ttl: u8,
    /// Datagrams per `recvmmsg`/`sendmmsg`.
    pub batch: usize,
    /// Timer coalescing, ms (see `DriverConfig::coalesce`).
    pub coalesce_ms: u64,
    /// Receive buffer of the shared sockets, bytes (see `DriverConfig::recv_buffer`).
    pub recv_buffer_bytes: usize,
    /// The device whose single-hop and multihop BFD takes the XDP path
    /// (see [`crate::xdp`]); none: kernel sockets only.
    pub xdp_device: Option<String>,
}

impl Default for DaemonSection {
    fn default() -> Self {
        let m = ManagerConfig::default();
        DaemonSection {
            bind: "0.0.0.0".into(),
            src_port_base: m.src_port_base,
            src_port_count: m.src_port_count,
            multihop_min_ttl: m.multihop_min_ttl,
            batch: 64,
            coalesce_ms: 1,
            recv_buffer_bytes: 8 << 20,
            xdp_device: None,
        }
    }
}

/// Per-peer values used where a peer gives none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Desired Min TX Interval, ms.
    pub tx_interval_ms: u32,
    /// Required Min RX Interval, ms (0: ask the remote to send nothing).
    pub rx_interval_ms: u32,
    /// Detect Mult.
    pub multiplier: u32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            tx_interval_ms: 300,
            rx_interval_ms: 300,
            multiplier: 3,
        }
    }
}

/// How a session's packets travel, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// RFC 5881, UDP 3784, TTL 255.
    SingleHop,
    /// RFC 5883, UDP 4784.
    Multihop,
    /// Inside VXLAN, in the convention `vxlan_flavor` names.
    Vxlan,
}

/// Which BFD-in-VXLAN convention a peer speaks, as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlavorName {
    /// VNI 0, the Open vSwitch / hardware_vtep convention.
    Ovs,
    /// RFC 8971 in a Management VNI.
    Rfc8971,
}

impl Mode {
    /// The manager's encapsulation.
    pub fn encap(self) -> Encap {
        match self {
            Mode::SingleHop => Encap::SingleHop,
            Mode::Multihop => Encap::MultiHop,
            Mode::Vxlan => Encap::Vxlan,
        }
    }

    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::SingleHop => "single-hop",
            Mode::Multihop => "multihop",
            Mode::Vxlan => "vxlan",
        }
    }
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSection {
    /// Operator's name for the session (default: `local-remote/mode`).
    pub name: Option<String>,
    /// Our address (for VXLAN: our tunnel IP on the device).
    pub local: String,
    /// The remote system's address (for VXLAN: its tunnel IP).
    pub remote: String,
    /// Encapsulation.
    pub mode: Mode,
    /// Desired Min TX Interval, ms.
    pub tx_interval_ms: Option<u32>,
    /// Required Min RX Interval, ms.
    pub rx_interval_ms: Option<u32>,
    /// Detect Mult.
    pub multiplier: Option<u32>,
    /// §6.1 passive role: wait for the remote to speak first.
    #[serde(default)]
    pub passive: bool,
    /// The VXLAN device in the BFD VNI (mode `vxlan` only).
    pub vxlan_device: Option<String>,
    /// BFD-in-VXLAN convention (mode `vxlan` only; default `ovs`).
    pub vxlan_flavor: Option<FlavorName>,
    /// RFC 8971 Management VNI (`vxlan_flavor = "rfc8971"` only, required there).
    pub management_vni: Option<u32>,
    /// Authentication (§6.7).
    pub auth: Option<AuthSection>,
}

/// Authentication of one session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `simple-password`, `keyed-md5`, `meticulous-keyed-md5`, `keyed-sha1`
    /// or `meticulous-keyed-sha1`.
    #[serde(rename = "type")]
    pub auth_type: String,
    /// Auth Key ID carried in every packet.
    pub key_id: u8,
    /// The password or key (1–16 bytes, SHA1 up to 20).
    pub secret: String,
}

/// A problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// Path of the field, e.g. `peer[2].remote`.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// Why a configuration file cannot be used.
#[derive(Debug, Error)]
pub enum FileConfigError {
    /// The file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML of the expected shape (an unknown field, a wrong type).
    #[error("parse: {0}")]
    Parse(String),
    /// Fields with invalid values, every one of them.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// A validated session, ready for the manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Operator's name.
    pub name: String,
    /// Addresses and encapsulation: the session's identity across reloads.
    pub key: PeerKey,
    /// Timing, role and authentication.
    pub session: SessionConfig,
    /// The VXLAN device of a VXLAN session.
    pub vxlan_device: Option<String>,
    /// The convention of a VXLAN session (OVS for every other mode).
    pub vxlan_flavor: VxlanFlavor,
}

/// A validated file: instance settings and sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// Manager settings.
    pub manager: ManagerConfig,
    /// Socket-layer bind address.
    pub bind: Ipv4Addr,
    /// Datagrams per batch.
    pub batch: usize,
    /// Timer coalescing.
    pub coalesce: Duration,
    /// Receive socket buffer, bytes.
    pub recv_buffer: usize,
    /// The XDP device, if any.
    pub xdp_device: Option<String>,
    /// Sessions, in file order.
    pub peers: Vec<Peer>,
}

fn auth_type(s: &str) -> Option<AuthType> {
    Some(match s {
        "simple-password" => AuthType::SimplePassword,
        "keyed-md5" => AuthType::KeyedMd5,
        "meticulous-keyed-md5" => AuthType::MeticulousKeyedMd5,
        "keyed-sha1" => AuthType::KeyedSha1,
        "meticulous-keyed-sha1" => AuthType::MeticulousKeyedSha1,
        _ => return None,
    })
}

/// Largest interval in ms the 32-bit µs wire fields carry.
const MAX_INTERVAL_MS: u32 = (MAX_INTERVAL.as_micros() / 1000) as u32;

impl FileConfig {
    /// Parses TOML text (shape only; see [`FileConfig::validate`]).
    pub fn parse(text: &str) -> Result<FileConfig, FileConfigError> {
        toml::from_str(text).map_err(|e| FileConfigError::Parse(e.to_string()))
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &std::path::Path) -> Result<Validated, FileConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        FileConfig::parse(&text)?.validate()
    }

    /// Checks every field and returns the sessions, or every problem found.
    pub fn validate(&self) -> Result<Validated, FileConfigError> {
        let mut errs = Vec::new();
        let mut bad = |field: String, reason: &str| {
            errs.push(FieldError {
                field,
                reason: reason.to_owned(),
            })
        };
        let d = &self.daemon;
        let bind = match d.bind.parse::<Ipv4Addr>() {
            Ok(a) if a.is_multicast() || a.is_broadcast() => {
                bad("daemon.bind".into(), "must be a unicast address or 0.0.0.0");
                Ipv4Addr::UNSPECIFIED
            }
            Ok(a) => a,
            Err(_) => {
                bad("daemon.bind".into(), "not an IPv4 address");
                Ipv4Addr::UNSPECIFIED
            }
        };
        if d.src_port_base < 49152 {
            bad(
                "daemon.src_port_base".into(),
                "must be at least 49152 (RFC 5881 §4)",
            );
        }
        if d.src_port_count == 0 || u32::from(d.src_port_base) + u32::from(d.src_port_count) > 65536
        {
            bad(
                "daemon.src_port_count".into(),
                "must be 1 or more and end at or below port 65535",
            );
        }
        if d.batch == 0 || d.batch > 1024 {
            bad("daemon.batch".into(), "must be 1..=1024");
        }
        if d.coalesce_ms > 100 {
            bad(
                "daemon.coalesce_ms".into(),
                "must be at most 100 (it delays every packet)",
            );
        }
        if d.recv_buffer_bytes > 1 << 30 {
            bad("daemon.recv_buffer_bytes".into(), "must be at most 1 GiB");
        }
        if let Some(dev) = &d.xdp_device
            && (dev.is_empty()
                || dev.len() > 15
                || dev.contains(|c: char| c == '/' || c.is_whitespace() || c == ':'))
        {
            bad(
                "daemon.xdp_device".into(),
                "must be a device name: 1 to 15 characters, no '/', ':' or spaces",
            );
        }
        let df = &self.defaults;
        check_timing(
            &mut bad,
            "defaults",
            df.tx_interval_ms,
            df.rx_interval_ms,
            df.multiplier,
        );

        let mut peers = Vec::with_capacity(self.peers.len());
        let mut seen_keys: HashMap<PeerKey, usize> = HashMap::new();
        let mut seen_names: HashMap<String, usize> = HashMap::new();
        for (i, p) in self.peers.iter().enumerate() {
            let at = |f: &str| format!("peer[{i}].{f}");
            let mut addr = |f: &str, v: &str| -> Option<Ipv4Addr> {
                match v.parse::<IpAddr>() {
                    Ok(IpAddr::V4(a))
                        if a.is_unspecified() || a.is_multicast() || a.is_broadcast() =>
                    {
                        bad(at(f), "must be a unicast address");
                        None
                    }
                    Ok(IpAddr::V4(a)) => Some(a),
                    Ok(IpAddr::V6(_)) => {
                        bad(at(f), "IPv6 is not supported yet");
                        None
                    }
                    Err(_) => {
                        bad(at(f), "not an IPv4 address");
                        None
                    }
                }
            };
            let local = addr("local", &p.local);
            let remote = addr("remote", &p.remote);
            if let Some(l) = local {
                if !bind.is_unspecified() && l != bind {
                    bad(
                        at("local"),
                        "differs from daemon.bind (sockets bound there never see it)",
                    );
                }
            }
            if local.is_some() && local == remote {
                bad(at("remote"), "equals local");
            }
            let tx = p.tx_interval_ms.unwrap_or(df.tx_interval_ms);
            let rx = p.rx_interval_ms.unwrap_or(df.rx_interval_ms);
            let mult = p.multiplier.unwrap_or(df.multiplier);
            check_timing(&mut bad, &format!("peer[{i}]"), tx, rx, mult);
            match (p.mode, &p.vxlan_device) {
                (Mode::Vxlan, None) => bad(at("vxlan_device"), "required for mode vxlan"),
                (Mode::Vxlan, Some(dev)) if dev.is_empty() || dev.len() > 15 => {
                    bad(at("vxlan_device"), "a device name of 1-15 bytes")
                }
                (Mode::SingleHop | Mode::Multihop, Some(_)) => {
                    bad(at("vxlan_device"), "only for mode vxlan")
                }
                _ => {}
            }
            let vxlan_flavor = match (p.mode, p.vxlan_flavor, p.management_vni) {
                (Mode::SingleHop | Mode::Multihop, Some(_), _) => {
                    bad(at("vxlan_flavor"), "only for mode vxlan");
                    VxlanFlavor::OvsVtep
                }
                (_, Some(FlavorName::Rfc8971), None) => {
                    bad(at("management_vni"), "required for vxlan_flavor rfc8971");
                    VxlanFlavor::OvsVtep
                }
                (_, Some(FlavorName::Rfc8971), Some(vni)) if vni == 0 || vni > MAX_VNI => {
                    bad(at("management_vni"), "must be 1..=16777215");
                    VxlanFlavor::OvsVtep
                }
                (_, Some(FlavorName::Rfc8971), Some(vni)) => VxlanFlavor::Rfc8971 {
                    management_vni: vni,
                },
                (_, None | Some(FlavorName::Ovs), Some(_)) => {
                    bad(at("management_vni"), "only for vxlan_flavor rfc8971");
                    VxlanFlavor::OvsVtep
                }
                (_, None | Some(FlavorName::Ovs), None) => VxlanFlavor::OvsVtep,
            };
            let auth = p.auth.as_ref().and_then(|a| {
                let Some(t) = auth_type(&a.auth_type) else {
                    bad(
                        at("auth.type"),
                        "one of simple-password, keyed-md5, meticulous-keyed-md5, keyed-sha1, meticulous-keyed-sha1",
                    );
                    return None;
                };
                AuthKey::new(t, a.key_id, a.secret.as_bytes())
                    .map_err(|_| {
                        bad(
                            at("auth.secret"),
                            "1-16 bytes (keyed-sha1 and meticulous-keyed-sha1: 1-20)",
                        )
                    })
                    .ok()
            });
            let name = match &p.name {
                Some(n) if n.is_empty() || n.chars().any(char::is_whitespace) => {
                    bad(at("name"), "must be non-empty without whitespace");
                    n.clone()
                }
                Some(n) => n.clone(),
                None => format!("{}-{}/{}", p.local, p.remote, p.mode.as_str()),
            };
            // Default names are unique when the addresses are (checked below).
            if p.name.is_some() {
                if let Some(first) = seen_names.insert(name.clone(), i) {
                    bad(
                        at("name"),
                        &format!("{name:?} is also peer[{first}]'s name"),
                    );
                }
            }
            let (Some(local), Some(remote)) = (local, remote) else {
                continue;
            };
            let key = PeerKey {
                remote: IpAddr::V4(remote),
                local: IpAddr::V4(local),
                encap: p.mode.encap(),
            };
            if let Some(first) = seen_keys.insert(key, i) {
                bad(
                    at("remote"),
                    &format!("same local, remote and mode as peer[{first}]"),
                );
            }
            peers.push(Peer {
                name,
                key,
                session: SessionConfig {
                    desired_min_tx: Duration::from_millis(u64::from(tx)),
                    required_min_rx: Duration::from_millis(u64::from(rx)),
                    detect_mult: u8::try_from(mult).unwrap_or(1),
                    passive: p.passive,
                    control_plane_independent: false,
                    auth,
                },
                vxlan_device: p.vxlan_device.clone(),
                vxlan_flavor,
            });
        }
        if !errs.is_empty() {
            return Err(FileConfigError::Invalid(errs));
        }
        Ok(Validated {
            manager: ManagerConfig {
                src_port_base: d.src_port_base,
                src_port_count: d.src_port_count,
                multihop_min_ttl: d.multihop_min_ttl,
                ..ManagerConfig::default()
            },
            bind,
            batch: d.batch,
            coalesce: Duration::from_millis(d.coalesce_ms),
            recv_buffer: d.recv_buffer_bytes,
            xdp_device: d.xdp_device.clone(),
            peers,
        })
    }
}

fn check_timing(bad: &mut impl FnMut(String, &str), at: &str, tx: u32, rx: u32, mult: u32) {
    if tx == 0 || tx > MAX_INTERVAL_MS {
        bad(
            format!("{at}.tx_interval_ms"),
            "must be 1..=4294967 (§4.1: zero is reserved)",
        );
    }
    if rx > MAX_INTERVAL_MS {
        bad(format!("{at}.rx_interval_ms"), "must be at most 4294967");
    }
    if mult == 0 || mult > 255 {
        bad(format!("{at}.multiplier"), "must be 1..=255");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> Vec<String> {
        match FileConfig::parse(text).and_then(|c| c.validate()) {
            Err(FileConfigError::Invalid(v)) => v.into_iter().map(|e| e.field).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn a_full_file_validates_with_defaults_applied() {
        let v = FileConfig::parse(
            r#"
            [daemon]
            bind = "127.0.0.1"
            src_port_base = 50000
            [defaults]
            tx_interval_ms = 100
            [[peer]]
            name = "a"
            local = "127.0.0.1"
            remote = "127.0.0.2"
            mode = "single-hop"
            multiplier = 5
            [[peer]]
            local = "127.0.0.1"
            remote = "127.0.0.2"
            mode = "multihop"
            passive = true
            [peer.auth]
            type = "meticulous-keyed-sha1"
            key_id = 7
            secret = "twenty-bytes-secret!"
            [[peer]]
            local = "127.0.0.1"
            remote = "127.0.0.3"
            mode = "vxlan"
            vxlan_device = "vxbfd"
            [[peer]]
            local = "127.0.0.1"
            remote = "127.0.0.4"
            mode = "vxlan"
            vxlan_flavor = "rfc8971"
            management_vni = 16777215
            vxlan_device = "vxmgmt"
            "#,
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.bind, Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(v.manager.src_port_base, 50000);
        assert_eq!(v.peers.len(), 4);
        let a = &v.peers[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.key.encap, Encap::SingleHop);
        assert_eq!(a.session.desired_min_tx, Duration::from_millis(100));
        assert_eq!(a.session.required_min_rx, Duration::from_millis(300));
        assert_eq!(a.session.detect_mult, 5);
        let b = &v.peers[1];
        assert_eq!(b.name, "127.0.0.1-127.0.0.2/multihop");
        assert!(b.session.passive);
        let key = b.session.auth.as_ref().unwrap();
        assert_eq!(
            (key.auth_type(), key.key_id()),
            (AuthType::MeticulousKeyedSha1, 7)
        );
        assert_eq!(v.peers[2].vxlan_device.as_deref(), Some("vxbfd"));
        assert_eq!(v.peers[2].vxlan_flavor, VxlanFlavor::OvsVtep);
        assert_eq!(v.peers[3].vxlan_device.as_deref(), Some("vxmgmt"));
        assert_eq!(
            v.peers[3].vxlan_flavor,
            VxlanFlavor::Rfc8971 {
                management_vni: 16777215
            }
        );
    }

    #[test]
    fn vxlan_flavor_and_management_vni_are_checked() {
        let peer = |i: u8, extra: &str| {
            format!(
                "[[peer]]\nlocal=\"10.0.0.1\"\nremote=\"10.0.0.{i}\"\nvxlan_device=\"vx{i}\"\n{extra}\n"
            )
        };
        let text = [
            peer(2, "mode=\"vxlan\"\nvxlan_flavor=\"rfc8971\""),
            peer(3, "mode=\"vxlan\"\nvxlan_flavor=\"rfc8971\"\nmanagement_vni=0"),
            peer(4, "mode=\"vxlan\"\nvxlan_flavor=\"rfc8971\"\nmanagement_vni=16777216"),
            peer(5, "mode=\"vxlan\"\nvxlan_flavor=\"ovs\"\nmanagement_vni=7"),
            peer(6, "mode=\"vxlan\"\nmanagement_vni=7"),
            "[[peer]]\nlocal=\"10.0.0.1\"\nremote=\"10.0.0.7\"\nmode=\"single-hop\"\nvxlan_flavor=\"rfc8971\"\n".to_owned(),
            peer(8, "mode=\"vxlan\"\nvxlan_flavor=\"rfc8971\"\nmanagement_vni=1"),
        ]
        .concat();
        let fields = invalid(&text);
        assert_eq!(
            fields,
            [
                "peer[0].management_vni",
                "peer[1].management_vni",
                "peer[2].management_vni",
                "peer[3].management_vni",
                "peer[4].management_vni",
                "peer[5].vxlan_flavor",
            ]
        );
        match FileConfig::parse(&peer(9, "mode=\"vxlan\"\nvxlan_flavor=\"geneve\"")) {
            Err(FileConfigError::Parse(m)) => assert!(m.contains("geneve"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_empty_file_is_valid() {
        let v = FileConfig::parse("").unwrap().validate().unwrap();
        assert!(v.peers.is_empty());
        assert_eq!(v.bind, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        for (text, word) in [
            (
                "[[peer]]\nlocal=\"1.1.1.1\"\nremote=\"1.1.1.2\"\nmode=\"single-hop\"\ntx_interval=5\n",
                "tx_interval",
            ),
            ("[daemon]\nport=1\n", "port"),
            ("bogus = 1\n", "bogus"),
            (
                "[[peer]]\nlocal=\"1.1.1.1\"\nremote=\"1.1.1.2\"\nmode=\"two-hop\"\n",
                "two-hop",
            ),
        ] {
            match FileConfig::parse(text) {
                Err(FileConfigError::Parse(m)) => assert!(m.contains(word), "{m}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let fields = invalid(
            r#"
            [daemon]
            bind = "224.0.0.1"
            src_port_base = 1000
            src_port_count = 0
            batch = 0
            coalesce_ms = 1000
            xdp_device = "eth0/bad"
            [defaults]
            multiplier = 0
            [[peer]]
            name = "x"
            local = "fe80::1"
            remote = "not-an-ip"
            mode = "single-hop"
            tx_interval_ms = 0
            rx_interval_ms = 4294968
            multiplier = 256
            vxlan_device = "vx0"
            [[peer]]
            name = "x"
            local = "10.0.0.1"
            remote = "10.0.0.1"
            mode = "vxlan"
            [peer.auth]
            type = "sha256"
            key_id = 1
            secret = "k"
            [[peer]]
            local = "10.0.0.1"
            remote = "10.0.0.2"
            mode = "multihop"
            [peer.auth]
            type = "keyed-md5"
            key_id = 1
            secret = "seventeen-bytes!!"
            "#,
        );
        for want in [
            "daemon.bind",
            "daemon.src_port_base",
            "daemon.src_port_count",
            "daemon.batch",
            "daemon.coalesce_ms",
            "daemon.xdp_device",
            "defaults.multiplier",
            "peer[0].local",
            "peer[0].remote",
            "peer[0].tx_interval_ms",
            "peer[0].rx_interval_ms",
            "peer[0].multiplier",
            "peer[0].vxlan_device",
            "peer[1].remote",
            "peer[1].vxlan_device",
            "peer[1].auth.type",
            "peer[1].name",
            "peer[2].auth.secret",
        ] {
            assert!(fields.iter().any(|f| f == want), "{want} not in {fields:?}");
        }
    }

    #[test]
    fn duplicates_and_foreign_locals_are_refused() {
        let fields = invalid(
            r#"
            [daemon]
            bind = "127.0.0.1"
            [[peer]]
            local = "127.0.0.1"
            remote = "127.0.0.2"
            mode = "single-hop"
            [[peer]]
            local = "127.0.0.1"
            remote = "127.0.0.2"
            mode = "single-hop"
            [[peer]]
            local = "127.0.0.9"
            remote = "127.0.0.2"
            mode = "multihop"
            "#,
        );
        assert_eq!(fields, ["peer[1].remote", "peer[2].local"]);
    }
}
