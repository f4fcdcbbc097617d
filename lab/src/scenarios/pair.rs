//! Two hosts on one underlay segment: the smallest lab, proving namespaces,
//! veth, the segment bridge and addressing.

use crate::lab::{Host, Lab};
use crate::topology::{HostSpec, IfaceSpec, Topology};
use anyhow::Result;

/// The built pair.
#[derive(Debug, Clone)]
pub struct Pair {
    /// First host, 198.18.0.1.
    pub h1: Host,
    /// Second host, 198.18.0.2.
    pub h2: Host,
}

impl Pair {
    /// What to try.
    pub fn notes(&self) -> Vec<String> {
        vec![format!(
            "ping across the underlay: lab exec h1 -- ping -c3 198.18.0.2"
        )]
    }
}

/// The pair's topology.
pub fn topology() -> Topology {
    let host = |name: &str, addr: &str| HostSpec {
        name: name.into(),
        ifaces: vec![IfaceSpec {
            name: "eth0".into(),
            segment: "underlay".into(),
            addr: Some(addr.into()),
            mac: None,
            mtu: None,
            tx_offload_off: false,
        }],
    };
    Topology {
        name: "pair".into(),
        segments: vec!["underlay".into()],
        hosts: vec![host("h1", "198.18.0.1/24"), host("h2", "198.18.0.2/24")],
    }
}

/// Builds the pair.
pub fn build(lab: &Lab) -> Result<Pair> {
    let b = topology().build(lab)?;
    Ok(Pair {
        h1: b.host("h1")?.clone(),
        h2: b.host("h2")?.clone(),
    })
}
