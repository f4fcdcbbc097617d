//! A Linux kernel VXLAN VTEP configured by hand with `ip` and `bridge`, for
//! harness tests and the early demo. The real programming of kernel VTEPs is
//! the gateway crate's job (over rtnetlink); this helper exists so that the
//! lab can be proven before that code exists, and as an independent reference.

use crate::lab::{Host, Iface, Lab};
use anyhow::Result;

/// One VXLAN device on a bridge inside a host.
#[derive(Debug, Clone)]
pub struct KernelVtep {
    /// The VTEP host.
    pub host: Host,
    /// VXLAN device name.
    pub vxlan: String,
    /// Bridge the VXLAN device is a port of.
    pub bridge: String,
    /// VNI.
    pub vni: u32,
}

impl KernelVtep {
    /// Creates `vxlan` (VNI `vni`, local `local_ip`, dstport 4789, learning
    /// off) on a new bridge `bridge` in `host`.
    pub fn create(
        host: &Host,
        vni: u32,
        local_ip: &str,
        underlay_if: &str,
        vxlan: &str,
        bridge: &str,
    ) -> Result<KernelVtep> {
        let vni_s = vni.to_string();
        host.run(&[
            "ip",
            "link",
            "add",
            vxlan,
            "type",
            "vxlan",
            "id",
            &vni_s,
            "dstport",
            "4789",
            "local",
            local_ip,
            "dev",
            underlay_if,
            "nolearning",
        ])?;
        crate::lab::add_bridge(host, bridge)?;
        host.run(&["ip", "link", "set", "dev", vxlan, "master", bridge])?;
        host.run(&["ip", "link", "set", "dev", vxlan, "up"])?;
        Ok(KernelVtep {
            host: host.clone(),
            vxlan: vxlan.into(),
            bridge: bridge.into(),
            vni,
        })
    }

    /// Adds a VM: a new host whose `eth0` is a veth into this VTEP's bridge
    /// (port `port`), MTU 1450 for the VXLAN overhead.
    pub fn add_vm(&self, lab: &Lab, name: &str, port: &str, mac: &str, addr: &str) -> Result<Host> {
        let vm = lab.add_host(name)?;
        lab.veth(
            &vm,
            &Iface::new("eth0", addr).mac(mac).mtu(1450).no_tx_offload(),
            &self.host,
            &Iface::bare(port),
        )?;
        self.host
            .run(&["ip", "link", "set", "dev", port, "master", &self.bridge])?;
        Ok(vm)
    }

    /// Adds `remote_vtep` to the flood list (all-zeros FDB entry, appended).
    pub fn flood_to(&self, remote_vtep: &str) -> Result<()> {
        self.host.run(&[
            "bridge",
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            &self.vxlan,
            "dst",
            remote_vtep,
        ])?;
        Ok(())
    }

    /// Adds a static remote MAC behind `remote_vtep`.
    pub fn remote_mac(&self, mac: &str, remote_vtep: &str) -> Result<()> {
        self.host.run(&[
            "bridge",
            "fdb",
            "add",
            mac,
            "dev",
            &self.vxlan,
            "dst",
            remote_vtep,
            "self",
            "static",
        ])?;
        Ok(())
    }
}
