//! Declarative topologies: segments (L2 broadcast domains, e.g. the underlay)
//! and hosts with interfaces on them, loadable from TOML, validated with every
//! problem named, and built into a [`Lab`].
//!
//! ```toml
//! name = "pair"
//! segments = ["underlay"]
//! [[hosts]]
//! name = "h1"
//! ifaces = [{ name = "eth0", segment = "underlay", addr = "198.18.0.1/24" }]
//! ```

use crate::lab::{Host, Iface, Lab, MAX_NAME, Segment};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A whole topology.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// Name shown by `lab status`.
    pub name: String,
    /// L2 segments, each a namespace with a bridge.
    #[serde(default)]
    pub segments: Vec<String>,
    /// Hosts, each a namespace.
    #[serde(default)]
    pub hosts: Vec<HostSpec>,
}

/// One host and its interfaces.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name (namespace suffix), at most 11 characters.
    pub name: String,
    /// Interfaces, each plugged into a segment.
    #[serde(default)]
    pub ifaces: Vec<IfaceSpec>,
}

/// One interface of a host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IfaceSpec {
    /// Interface name inside the host.
    pub name: String,
    /// Segment it is plugged into.
    pub segment: String,
    /// IPv4 address with prefix length.
    #[serde(default)]
    pub addr: Option<String>,
    /// Fixed MAC address.
    #[serde(default)]
    pub mac: Option<String>,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Turn TX checksum offload off (traffic crossing OVS userspace).
    #[serde(default)]
    pub tx_offload_off: bool,
}

/// The built topology: handles to every host and segment by name.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// Hosts by name.
    pub hosts: BTreeMap<String, Host>,
    /// Segments by name.
    pub segments: BTreeMap<String, Segment>,
}

impl Built {
    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("topology has no host {name}"))
    }
}

impl Topology {
    /// Parses TOML.
    pub fn from_toml(text: &str) -> Result<Topology> {
        Ok(toml::from_str(text)?)
    }

    /// Every problem of the topology, each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut names = BTreeSet::new();
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= MAX_NAME
                && n.starts_with(|c: char| c.is_ascii_lowercase())
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        };
        for (i, s) in self.segments.iter().enumerate() {
            if !name_ok(s) {
                p.push(format!(
                    "segments[{i}]: {s:?} is not a valid name (1-{MAX_NAME} of a-z 0-9 -)"
                ));
            }
            if !names.insert(s.clone()) {
                p.push(format!("segments[{i}]: duplicate name {s:?}"));
            }
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if !name_ok(&h.name) {
                p.push(format!(
                    "hosts[{i}].name: {:?} is not a valid name (1-{MAX_NAME} of a-z 0-9 -)",
                    h.name
                ));
            }
            if !names.insert(h.name.clone()) {
                p.push(format!("hosts[{i}].name: duplicate name {:?}", h.name));
            }
            let mut ifnames = BTreeSet::new();
            for (j, f) in h.ifaces.iter().enumerate() {
                let at = format!("hosts[{i}].ifaces[{j}]");
                if f.name.is_empty() || f.name.len() > 15 {
                    p.push(format!("{at}.name: {:?} must be 1-15 characters", f.name));
                }
                if !ifnames.insert(&f.name) {
                    p.push(format!("{at}.name: duplicate interface {:?}", f.name));
                }
                if !self.segments.contains(&f.segment) {
                    p.push(format!("{at}.segment: no segment {:?}", f.segment));
                }
                if let Some(a) = &f.addr {
                    let ok = a.split_once('/').is_some_and(|(ip, len)| {
                        ip.parse::<std::net::Ipv4Addr>().is_ok()
                            && len.parse::<u8>().is_ok_and(|l| l <= 32)
                    });
                    if !ok {
                        p.push(format!("{at}.addr: {a:?} is not IPv4/prefix"));
                    }
                }
                if let Some(m) = &f.mac {
                    let ok = m.split(':').count() == 6
                        && m.split(':')
                            .all(|b| b.len() == 2 && u8::from_str_radix(b, 16).is_ok());
                    if !ok {
                        p.push(format!("{at}.mac: {m:?} is not a MAC address"));
                    }
                }
                if let Some(mtu) = f.mtu
                    && !(68..=9000).contains(&mtu)
                {
                    p.push(format!("{at}.mtu: {mtu} is outside 68..=9000"));
                }
            }
        }
        p
    }

    /// Builds the topology into `lab`.
    pub fn build(&self, lab: &Lab) -> Result<Built> {
        let problems = self.problems();
        if !problems.is_empty() {
            bail!(
                "invalid topology {}:\n  {}",
                self.name,
                problems.join("\n  ")
            );
        }
        let mut b = Built::default();
        for s in &self.segments {
            b.segments.insert(s.clone(), lab.add_segment(s)?);
        }
        for h in &self.hosts {
            let host = lab.add_host(&h.name)?;
            for f in &h.ifaces {
                let iface = Iface {
                    name: f.name.clone(),
                    addr: f.addr.clone(),
                    mac: f.mac.clone(),
                    mtu: f.mtu,
                    tx_offload_off: f.tx_offload_off,
                };
                let seg = &b.segments[&f.segment];
                let port = if h.ifaces.len() == 1 {
                    h.name.clone()
                } else {
                    format!("{}{}", h.name, f.name).chars().take(15).collect()
                };
                lab.attach_as(&host, seg, &iface, &port)?;
            }
            b.hosts.insert(h.name.clone(), host);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let t = Topology::from_toml(
            r#"
name = "pair"
segments = ["underlay"]
[[hosts]]
name = "h1"
ifaces = [{ name = "eth0", segment = "underlay", addr = "198.18.0.1/24" }]
"#,
        )
        .unwrap();
        assert!(t.problems().is_empty(), "{:?}", t.problems());
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let t = Topology::from_toml(
            r#"
name = "bad"
segments = ["underlay", "underlay"]
[[hosts]]
name = "H1"
ifaces = [{ name = "eth0", segment = "nowhere", addr = "198.18.0.1", mac = "zz", mtu = 10 }]
"#,
        )
        .unwrap();
        let p = t.problems().join("\n");
        for needle in [
            "segments[1]: duplicate",
            "hosts[0].name",
            ".segment: no segment",
            ".addr:",
            ".mac:",
            ".mtu:",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in:\n{p}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(Topology::from_toml("name = \"x\"\nsegmentz = []\n").is_err());
    }
}
