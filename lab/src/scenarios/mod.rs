//! Named scenarios: a topology plus the real peers and configuration that make
//! it useful. `lab up <name>` builds one; tests build the same ones.

pub mod overlay;
pub mod pair;
pub mod vtep_by_hand;

use crate::lab::Lab;
use anyhow::{Result, bail};

/// Scenarios `lab up` knows, with one line each.
pub const NAMES: &[(&str, &str)] = &[
    ("pair", "two hosts on an underlay segment"),
    (
        "overlay",
        "controller, gateway gw1 (two physical segments, bm2/bm3), hypervisor hv1 in host mode (vm1/vm2), two logical switches with overlapping IPs, configured with bridgehead-ctl",
    ),
    (
        "vtep",
        "kernel VXLAN host (vm1) and an emulated hardware switch (ovs-vtep) with a bare-metal host (bm1), VNI 5000, configured by hand",
    ),
];

/// Builds scenario `name` into `lab`; returns lines telling the operator what to try.
pub fn build(lab: &Lab, name: &str) -> Result<Vec<String>> {
    match name {
        "pair" => pair::build(lab).map(|p| p.notes()),
        "overlay" => overlay::build(lab).map(|o| o.notes()),
        "vtep" => vtep_by_hand::build(lab).map(|v| v.notes()),
        other => bail!(
            "unknown scenario {other:?}; known: {}",
            NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ),
    }
}
