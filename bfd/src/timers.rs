//! The timing rules as pure functions: transmit interval and jitter (§6.8.7)
//! and detection time (§6.8.4), so tests can check them apart from the
//! state machine.

use rand::Rng;
use std::time::Duration;

/// §6.8.1: bfd.DesiredMinTxInterval floor while the session is not Up
/// (§6.8.3: "not less than one second (1,000,000 microseconds)").
pub const SLOW_TX_MICROS: u32 = 1_000_000;

/// §6.8.7: the negotiated transmit interval, the greater of our
/// `bfd.DesiredMinTxInterval` and the remote's `bfd.RemoteMinRxInterval` (µs).
pub fn tx_interval(desired_min_tx: u32, remote_min_rx: u32) -> u32 {
    desired_min_tx.max(remote_min_rx)
}

/// §6.8.7: the interval to the next periodic packet, the negotiated interval
/// reduced by a random 0–25 %; when `bfd.DetectMult` is 1 the result must lie
/// between 75 % and 90 % of it, so the reduction is 10–25 %.
pub fn jittered<R: Rng + ?Sized>(interval_us: u32, detect_mult: u8, rng: &mut R) -> Duration {
    let i = u64::from(interval_us);
    let max_cut = i / 4;
    let min_cut = if detect_mult == 1 { i.div_ceil(10) } else { 0 };
    let cut = if min_cut >= max_cut {
        max_cut
    } else {
        rng.random_range(min_cut..=max_cut)
    };
    Duration::from_micros(i - cut)
}

/// §6.8.4: Detection Time in Asynchronous mode, "the value of Detect Mult
/// received from the remote system, multiplied by the agreed transmit interval
/// of the remote system (the greater of bfd.RequiredMinRxInterval and the last
/// received Desired Min TX Interval)".
pub fn detection_time(
    remote_detect_mult: u8,
    required_min_rx: u32,
    remote_desired_min_tx: u32,
) -> Duration {
    Duration::from_micros(
        u64::from(remote_detect_mult) * u64::from(required_min_rx.max(remote_desired_min_tx)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn jitter_stays_within_6_8_7_bounds() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (mut lo, mut hi) = (u64::MAX, 0);
        for _ in 0..10_000 {
            let d = jittered(1_000_000, 3, &mut rng).as_micros() as u64;
            assert!((750_000..=1_000_000).contains(&d), "{d}");
            lo = lo.min(d);
            hi = hi.max(d);
        }
        // The whole range is used, not a corner of it.
        assert!(lo < 760_000 && hi > 990_000, "{lo} {hi}");
        for _ in 0..10_000 {
            let d = jittered(1_000_000, 1, &mut rng).as_micros() as u64;
            assert!((750_000..=900_000).contains(&d), "{d}");
        }
    }

    #[test]
    fn tiny_intervals_do_not_panic() {
        let mut rng = SmallRng::seed_from_u64(2);
        for i in 0..20 {
            for m in [1, 3] {
                let d = jittered(i, m, &mut rng).as_micros() as u32;
                assert!(d <= i);
            }
        }
    }

    #[test]
    fn detection_time_is_mult_times_the_larger_interval() {
        assert_eq!(
            detection_time(3, 300_000, 100_000),
            Duration::from_millis(900)
        );
        assert_eq!(
            detection_time(5, 100_000, 250_000),
            Duration::from_micros(1_250_000)
        );
        assert_eq!(
            detection_time(255, u32::MAX, 1),
            Duration::from_micros(255 * u64::from(u32::MAX))
        );
    }
}
