//! Where an event-loop turn spent its time, and a warning when a turn
//! stalls. A BFD loop that stops for longer than a remote's detection time
//! takes sessions Down that are fine; when that happens the operator needs
//! to know whether the loop had too much to do (its own work: timers,
//! sending, receiving) or was not given the CPU (it woke late). Both are
//! counted; the worst turn of each 10 s is logged once. A slow turn is
//! told apart by the thread's own CPU time: mostly on the CPU is the
//! loop's work (too much for one core), mostly off it is preemption (other
//! processes, or a hypervisor's steal on a VM).

use std::time::{Duration, Instant};

/// A turn whose work or wake-up delay passes this counts as slow.
pub const SLOW: Duration = Duration::from_millis(50);

/// At most one warning per this.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Time spent in one turn (wall time: a phase the CPU was taken from
/// midway, by the scheduler or the hypervisor, includes that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnTimes {
    /// Running due sessions.
    pub timers: Duration,
    /// Handing their packets to the sockets.
    pub send: Duration,
    /// Reading and handling what arrived.
    pub receive: Duration,
    /// How long after its planned wake-up the loop got going again (the
    /// scheduler, another process, the hypervisor).
    pub late: Duration,
    /// The thread's CPU time over the turn (its sleep costs next to
    /// none): well below [`TurnTimes::work`] means it was preempted.
    pub on_cpu: Duration,
}

impl TurnTimes {
    /// The loop's own work in the turn.
    pub fn work(&self) -> Duration {
        self.timers + self.send + self.receive
    }
}

/// Counters of slow turns, for metrics and the status summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Turns whose timers, send and receive took longer than [`SLOW`]
    /// with the thread on the CPU at least half of it: the loop's own work.
    pub slow_turns: u64,
    /// Turns that took longer than [`SLOW`] with the thread off the CPU
    /// more than half of it: preempted midway.
    pub preempted_turns: u64,
    /// Turns that woke more than [`SLOW`] after they planned to.
    pub late_wakeups: u64,
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`; the
/// kernel leaves a hypervisor's steal out of it).
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Counts slow turns and logs the worst now and then.
#[derive(Debug, Clone, Default)]
pub struct TurnWatch {
    stats: TurnStats,
    /// The worst turn since the last warning, and how many were slow.
    worst: Option<TurnTimes>,
    slow_since_log: u64,
    last_log: Option<Instant>,
}

impl TurnWatch {
    /// Records a turn that ended at `now`.
    pub fn record(&mut self, t: TurnTimes, now: Instant) {
        let slow = t.work() > SLOW;
        let late = t.late > SLOW;
        if !slow && !late {
            return;
        }
        if slow {
            if t.on_cpu * 2 >= t.work() {
                self.stats.slow_turns += 1;
            } else {
                self.stats.preempted_turns += 1;
            }
        }
        self.stats.late_wakeups += u64::from(late);
        self.slow_since_log += 1;
        let cost = |x: &TurnTimes| x.work() + x.late;
        if self.worst.is_none_or(|w| cost(&t) > cost(&w)) {
            self.worst = Some(t);
        }
        if self
            .last_log
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        if let Some(w) = self.worst.take() {
            tracing::warn!(
                slow_turns = self.slow_since_log,
                worst_work_ms = w.work().as_millis() as u64,
                timers_ms = w.timers.as_millis() as u64,
                send_ms = w.send.as_millis() as u64,
                receive_ms = w.receive.as_millis() as u64,
                on_cpu_ms = w.on_cpu.as_millis() as u64,
                woke_late_ms = w.late.as_millis() as u64,
                "BFD event loop stalled: sessions may time out falsely (on_cpu near worst_work: the loop's own work is too much for one core; on_cpu well below it, or woke_late: the CPU was taken by other processes or the hypervisor)"
            );
        }
        self.slow_since_log = 0;
        self.last_log = Some(now);
    }

    /// Counters so far.
    pub fn stats(&self) -> TurnStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A turn that spent `send` ms sending, `on_cpu` of it on the CPU.
    fn sending(send: u64, on_cpu: u64) -> TurnTimes {
        TurnTimes {
            send: ms(send),
            on_cpu: ms(on_cpu),
            ..Default::default()
        }
    }

    #[test]
    fn tells_work_preemption_and_late_wakeups_apart() {
        let mut w = TurnWatch::default();
        let now = Instant::now();
        w.record(
            TurnTimes {
                timers: ms(10),
                send: ms(10),
                receive: ms(10),
                late: ms(10),
                on_cpu: ms(30),
            },
            now,
        );
        assert_eq!(w.stats(), TurnStats::default());
        w.record(sending(60, 55), now);
        w.record(sending(60, 20), now + ms(1));
        w.record(
            TurnTimes {
                late: ms(80),
                ..Default::default()
            },
            now + ms(2),
        );
        w.record(
            TurnTimes {
                receive: ms(51),
                late: ms(51),
                on_cpu: ms(51),
                ..Default::default()
            },
            now + ms(3),
        );
        assert_eq!(
            w.stats(),
            TurnStats {
                slow_turns: 2,
                preempted_turns: 1,
                late_wakeups: 2
            }
        );
    }

    #[test]
    fn keeps_the_worst_turn_until_the_next_warning() {
        let mut w = TurnWatch::default();
        let now = Instant::now();
        w.record(sending(60, 60), now); // logged at once
        assert!(w.worst.is_none());
        w.record(sending(70, 70), now + ms(100));
        w.record(sending(300, 10), now + ms(200));
        w.record(sending(90, 90), now + ms(300));
        assert_eq!(w.worst, Some(sending(300, 10)));
        assert_eq!(w.slow_since_log, 3);
        w.record(sending(55, 55), now + LOG_EVERY + ms(1));
        assert!(w.worst.is_none());
        assert_eq!(w.slow_since_log, 0);
    }
}
