//! What a lab owns, written to disk after every change so that another
//! process (`lab down`, `lab status`, the next test run) can find and stop it
//! by PID even when the process that built it was killed.
//!
//! Files live in `/run/bridgehead-lab/<id>.json` (a tmpfs, emptied on reboot,
//! exactly like the network namespaces they describe).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Directory holding one state file per lab.
pub fn state_dir() -> PathBuf {
    std::env::var_os("BRIDGEHEAD_LAB_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/bridgehead-lab"))
}

/// A process the lab started, identified so that a reused PID is never killed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcRecord {
    /// Human name, unique in the lab (e.g. `sw1/ovsdb-server`).
    pub name: String,
    /// Namespace it runs in (`None`: the root namespace).
    pub ns: Option<String>,
    /// PID, which is also its process-group id (each is a group leader).
    pub pid: i32,
    /// Start time in clock ticks since boot (/proc/PID/stat field 22).
    pub start_ticks: u64,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// Everything one lab owns: namespaces and processes, in creation order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// Unique id, also the prefix of every namespace name.
    pub id: String,
    /// What the lab is for (test name or topology name).
    pub name: String,
    /// PID of the process that built the lab.
    pub owner_pid: i32,
    /// Start time of the owner, to tell a live owner from a reused PID.
    pub owner_start_ticks: u64,
    /// True when the lab outlives its builder (`lab up`); false for tests.
    pub detached: bool,
    /// Per-run folder with every process's log and captures.
    pub run_dir: PathBuf,
    /// Namespaces, in creation order (deleted in reverse).
    pub namespaces: Vec<String>,
    /// Processes, in start order (stopped in reverse).
    pub processes: Vec<ProcRecord>,
    /// Free-form facts for `lab status` (addresses, targets).
    pub notes: Vec<String>,
}

impl LabState {
    /// Path of this lab's state file.
    pub fn path(&self) -> PathBuf {
        state_dir().join(format!("{}.json", self.id))
    }

    /// Writes the state atomically (temp file + rename).
    pub fn save(&self) -> Result<()> {
        let dir = state_dir();
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let tmp = dir.join(format!(".{}.tmp", self.id));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, self.path())?;
        Ok(())
    }

    /// Removes the state file (after a complete teardown).
    pub fn remove_file(&self) {
        let _ = std::fs::remove_file(self.path());
    }

    /// True while the process that built the lab is still running.
    pub fn owner_alive(&self) -> bool {
        pid_matches(self.owner_pid, self.owner_start_ticks)
    }
}

/// Loads every lab state file; unreadable files are reported, not fatal.
pub fn load_all() -> Vec<Result<LabState>> {
    let Ok(rd) = std::fs::read_dir(state_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<Result<LabState>> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| load(&p))
        .collect();
    out.sort_by(|a, b| match (a, b) {
        (Ok(a), Ok(b)) => a.id.cmp(&b.id),
        _ => std::cmp::Ordering::Equal,
    });
    out
}

/// Loads one state file.
pub fn load(path: &Path) -> Result<LabState> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parse {}", path.display()))
}

/// Reads (start time, state letter) of a PID from /proc.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after dropping pid and comm.
    let start = fields.get(19)?.parse().ok()?;
    Some((start, state))
}

/// Start time of a live PID, for [`ProcRecord::start_ticks`].
pub fn start_ticks(pid: i32) -> u64 {
    proc_stat(pid).map(|(t, _)| t).unwrap_or(0)
}

/// True when `pid` runs, is not a zombie, and is the same process we recorded.
pub fn pid_matches(pid: i32, start_ticks: u64) -> bool {
    match proc_stat(pid) {
        Some((t, state)) => state != 'Z' && state != 'X' && (start_ticks == 0 || t == start_ticks),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_recognised() {
        let me = std::process::id() as i32;
        let t = start_ticks(me);
        assert!(t > 0);
        assert!(pid_matches(me, t));
        assert!(
            !pid_matches(me, t + 1),
            "a different start time is a different process"
        );
    }

    #[test]
    fn absent_pid_is_dead() {
        assert!(!pid_matches(i32::MAX - 1, 0));
    }
}
