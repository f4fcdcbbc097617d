//! Two network namespaces joined by a veth, with enough addresses on each
//! side to form the benchmark's distinct (local, remote) pairs: side A holds
//! 198.18.0.1.. (underlay range), side B 198.51.100.1.. (the other plan
//! range), each reaching the other's /24 directly on the veth. Removed on
//! drop, after the processes inside were stopped by their own guards.

use anyhow::{Context, Result, bail};
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command, failing with its stderr.
pub fn run(argv: &[&str]) -> Result<String> {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .with_context(|| format!("spawn {argv:?}"))?;
    if !out.status.success() {
        bail!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pair of namespaces.
#[derive(Debug)]
pub struct Pair {
    /// Namespace of side A.
    pub a: String,
    /// Namespace of side B.
    pub b: String,
    /// Addresses of side A.
    pub a_addrs: Vec<Ipv4Addr>,
    /// Addresses of side B.
    pub b_addrs: Vec<Ipv4Addr>,
    /// The veth end in A.
    pub dev_a: String,
    /// The veth end in B.
    pub dev_b: String,
}

impl Pair {
    /// Creates the namespaces with `hosts` addresses per side (1..=250);
    /// `dir` holds scratch files.
    pub fn new(hosts: usize, dir: &std::path::Path) -> Result<Pair> {
        if !(1..=250).contains(&hosts) {
            bail!("{hosts} addresses per side: 1..=250 fit the plan's /24s");
        }
        let id = format!(
            "{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let p = Pair {
            dev_a: format!("bba{id}"),
            dev_b: format!("bbb{id}"),
            a: format!("bbench{id}a"),
            b: format!("bbench{id}b"),
            a_addrs: (1..=hosts as u8)
                .map(|h| Ipv4Addr::new(198, 18, 0, h))
                .collect(),
            b_addrs: (1..=hosts as u8)
                .map(|h| Ipv4Addr::new(198, 51, 100, h))
                .collect(),
        };
        run(&["ip", "netns", "add", &p.a])?;
        // From here on, Drop removes what exists.
        run(&["ip", "netns", "add", &p.b])?;
        let (va, vb) = (p.dev_a.clone(), p.dev_b.clone());
        run(&[
            "ip", "link", "add", &va, "netns", &p.a, "type", "veth", "peer", "name", &vb, "netns",
            &p.b,
        ])?;
        for (ns, dev, addrs, other) in [
            (&p.a, &va, &p.a_addrs, "198.51.100.0/24"),
            (&p.b, &vb, &p.b_addrs, "198.18.0.0/24"),
        ] {
            let mut batch = String::from("link set lo up\n");
            batch += &format!("link set {dev} up\n");
            for a in addrs {
                batch += &format!("addr add {a}/24 dev {dev}\n");
            }
            batch += &format!("route add {other} dev {dev}\n");
            let f = dir.join(format!("{ns}.ip-batch"));
            std::fs::write(&f, batch)?;
            run(&["ip", "-n", ns, "-batch", &f.to_string_lossy()])?;
        }
        Ok(p)
    }

    /// The `n` (local on A, remote on B) pairs: A's address i with B's j.
    pub fn pairs(&self, n: usize) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        self.a_addrs
            .iter()
            .flat_map(|a| self.b_addrs.iter().map(move |b| (*a, *b)))
            .take(n)
            .collect()
    }

    /// Sets TX checksum offload of both veth ends. The XDP path reads
    /// frames before the kernel's UDP layer, so it needs full checksums
    /// from the kernel's own sends (its periodic neighbour confirmations);
    /// a veth otherwise passes them on unfinished (real NICs finish them).
    pub fn set_tx_checksum_offload(&self, on: bool) -> Result<()> {
        for (ns, dev) in [(&self.a, &self.dev_a), (&self.b, &self.dev_b)] {
            let v = if on { "on" } else { "off" };
            run(&["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", v])?;
        }
        Ok(())
    }

    /// UDP receive-buffer overflows in namespace `ns` (`/proc/net/snmp`).
    pub fn udp_rcvbuf_errors(ns: &str) -> u64 {
        let Ok(out) = run(&["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"]) else {
            return 0;
        };
        let mut udp = out.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(head), Some(vals)) = (udp.next(), udp.next()) else {
            return 0;
        };
        head.split_whitespace()
            .zip(vals.split_whitespace())
            .find(|(k, _)| *k == "RcvbufErrors")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
