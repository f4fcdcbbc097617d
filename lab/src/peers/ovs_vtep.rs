//! An emulated hardware VTEP: `ovsdb-server` serving the `hardware_vtep` and
//! `Open_vSwitch` databases, `ovs-vswitchd` with userspace (netdev) bridges,
//! and the `ovs-vtep` emulator that turns the physical-switch bridge into a
//! hardware VTEP. Recipe and pitfalls: shared/PEERS.md.
//!
//! Layout inside the switch's host namespace:
//! - `br-phy` (netdev) holds the underlay NIC; the tunnel IP lives on it,
//!   because userspace VXLAN routes out of an OVS bridge port;
//! - `<switch name>` (netdev) is the physical switch whose ports face
//!   bare-metal hosts, each wired to its own host namespace.

use crate::cmd;
use crate::lab::{Host, Iface, Lab};
use crate::wait;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

const VTEP_SCHEMA: &str = "/usr/share/openvswitch/vtep.ovsschema";
const VSWITCH_SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";
const OVS_VTEP: &str = "/usr/share/openvswitch/scripts/ovs-vtep";

/// How to build an emulated switch.
#[derive(Debug, Clone)]
pub struct SwitchSpec {
    /// Physical_Switch name (also the OVS bridge name), e.g. `sw1`.
    pub name: String,
    /// Underlay NIC inside the host, already plugged into the underlay.
    pub underlay_if: String,
    /// Tunnel IP with prefix, put on `br-phy` (e.g. `198.18.0.30/24`).
    pub tunnel_ip: String,
    /// TCP port of the OVSDB manager listener on the tunnel IP.
    pub ovsdb_port: u16,
}

impl SwitchSpec {
    /// A switch named `name` with tunnel IP `tunnel_ip` on `eth0`, OVSDB on 6640.
    pub fn new(name: &str, tunnel_ip: &str) -> SwitchSpec {
        SwitchSpec {
            name: name.into(),
            underlay_if: "eth0".into(),
            tunnel_ip: tunnel_ip.into(),
            ovsdb_port: 6640,
        }
    }
}

/// A running emulated switch.
#[derive(Debug, Clone)]
pub struct EmulatedSwitch {
    /// The host namespace it runs in.
    pub host: Host,
    /// What it was built from.
    pub spec: SwitchSpec,
    /// Its OVS run folder (databases, sockets, logs).
    pub dir: PathBuf,
}

impl EmulatedSwitch {
    /// Starts the databases, ovs-vswitchd, br-phy with the tunnel IP, the
    /// OVSDB TCP manager and ovs-vtep; returns once the hardware_vtep database
    /// answers over TCP.
    pub fn start(lab: &Lab, host: &Host, spec: SwitchSpec) -> Result<EmulatedSwitch> {
        for (p, pkg) in [
            ("ovsdb-server", "openvswitch-switch"),
            ("ovs-vswitchd", "openvswitch-switch"),
            ("vtep-ctl", "openvswitch-vtep"),
        ] {
            cmd::require_program(p, pkg)?;
        }
        cmd::require_program(OVS_VTEP, "openvswitch-vtep")?;
        let dir = lab.run_dir().join(format!("ovs-{}", spec.name));
        std::fs::create_dir_all(&dir)?;
        let sw = EmulatedSwitch {
            host: host.clone(),
            spec,
            dir,
        };
        let d = sw.dir.to_string_lossy().into_owned();
        for (db, schema) in [("conf.db", VSWITCH_SCHEMA), ("vtep.db", VTEP_SCHEMA)] {
            cmd::run(
                None,
                &["ovsdb-tool", "create", &format!("{d}/{db}"), schema],
            )?;
        }
        let env = sw.env();
        let env_ref: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sock = format!("--remote=punix:{d}/db.sock");
        lab.spawn(
            Some(host),
            &sw.proc_name("ovsdb-server"),
            &[
                "ovsdb-server",
                &sock,
                "--remote=db:hardware_vtep,Global,managers",
                "--pidfile",
                "--no-chdir",
                &format!("--log-file={d}/ovsdb-server.log"),
                &format!("{d}/conf.db"),
                &format!("{d}/vtep.db"),
            ],
            &env_ref,
        )?;
        wait::until(
            "ovsdb-server socket",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || sw.dir.join("db.sock").exists(),
        )
        .or_else(|e| lab.check_alive(&sw.proc_name("ovsdb-server")).and(Err(e)))?;
        sw.vsctl(&["--no-wait", "init"])?;
        lab.spawn(
            Some(host),
            &sw.proc_name("ovs-vswitchd"),
            &[
                "ovs-vswitchd",
                "--pidfile",
                "--no-chdir",
                &format!("--log-file={d}/ovs-vswitchd.log"),
                &format!("unix:{d}/db.sock"),
            ],
            &env_ref,
        )?;
        let name = sw.spec.name.clone();
        let uif = sw.spec.underlay_if.clone();
        sw.vsctl(&[
            "add-br",
            "br-phy",
            "--",
            "set",
            "Bridge",
            "br-phy",
            "datapath_type=netdev",
            "--",
            "add-port",
            "br-phy",
            &uif,
        ])
        .context("create br-phy (is ovs-vswitchd running?)")?;
        host.run(&["ip", "addr", "add", &sw.spec.tunnel_ip, "dev", "br-phy"])?;
        host.run(&["ip", "link", "set", "dev", "br-phy", "up"])?;
        let ip = sw.tunnel_addr();
        sw.vtep_ctl(&["set-manager", &format!("ptcp:{}:{ip}", sw.spec.ovsdb_port)])?;
        // The default 5 s inactivity probe drops a controller busy building a
        // large transaction; the lab's clients answer echo but benchmarks may not.
        let mgr = sw.vtep_ctl(&["--columns=_uuid", "--bare", "find", "Manager"])?;
        sw.vtep_ctl(&["set", "Manager", mgr.trim(), "inactivity_probe=0"])?;
        sw.vsctl(&[
            "add-br",
            &name,
            "--",
            "set",
            "Bridge",
            &name,
            "datapath_type=netdev",
        ])?;
        sw.vtep_ctl(&["add-ps", &name])?;
        sw.vtep_ctl(&["set", "Physical_Switch", &name, &format!("tunnel_ips={ip}")])?;
        lab.spawn(
            Some(host),
            &sw.proc_name("ovs-vtep"),
            &[
                "/usr/bin/python3",
                OVS_VTEP,
                &format!("--log-file={d}/ovs-vtep.log"),
                &format!("--pidfile={d}/ovs-vtep.pid"),
                &name,
            ],
            &env_ref,
        )?;
        let target = sw.db_target();
        wait::until(
            "hardware_vtep database over TCP",
            Duration::from_secs(15),
            Duration::from_millis(200),
            || host.succeeds(&["ovsdb-client", "--timeout=2", "list-dbs", &target]),
        )?;
        // ovs-vtep writes its pidfile only after its imports and first database
        // connection succeed: a clear sign it is really running.
        let vtep_name = sw.proc_name("ovs-vtep");
        wait::until(
            "ovs-vtep pidfile",
            Duration::from_secs(15),
            Duration::from_millis(100),
            || sw.dir.join("ovs-vtep.pid").exists(),
        )
        .or_else(|e| lab.check_alive(&vtep_name).and(Err(e)))?;
        lab.check_alive(&vtep_name)?;
        Ok(sw)
    }

