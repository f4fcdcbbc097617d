//! Long-lived processes inside lab hosts: output captured to the run folder,
//! each in its own process group, stopped by PID (SIGTERM, then SIGKILL).

use crate::state::{ProcRecord, pid_matches, proc_stat};
use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Starts `cmd` in its own process group with stdout and stderr appended to
/// `log`. The returned child's PID is also the group id.
pub fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open log {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    cmd.spawn().with_context(|| format!("spawn {cmd:?}"))
}

/// Outcome of stopping one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// It had already exited (or its PID now belongs to someone else).
    AlreadyGone,
    /// It exited after SIGTERM (or the given signal).
    Terminated,
    /// It ignored SIGTERM for the grace period and was killed.
    Killed,
}

/// Stops a recorded process and its process group: `first` signal, wait up
/// to `grace`, then SIGKILL. Never touches a PID whose start time differs from
/// the record (the PID was reused by an unrelated process).
pub fn stop(
    rec: &ProcRecord,
    child: Option<&mut Child>,
    first: Signal,
    grace: Duration,
) -> Stopped {
    let mut child = child;
    let gone = |child: &mut Option<&mut Child>| -> bool {
        if let Some(c) = child.as_deref_mut() {
            // Our own child: reap it so it does not linger as a zombie.
            return !matches!(c.try_wait(), Ok(None));
        }
        !pid_matches(rec.pid, rec.start_ticks)
    };
    if gone(&mut child) {
        signal_group_leftovers(rec);
        return Stopped::AlreadyGone;
    }
    let pid = Pid::from_raw(rec.pid);
    let _ = killpg(pid, first).or_else(|_| kill(pid, first));
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if gone(&mut child) {
            signal_group_leftovers(rec);
            return Stopped::Terminated;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = killpg(pid, Signal::SIGKILL).or_else(|_| kill(pid, Signal::SIGKILL));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !gone(&mut child) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Stopped::Killed
}

/// After the leader exits, children it forked (ovs-vtep's helpers) may still
/// sit in its group; the group id is the recorded PID, so signal the group
/// once more. Harmless when the group is empty.
fn signal_group_leftovers(rec: &ProcRecord) {
    if proc_stat(rec.pid).is_none() {
        let _ = killpg(Pid::from_raw(rec.pid), Signal::SIGKILL);
    }
}
