//! Ping with a loss count and a per-packet timeline. Runs iputils `ping -D -O`
//! inside a lab host and parses its output, so the numbers come from a real
//! ICMP exchange through the kernel.

use crate::lab::{Host, Lab};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::time::Duration;

/// One probe of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// ICMP sequence number (1-based, as ping prints it).
    pub seq: u32,
    /// Round-trip time when answered.
    pub rtt: Option<Duration>,
    /// Wall-clock time of the reply (or of the "no answer yet" report), seconds since the epoch.
    pub at: Option<f64>,
}

/// Result of a ping run.
#[derive(Debug, Clone, PartialEq)]
pub struct PingReport {
    /// Interval between probes.
    pub interval: Duration,
    /// Probes sent (as ping counted them).
    pub transmitted: u32,
    /// One entry per sequence number 1..=transmitted.
    pub timeline: Vec<Probe>,
    /// Duplicate replies seen.
    pub duplicates: u32,
}

impl PingReport {
    /// Probes never answered.
    pub fn lost(&self) -> u32 {
        self.timeline.iter().filter(|p| p.rtt.is_none()).count() as u32
    }

    /// Probes answered.
    pub fn received(&self) -> u32 {
        self.transmitted - self.lost()
    }

    /// Longest run of consecutive unanswered probes.
    pub fn longest_loss_run(&self) -> u32 {
        let (mut best, mut cur) = (0, 0);
        for p in &self.timeline {
            if p.rtt.is_none() {
                cur += 1;
                best = best.max(cur);
            } else {
                cur = 0;
            }
        }
        best
    }

    /// Estimated longest outage: the longest loss run times the interval.
    pub fn longest_outage(&self) -> Duration {
        self.interval * self.longest_loss_run()
    }

    /// Sequence numbers of lost probes, for error messages.
    pub fn lost_seqs(&self) -> Vec<u32> {
        self.timeline
            .iter()
            .filter(|p| p.rtt.is_none())
            .map(|p| p.seq)
            .collect()
    }

    /// One line: `sent 100, received 100, lost 0, longest outage 0ms`.
    pub fn summary(&self) -> String {
        format!(
            "sent {}, received {}, lost {}, longest outage {:?}",
            self.transmitted,
            self.received(),
            self.lost(),
            self.longest_outage()
        )
    }
}

/// Parses iputils ping output produced with `-D -O -n`.
pub fn parse(output: &str, interval: Duration) -> Result<PingReport> {
    let mut replies: BTreeMap<u32, (Duration, f64)> = BTreeMap::new();
    let mut noanswer: BTreeMap<u32, f64> = BTreeMap::new();
    let mut duplicates = 0;
    let mut transmitted = None;
    for line in output.lines() {
        let ts = line
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .and_then(|(t, _)| t.parse::<f64>().ok());
        if let Some(seq) = field(line, "icmp_seq=") {
            let seq: u32 = seq
                .parse()
                .with_context(|| format!("bad icmp_seq in {line:?}"))?;
            if line.contains("no answer yet") {
                noanswer.insert(seq, ts.unwrap_or(0.0));
            } else if let Some(t) = field(line, "time=") {
                let ms: f64 = t.parse().with_context(|| format!("bad time in {line:?}"))?;
                if replies
                    .insert(
                        seq,
                        (Duration::from_secs_f64(ms / 1000.0), ts.unwrap_or(0.0)),
                    )
                    .is_some()
                {
                    duplicates += 1;
                }
            }
        } else if let Some((n, _)) = line.split_once(" packets transmitted") {
            transmitted = Some(
                n.trim()
                    .parse::<u32>()
                    .with_context(|| format!("bad summary {line:?}"))?,
            );
        }
    }
    let Some(transmitted) = transmitted else {
        bail!("no ping summary in output:\n{output}");
    };
    let timeline = (1..=transmitted)
        .map(|seq| match replies.get(&seq) {
            Some((rtt, at)) => Probe {
                seq,
                rtt: Some(*rtt),
                at: Some(*at),
            },
            None => Probe {
                seq,
                rtt: None,
                at: noanswer.get(&seq).copied(),
            },
        })
        .collect();
    Ok(PingReport {
        interval,
        transmitted,
        timeline,
        duplicates,
    })
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = &line[line.find(key)? + key.len()..];
    Some(rest.split_whitespace().next().unwrap_or(rest))
}