    /// The environment every OVS tool needs to find this switch's daemons
    /// (ovs-vtep shells out to ovs-vsctl, vtep-ctl and ovs-ofctl without --db).
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.to_string_lossy().into_owned();
        ["OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"]
            .iter()
            .map(|k| (k.to_string(), d.clone()))
            .collect()
    }

    /// The lab's name for one of this switch's daemons (`sw1/ovs-vtep`).
    pub fn proc_name(&self, daemon: &str) -> String {
        format!("{}/{daemon}", self.spec.name)
    }

    /// The tunnel IP without prefix length.
    pub fn tunnel_addr(&self) -> String {
        self.spec
            .tunnel_ip
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The OVSDB target a controller uses (`tcp:IP:PORT`).
    pub fn db_target(&self) -> String {
        format!("tcp:{}:{}", self.tunnel_addr(), self.spec.ovsdb_port)
    }

    /// The local unix socket of the switch's ovsdb-server.
    pub fn db_socket(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    fn tool(&self, prog: &str, args: &[&str]) -> Result<String> {
        let db = format!("--db=unix:{}", self.db_socket().display());
        let mut argv = vec![prog, db.as_str()];
        argv.extend_from_slice(args);
        let mut c = self.host.command(&argv);
        for (k, v) in self.env() {
            c.env(k, v);
        }
        cmd::run_checked(c, &cmd::render(Some(&self.host.ns), &argv))
    }

    /// Runs `vtep-ctl` against this switch's hardware_vtep database.
    pub fn vtep_ctl(&self, args: &[&str]) -> Result<String> {
        self.tool("vtep-ctl", args)
    }

    /// Runs `ovs-vsctl` against this switch's Open_vSwitch database.
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        self.tool("ovs-vsctl", args)
    }

    /// Wires a bare-metal host to a new physical port `port` of the switch
    /// (veth between the switch namespace and `bm`), adds it to the OVS
    /// bridge and to the Physical_Switch.
    pub fn add_bare_metal(&self, lab: &Lab, port: &str, bm: &Host, bm_if: &Iface) -> Result<()> {
        let bm_if = Iface {
            tx_offload_off: true,
            ..bm_if.clone()
        };
        lab.veth(bm, &bm_if, &self.host, &Iface::bare(port))?;
        self.vsctl(&["add-port", &self.spec.name, port])?;
        // ovs-vtep also auto-adds bridge ports to the Physical_Switch; adding it
        // here makes the port visible at once. It may already be there.
        let _ = self.vtep_ctl(&["--may-exist", "add-port", &self.spec.name, port]);
        Ok(())
    }
}
