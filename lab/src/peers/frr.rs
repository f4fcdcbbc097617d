//! FRR's bfdd as an independent BFD peer, with zebra beside it (bfdd learns
//! interfaces from zebra; a peer bound to an interface needs it). Each instance
//! has its own configuration, sockets and logs in the run folder.

use crate::cmd;
use crate::lab::{Host, Lab};
use crate::wait;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// A running FRR (zebra + bfdd) inside one lab host.
#[derive(Debug, Clone)]
pub struct Frr {
    /// The host it runs in.
    pub host: Host,
    /// Its configuration / socket folder (owned by frr:frr).
    pub dir: PathBuf,
}

impl Frr {
    /// Starts zebra and bfdd in `host` with `bfd_config` as the body of the
    /// `bfd` node of bfdd.conf (peers), and waits until vtysh answers.
    pub fn start(lab: &Lab, host: &Host, bfd_config: &str) -> Result<Frr> {
        cmd::require_program("/usr/lib/frr/bfdd", "frr")?;
        cmd::require_program("vtysh", "frr")?;
        let dir = lab.run_dir().join(format!("frr-{}", host.name));
        std::fs::create_dir_all(&dir)?;
        let d = dir.to_string_lossy().into_owned();
        std::fs::write(
            dir.join("zebra.conf"),
            format!("hostname {}\nlog file {d}/zebra.log\n", host.name),
        )?;
        std::fs::write(
            dir.join("bfdd.conf"),
            format!(
                "hostname {}\nlog file {d}/bfdd.log\nbfd\n{bfd_config}\n!\n",
                host.name
            ),
        )?;
        std::fs::write(dir.join("vtysh.conf"), "service integrated-vtysh-config\n")?;
        cmd::run(None, &["chown", "-R", "frr:frr", &d])?;
        let zserv = format!("{d}/zserv.api");
        let common = |conf: &str, pid: &str| -> Vec<String> {
            [
                "-f",
                conf,
                "-i",
                pid,
                "-z",
                &zserv,
                "--vty_socket",
                &d,
                "-P",
                "0",
                "-u",
                "frr",
                "-g",
                "frr",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let zebra: Vec<String> = std::iter::once("/usr/lib/frr/zebra".to_string())
            .chain(common(
                &format!("{d}/zebra.conf"),
                &format!("{d}/zebra.pid"),
            ))
            .collect();
        let zref: Vec<&str> = zebra.iter().map(String::as_str).collect();
        lab.spawn(Some(host), &format!("{}/zebra", host.name), &zref, &[])?;
        wait::until(
            "zebra socket",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || dir.join("zserv.api").exists(),
        )
        .or_else(|e| lab.check_alive(&format!("{}/zebra", host.name)).and(Err(e)))?;
        let mut bfdd: Vec<String> = std::iter::once("/usr/lib/frr/bfdd".to_string())
            .chain(common(&format!("{d}/bfdd.conf"), &format!("{d}/bfdd.pid")))
            .collect();
        bfdd.extend(["--bfdctl".to_string(), format!("{d}/bfdd.sock")]);
        let bref: Vec<&str> = bfdd.iter().map(String::as_str).collect();
        lab.spawn(Some(host), &format!("{}/bfdd", host.name), &bref, &[])?;
        let frr = Frr {
            host: host.clone(),
            dir,
        };
        wait::until(
            "bfdd vty",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || frr.vtysh(&["show bfd peers brief"]).is_ok(),
        )
        .or_else(|e| lab.check_alive(&format!("{}/bfdd", host.name)).and(Err(e)))
        .context("bfdd did not come up")?;
        Ok(frr)
    }

    /// Runs vtysh commands (each element one `-c`) against this instance.
    pub fn vtysh(&self, commands: &[&str]) -> Result<String> {
        let d = self.dir.to_string_lossy().into_owned();
        let mut argv = vec!["vtysh", "--vty_socket", &d, "--config_dir", &d];
        for c in commands {
            argv.extend(["-c", c]);
        }
        self.host.run(&argv)
    }

    /// The state bfdd reports for the peer with address `peer` (`up`, `down`,
    /// `init`), if it knows the peer.
    pub fn peer_state(&self, peer: &str) -> Option<String> {
        let out = self.vtysh(&["show bfd peers json"]).ok()?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v.as_array()?
            .iter()
            .find(|p| p.get("peer").and_then(|x| x.as_str()) == Some(peer))
            .and_then(|p| p.get("status")?.as_str().map(str::to_owned))
    }
}
