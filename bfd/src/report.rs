//! Per-session status as an operator or another program reads it: the JSON
//! that `bfd status --json` prints and a running `bfd run` serves on its
//! status socket. Plain values (names, microseconds, Unix milliseconds), so
//! it survives the trip out of the process that holds the `Instant`s.

use crate::manager::{Encap, PeerKey};
use crate::session::Status;
use crate::stats::{LAG_BOUNDS_MICROS, LagHistogram, Snapshot};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Everything `bfd status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// One entry per session, sorted by name.
    pub sessions: Vec<SessionReport>,
    /// Instance-wide totals.
    pub summary: Summary,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReport {
    /// Operator's name from the configuration.
    pub name: String,
    /// Our address.
    pub local: String,
    /// The remote's address.
    pub remote: String,
    /// `single-hop`, `multihop` or `vxlan`.
    pub mode: String,
    /// `bfd.SessionState` (`admin_down`, `down`, `init`, `up`).
    pub state: String,
    /// `bfd.RemoteSessionState`.
    pub remote_state: String,
    /// `bfd.LocalDiag`: why the session last changed state.
    pub diag: String,
    /// The Diag the remote last sent.
    pub remote_diag: String,
    /// `bfd.LocalDiscr`.
    pub local_discriminator: u32,
    /// `bfd.RemoteDiscr` (0 until heard).
    pub remote_discriminator: u32,
    /// Negotiated transmit interval, µs (before jitter).
    pub tx_interval_us: u64,
    /// Negotiated receive interval (the remote's transmit interval), µs.
    pub rx_interval_us: u64,
    /// §6.8.4 Detection Time in force, µs (0 before the remote is heard).
    pub detection_time_us: u64,
    /// Detect Mult the remote last sent.
    pub remote_detect_mult: u8,
    /// Times the session left Up.
    pub flaps: u64,
    /// When the state last changed, Unix time in ms.
    pub last_change_unix_ms: u64,
    /// How long ago the state last changed, ms.
    pub since_last_change_ms: u64,
}

/// Totals of the instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Sessions configured.
    pub sessions: u64,
    /// Sessions Up.
    pub up: u64,
    /// Sessions Init.
    pub init: u64,
    /// Sessions Down.
    pub down: u64,
    /// Sessions AdminDown.
    pub admin_down: u64,
    /// Times any session left Up.
    pub flaps: u64,
    /// Downs with diag 1 (Detection Time expired).
    pub detections: u64,
    /// Packets accepted.
    pub received: u64,
    /// Packets sent.
    pub sent: u64,
    /// Transmissions lost before the wire (socket errors, no free XDP
    /// frame). Absent from older daemons' answers, hence the defaults.
    #[serde(default)]
    pub send_errors: u64,
    /// Received packets dropped: malformed, no session, GTSM, rejected by
    /// a session, or a refused XDP/VXLAN frame.
    #[serde(default)]
    pub dropped: u64,
    /// Frames the kernel dropped before our XDP sockets.
    #[serde(default)]
    pub xdp_kernel_drops: u64,
    /// Event-loop turns whose own work took more than 50 ms.
    /// Deadline lag histogram: counts per bucket of
    /// [`LAG_BOUNDS_MICROS`], then one for anything later.
    #[serde(default)]
    pub slow_turns: u64,
    /// Turns that took more than 50 ms mostly off the CPU (preempted).
    #[serde(default)]
    pub preempted_turns: u64,
    /// Turns that woke more than 50 ms late (the CPU was elsewhere).
    #[serde(default)]
    pub late_wakeups: u64,
    #[serde(default)]
    pub lag_counts: [u64; LAG_BOUNDS_MICROS.len() + 1],
}

/// The file's word for an encapsulation.
pub fn mode_name(e: Encap) -> &'static str {
    match e {
        Encap::SingleHop => "single-hop",
        Encap::MultiHop => "multihop",
        Encap::Vxlan => "vxlan",
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl SessionReport {
    /// Builds an entry; `now` and `wall` are the same moment on the monotonic
    /// and the wall clock, to turn `last_state_change` into Unix time.
    pub fn new(name: &str, key: &PeerKey, s: &Status, now: Instant, wall: SystemTime) -> Self {
        let ago = now.saturating_duration_since(s.last_state_change);
        let at = wall
            .checked_sub(ago)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        SessionReport {
            name: name.to_owned(),
            local: key.local.to_string(),
            remote: key.remote.to_string(),
            mode: mode_name(key.encap).to_owned(),
            state: s.state.name().to_owned(),
            remote_state: s.remote_state.name().to_owned(),
            diag: s.local_diag.name().to_owned(),
            remote_diag: s.remote_diag.name().to_owned(),
            local_discriminator: s.local_discriminator,
            remote_discriminator: s.remote_discriminator,
            tx_interval_us: micros(s.tx_interval),
            rx_interval_us: micros(s.rx_interval),
            detection_time_us: micros(s.detection_time),
            remote_detect_mult: s.remote_detect_mult,
            flaps: s.flaps,
            last_change_unix_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
            since_last_change_ms: u64::try_from(ago.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl Summary {
    /// Totals from the loop's snapshot.
    pub fn from_snapshot(s: &Snapshot) -> Self {
        Summary {
            sessions: s.states.total(),
            up: s.states.up,
            init: s.states.init,
            down: s.states.down,
            admin_down: s.states.admin_down,
            flaps: s.counters.flaps,
            detections: s.counters.detections,
            received: s.counters.received,
            sent: s.io.send_packets,
            send_errors: s.io.send_errors,
            // Every drop reason but send_error, which is on the way out.
            dropped: s.drops().iter().sum::<u64>() - s.io.send_errors,
            xdp_kernel_drops: s.io.xdp.kernel_drops,
            slow_turns: s.io.turns.slow_turns,
            preempted_turns: s.io.turns.preempted_turns,
            late_wakeups: s.io.turns.late_wakeups,
            lag_counts: s.lag.counts,
        }
    }
}

impl Summary {
    /// What the counters gained since `earlier` (an older summary of the
    /// same instance); the gauges (sessions by state) are this one's.
    pub fn since(&self, earlier: &Summary) -> Summary {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        let mut lag_counts = self.lag_counts;
        for (l, e) in lag_counts.iter_mut().zip(earlier.lag_counts) {
            *l = d(*l, e);
        }
        Summary {
            flaps: d(self.flaps, earlier.flaps),
            detections: d(self.detections, earlier.detections),
            received: d(self.received, earlier.received),
            sent: d(self.sent, earlier.sent),
            send_errors: d(self.send_errors, earlier.send_errors),
            dropped: d(self.dropped, earlier.dropped),
            xdp_kernel_drops: d(self.xdp_kernel_drops, earlier.xdp_kernel_drops),
            slow_turns: d(self.slow_turns, earlier.slow_turns),
            preempted_turns: d(self.preempted_turns, earlier.preempted_turns),
            late_wakeups: d(self.late_wakeups, earlier.late_wakeups),
            lag_counts,
            ..*self
        }
    }

    /// The deadline-lag histogram (without its sum, which is not carried).
    pub fn lag(&self) -> LagHistogram {
        LagHistogram {
            counts: self.lag_counts,
            sum_micros: 0,
        }
    }
}

impl StatusReport {
    /// A fixed-width table for a terminal.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<24} {:<15} {:<15} {:<10} {:<10} {:<30} {:>10} {:>7} {:>7} {:>9} {:>5} {:>10}\n",
            "NAME",
            "LOCAL",
            "REMOTE",
            "MODE",
            "STATE",
            "DIAG",
            "REM-DISCR",
            "TX-MS",
            "RX-MS",
            "DETECT-MS",
            "FLAPS",
            "SINCE",
        );
        for s in &self.sessions {
            out.push_str(&format!(
                "{:<24} {:<15} {:<15} {:<10} {:<10} {:<30} {:>10} {:>7} {:>7} {:>9} {:>5} {:>10}\n",
                s.name,
                s.local,
                s.remote,
                s.mode,
                s.state,
                s.diag,
                format!("{:#x}", s.remote_discriminator),
                s.tx_interval_us / 1000,
                s.rx_interval_us / 1000,
                s.detection_time_us / 1000,
                s.flaps,
                human(Duration::from_millis(s.since_last_change_ms)),
            ));
        }
        let m = &self.summary;
        out.push_str(&format!(
            "{} sessions: {} up, {} init, {} down, {} admin_down; {} flaps, {} detections\n",
            m.sessions, m.up, m.init, m.down, m.admin_down, m.flaps, m.detections
        ));
        out
    }
}

/// `3d4h`, `2h5m`, `4m10s`, `12s`: the largest two units.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(250)), "4m10s");
        assert_eq!(human(Duration::from_secs(7500)), "2h5m");
        assert_eq!(human(Duration::from_secs(4 * 86400 + 7200)), "4d2h");
    }
}
