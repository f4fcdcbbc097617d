//! Tearing a lab down from its recorded state alone, so the same code serves
//! Drop, Ctrl-C, `lab down` from another process, and garbage collection of
//! labs whose builder died.

use crate::cmd;
use crate::process::{self, STOP_GRACE, Stopped};
use crate::state::{self, LabState};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::process::Child;

/// What a teardown did, for logs and for tests that prove nothing is left.
#[derive(Debug, Default, Clone)]
pub struct TeardownReport {
    /// Processes stopped, with how.
    pub stopped: Vec<(String, i32, Stopped)>,
    /// Namespaces deleted.
    pub deleted_namespaces: Vec<String>,
    /// Everything that went wrong (teardown continues past errors).
    pub errors: Vec<String>,
}

impl TeardownReport {
    /// True when nothing went wrong.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Stops every process (reverse start order), then deletes every namespace
/// (reverse creation order), then removes the state file.
pub fn teardown(st: &LabState, children: &mut HashMap<i32, Child>) -> TeardownReport {
    let mut rep = TeardownReport::default();
    for rec in st.processes.iter().rev() {
        let how = process::stop(rec, children.get_mut(&rec.pid), Signal::SIGTERM, STOP_GRACE);
        tracing::debug!(lab = %st.id, process = %rec.name, pid = rec.pid, ?how, "stopped");
        rep.stopped.push((rec.name.clone(), rec.pid, how));
    }
    let existing = existing_namespaces();
    for ns in st.namespaces.iter().rev() {
        if !existing.contains(ns) {
            continue;
        }
        match cmd::run(None, &["ip", "netns", "del", ns]) {
            Ok(_) => rep.deleted_namespaces.push(ns.clone()),
            Err(e) => rep.errors.push(format!("delete namespace {ns}: {e:#}")),
        }
    }
    if rep.errors.is_empty() {
        st.remove_file();
    }
    rep
}

/// Names of the network namespaces that exist now (`ip netns list`).
pub fn existing_namespaces() -> Vec<String> {
    cmd::run(None, &["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Tears down labs left behind by test processes that died (their owner is
/// gone and they were not detached on purpose). Returns their ids.
pub fn collect_garbage() -> Vec<String> {
    let mut done = Vec::new();
    for st in state::load_all().into_iter().flatten() {
        if !st.detached && !st.owner_alive() {
            tracing::info!(lab = %st.id, name = %st.name, "tearing down a lab whose builder died");
            let rep = teardown(&st, &mut HashMap::new());
            if !rep.is_clean() {
                tracing::warn!(lab = %st.id, errors = ?rep.errors, "garbage collection incomplete");
            }
            done.push(st.id.clone());
        }
    }
    done
}
