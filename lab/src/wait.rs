//! Polling with a deadline: the lab waits on real daemons (ovs-vtep polls once
//! a second), so every wait is bounded and says what it waited for.

use anyhow::{Result, bail};
use std::time::{Duration, Instant};

/// Polls `probe` every `every` until it returns true or `timeout` passes.
pub fn until(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if probe() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {:?} waiting for {what}", timeout);
        }
        std::thread::sleep(every);
    }
}

/// Like [`until`], with the probe returning a value once ready.
pub fn until_some<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            bail!("timed out after {:?} waiting for {what}", timeout);
        }
        std::thread::sleep(every);
    }
}
