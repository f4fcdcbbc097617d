//! Connection liveness without I/O: the inactivity probe and the reconnect
//! backoff. Time is passed in, so both are tested with a virtual clock.

use std::time::{Duration, Instant};

/// What the inactivity probe wants done now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    /// Nothing is due.
    Nothing,
    /// The peer has been silent for one interval: send an `echo`.
    SendEcho,
    /// The echo went unanswered for another interval: the peer is gone.
    Disconnect,
}

/// The OVSDB inactivity probe (as ovsdb-server and ovs-vswitchd do it):
/// after one interval without receiving anything, send an echo; after a
/// second silent interval, give up on the connection.
#[derive(Clone, Debug)]
pub struct Prober {
    interval: Option<Duration>,
    last_rx: Instant,
    echo_sent: bool,
}

impl Prober {
    /// A probe with the given interval (`None` disables probing), started at `now`.
    pub fn new(interval: Option<Duration>, now: Instant) -> Self {
        Self {
            interval,
            last_rx: now,
            echo_sent: false,
        }
    }

    /// Records that something arrived from the peer; any message proves it is alive.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_rx = now;
        self.echo_sent = false;
    }

    /// When [`Prober::handle_timeout`] next needs to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let i = self.interval?;
        Some(self.last_rx + if self.echo_sent { i * 2 } else { i })
    }

    /// Decides what to do at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> ProbeAction {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                if self.echo_sent {
                    ProbeAction::Disconnect
                } else {
                    self.echo_sent = true;
                    ProbeAction::SendEcho
                }
            }
            _ => ProbeAction::Nothing,
        }
    }
}

/// Exponential reconnect backoff with jitter, so that many clients cut off
/// by one server restart do not all reconnect in the same instant.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Backoff doubling from `min` up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            current: min,
        }
    }

    /// The next delay; `jitter` in `[0, 1)` picks a point in the upper half
    /// of the current step (so the delay never collapses to zero).
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        base.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Starts again from the minimum after a connection proved healthy.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_echo_then_disconnects() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Prober::new(Some(5 * s), t0);
        assert_eq!(p.poll_timeout(), Some(t0 + 5 * s));
        assert_eq!(p.handle_timeout(t0 + 4 * s), ProbeAction::Nothing);
        assert_eq!(p.handle_timeout(t0 + 5 * s), ProbeAction::SendEcho);
        assert_eq!(p.poll_timeout(), Some(t0 + 10 * s));
        assert_eq!(p.handle_timeout(t0 + 9 * s), ProbeAction::Nothing);
        assert_eq!(p.handle_timeout(t0 + 10 * s), ProbeAction::Disconnect);
    }

    #[test]
    fn traffic_resets_the_probe() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut p = Prober::new(Some(5 * s), t0);
        assert_eq!(p.handle_timeout(t0 + 5 * s), ProbeAction::SendEcho);
        p.on_receive(t0 + 6 * s);
        assert_eq!(p.handle_timeout(t0 + 10 * s), ProbeAction::Nothing);
        assert_eq!(p.handle_timeout(t0 + 11 * s), ProbeAction::SendEcho);
        let mut off = Prober::new(None, t0);
        assert_eq!(off.poll_timeout(), None);
        assert_eq!(off.handle_timeout(t0 + 1000 * s), ProbeAction::Nothing);
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000));
        let full: Vec<_> = (0..6).map(|_| b.next_delay(0.999_999)).collect();
        let bases = [100, 200, 400, 800, 1000, 1000];
        for (d, base) in full.iter().zip(bases) {
            assert!(*d <= ms(base) && *d >= ms(base) / 2, "{d:?} vs {base}");
        }
        b.reset();
        assert_eq!(b.next_delay(0.0), ms(50));
        assert_eq!(b.next_delay(0.0), ms(100));
    }
}