fn argv(dst: &str, count: Option<u32>, interval: Duration) -> Vec<String> {
    let mut v: Vec<String> = ["ping", "-D", "-O", "-n", "-W", "1", "-i"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.push(format!("{:.3}", interval.as_secs_f64()));
    if let Some(c) = count {
        v.push("-c".into());
        v.push(c.to_string());
    }
    v.push(dst.into());
    v
}

/// Sends `count` probes from `host` to `dst`, `interval` apart, and waits for
/// the result. A fully lost run is a report with `lost() == count`, not an error.
pub fn ping(host: &Host, dst: &str, count: u32, interval: Duration) -> Result<PingReport> {
    let a = argv(dst, Some(count), interval);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = crate::cmd::output(host.command(&a), &a.join(" "))?;
    parse(&String::from_utf8_lossy(&out.stdout), interval)
}

/// True when one ping from `host` to `dst` is answered within a second.
pub fn reachable(host: &Host, dst: &str) -> bool {
    host.succeeds(&["ping", "-n", "-c", "1", "-W", "1", dst])
}

/// A ping running in the background (for measuring an outage around an event).
#[derive(Debug)]
pub struct BackgroundPing {
    name: String,
    log: std::path::PathBuf,
    interval: Duration,
}

impl BackgroundPing {
    /// Starts pinging `dst` from `host` every `interval` until [`BackgroundPing::stop`].
    pub fn start(lab: &Lab, host: &Host, dst: &str, interval: Duration) -> Result<BackgroundPing> {
        let name = format!("{}/ping-{dst}", host.name);
        let a = argv(dst, None, interval);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        lab.spawn(Some(host), &name, &a, &[])?;
        let log = lab.process_log(&name)?;
        Ok(BackgroundPing {
            name,
            log,
            interval,
        })
    }

    /// Stops the ping (SIGINT, so it prints its summary) and returns the report.
    /// The last probe, still in flight when stopped, is not counted.
    pub fn stop(self, lab: &Lab) -> Result<PingReport> {
        lab.signal_process(&self.name, nix::sys::signal::Signal::SIGINT)?;
        let out = std::fs::read_to_string(&self.log)?;
        let mut rep = parse(&out, self.interval)?;
        if rep.timeline.last().is_some_and(|p| p.rtt.is_none()) {
            rep.timeline.pop();
            rep.transmitted -= 1;
        }
        Ok(rep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured with: ip netns exec <ns> ping -D -O -n -W 1 -i 0.2 -c 5 192.0.2.21
    // with the path cut for the 3rd and 4th probe.
    const OUT: &str = "PING 192.0.2.21 (192.0.2.21) 56(84) bytes of data.
[1763760000.100000] 64 bytes from 192.0.2.21: icmp_seq=1 ttl=64 time=0.412 ms
[1763760000.300000] 64 bytes from 192.0.2.21: icmp_seq=2 ttl=64 time=0.101 ms
[1763760000.700000] no answer yet for icmp_seq=3
[1763760000.900000] no answer yet for icmp_seq=4
[1763760001.100000] 64 bytes from 192.0.2.21: icmp_seq=5 ttl=64 time=0.090 ms

--- 192.0.2.21 ping statistics ---
5 packets transmitted, 3 received, 40% packet loss, time 801ms
rtt min/avg/max/mdev = 0.090/0.201/0.412/0.149 ms
";

    #[test]
    fn parses_timeline_and_losses() {
        let r = parse(OUT, Duration::from_millis(200)).unwrap();
        assert_eq!(r.transmitted, 5);
        assert_eq!(r.received(), 3);
        assert_eq!(r.lost(), 2);
        assert_eq!(r.lost_seqs(), vec![3, 4]);
        assert_eq!(r.longest_loss_run(), 2);
        assert_eq!(r.longest_outage(), Duration::from_millis(400));
        assert_eq!(r.timeline[0].rtt, Some(Duration::from_micros(412)));
    }

    #[test]
    fn missing_summary_is_an_error() {
        assert!(parse("PING x\n", Duration::from_millis(10)).is_err());
    }

    #[test]
    fn duplicates_are_counted_once() {
        let out = "[1.0] 64 bytes from a: icmp_seq=1 ttl=64 time=0.1 ms\n[1.1] 64 bytes from a: icmp_seq=1 ttl=64 time=0.2 ms (DUP!)\n1 packets transmitted, 1 received, +1 duplicates, 0% packet loss\n";
        let r = parse(out, Duration::from_millis(10)).unwrap();
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.lost(), 0);
    }
}
