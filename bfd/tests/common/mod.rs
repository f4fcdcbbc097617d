//! Network namespaces for the root-only tests: two namespaces joined by a
//! veth, names unique per process and call, removed on drop (also on panic).
#![allow(dead_code)] // each test file uses a different part

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command and fails the test with its stderr if it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces `a` and `b`, veth `dev_a` in `a` to `dev_b` in `b`.
pub struct NsPair {
    /// First namespace.
    pub a: String,
    /// Second namespace.
    pub b: String,
    /// The veth end in `a`.
    pub dev_a: String,
    /// The veth end in `b`.
    pub dev_b: String,
}

impl NsPair {
    /// Creates the pair with `ip_a`/`ip_b` (CIDR) on the veth ends, links and lo up.
    pub fn new(tag: &str, ip_a: &str, ip_b: &str) -> NsPair {
        let id = format!(
            "{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let p = NsPair {
            a: format!("{tag}a{id}"),
            b: format!("{tag}b{id}"),
            dev_a: format!("va{id}"),
            dev_b: format!("vb{id}"),
        };
        run(&["ip", "netns", "add", &p.a]);
        run(&["ip", "netns", "add", &p.b]);
        run(&[
            "ip", "link", "add", &p.dev_a, "netns", &p.a, "type", "veth", "peer", "name", &p.dev_b,
            "netns", &p.b,
        ]);
        for (ns, dev, ip) in [(&p.a, &p.dev_a, ip_a), (&p.b, &p.dev_b, ip_b)] {
            run(&["ip", "-n", ns, "addr", "add", ip, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        p
    }
}

impl Drop for NsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into namespace `ns` (a network namespace is per thread).
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}
