//! Prometheus metrics for one BFD instance, rendered from a [`Snapshot`] the
//! event loop hands out ([`crate::control::Handle::snapshot`]). The loop
//! keeps plain counters and aggregates; this module only formats them, so
//! the hot path never touches an atomic or a label map, and no label is per
//! session (cardinality stays fixed at any session count).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bfd_sessions` | gauge | `state`: admin_down, down, init, up |
//! | `bfd_packets_received_total` | counter | |
//! | `bfd_packets_sent_total` | counter | |
//! | `bfd_packets_dropped_total` | counter | `reason`: malformed, no_session, ttl, rejected, send_error, vxlan_frame |
//! | `bfd_state_changes_total` | counter | |
//! | `bfd_flaps_total` | counter | |
//! | `bfd_detections_total` | counter | |
//! | `bfd_event_loop_wakeups_total` | counter | |
//! | `bfd_socket_calls_total` | counter | `op`: recv, send |
//! | `bfd_xdp_packets_total` | counter | `path`: xdp, kernel |
//! | `bfd_xdp_kernel_drops_total` | counter | |
//! | `bfd_event_loop_slow_turns_total` | counter | `cause`: work, preempted, woke_late |
//! | `bfd_event_loop_lag_seconds` | histogram | |

use crate::packet::State;
use crate::stats::{LAG_BOUNDS_MICROS, Snapshot};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::{Arc, Mutex, PoisonError};
use thiserror::Error;

/// Why metrics could not be set up or rendered.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct MetricsError(#[from] prometheus::Error);

/// Drop reasons, the bounded values of `bfd_packets_dropped_total{reason}`.
/// `vxlan_frame`: a frame from a VXLAN device its flavor refuses.
pub const DROP_REASONS: [&str; 7] = [
    "malformed",
    "no_session",
    "ttl",
    "rejected",
    "send_error",
    "vxlan_frame",
    "xdp_frame",
];

/// The registry with the BFD collector in it; share it with other metrics of
/// the daemon through [`Metrics::registry`].
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    latest: Arc<Mutex<Snapshot>>,
}

impl Metrics {
    /// A new registry holding the BFD metrics (all zero until [`Metrics::update`]).
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let latest = Arc::new(Mutex::new(Snapshot::default()));
        registry.register(Box::new(SnapshotCollector::new(latest.clone())?))?;
        Ok(Metrics { registry, latest })
    }

    /// Takes the loop's latest numbers (call before each scrape).
    pub fn update(&self, s: &Snapshot) {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = *s;
    }

    /// The registry, to add the daemon's own metrics or gather.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format served at `/metrics`.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

struct Family {
    desc: Desc,
    kind: MetricType,
}

struct SnapshotCollector {
    latest: Arc<Mutex<Snapshot>>,
    families: Vec<Family>,
}

impl std::fmt::Debug for SnapshotCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCollector").finish_non_exhaustive()
    }
}

const SPECS: [(&str, &str, MetricType, Option<&str>); 13] = [
    (
        "bfd_sessions",
        "BFD sessions by state.",
        MetricType::GAUGE,
        Some("state"),
    ),
    (
        "bfd_packets_received_total",
        "BFD Control packets accepted by a session.",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_packets_sent_total",
        "BFD Control packets handed to the kernel.",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_packets_dropped_total",
        "BFD packets dropped, by reason.",
        MetricType::COUNTER,
        Some("reason"),
    ),
    (
        "bfd_state_changes_total",
        "Session state changes.",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_flaps_total",
        "Times a session left Up.",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_detections_total",
        "Times a session went Down because its Detection Time expired (diag 1).",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_event_loop_wakeups_total",
        "Wake-ups of the event loop.",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_socket_calls_total",
        "recvmmsg/sendmmsg system calls (packets per call show batching).",
        MetricType::COUNTER,
        Some("op"),
    ),
    (
        "bfd_xdp_packets_total",
        "Packets on the XDP path (path=\"xdp\", both directions) and transmissions it left to the kernel (path=\"kernel\": neighbour unresolved, another device, or the periodic neighbour confirmation).",
        MetricType::COUNTER,
        Some("path"),
    ),
    (
        "bfd_xdp_kernel_drops_total",
        "Frames the XDP program steered to us that the kernel dropped before our sockets (receive ring full, fill ring empty).",
        MetricType::COUNTER,
        None,
    ),
    (
        "bfd_event_loop_slow_turns_total",
        "Event-loop turns that stalled past 50 ms: cause=\"work\" (timers, sending and receiving took that long, mostly on the CPU: too much for one core), cause=\"preempted\" (as long, mostly off the CPU: other processes or a hypervisor took it) or cause=\"woke_late\" (it woke that long after planned).",
        MetricType::COUNTER,
        Some("cause"),
    ),
    (
        "bfd_event_loop_lag_seconds",
        "How late each session deadline was served by the event loop.",
        MetricType::HISTOGRAM,
        None,
    ),
];

impl SnapshotCollector {
    fn new(latest: Arc<Mutex<Snapshot>>) -> Result<Self, MetricsError> {
        let families = SPECS
            .iter()
            .map(|(name, help, kind, label)| {
                let labels = label.iter().map(|l| l.to_string()).collect();
                Ok(Family {
                    desc: Desc::new(
                        name.to_string(),
                        help.to_string(),
                        labels,
                        Default::default(),
                    )?,
                    kind: *kind,
                })
            })
            .collect::<Result<_, prometheus::Error>>()?;
        Ok(SnapshotCollector { latest, families })
    }
}

fn labelled(name: &str, value: &str, mut m: Metric) -> Metric {
    let mut l = LabelPair::default();
    l.set_name(name.to_owned());
    l.set_value(value.to_owned());
    m.set_label(vec![l]);
    m
}

fn counter(v: u64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v as f64);
    let mut m = Metric::default();
    m.set_counter(c);
    m
}

fn gauge(v: u64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v as f64);
    let mut m = Metric::default();
    m.set_gauge(g);
    m
}

fn metrics_of(name: &str, s: &Snapshot) -> Vec<Metric> {
    let c = &s.counters;
    match name {
        "bfd_sessions" => [
            ("admin_down", State::AdminDown),
            ("down", State::Down),
            ("init", State::Init),
            ("up", State::Up),
        ]
        .iter()
        .map(|(l, st)| labelled("state", l, gauge(s.states.get(*st))))
        .collect(),
        "bfd_packets_received_total" => vec![counter(c.received)],
        "bfd_packets_sent_total" => vec![counter(s.io.send_packets)],
        "bfd_packets_dropped_total" => DROP_REASONS
            .iter()
            .zip(s.drops())
            .map(|(l, v)| labelled("reason", l, counter(v)))
            .collect(),
        "bfd_state_changes_total" => vec![counter(c.state_changes)],
        "bfd_flaps_total" => vec![counter(c.flaps)],
        "bfd_detections_total" => vec![counter(c.detections)],
        "bfd_event_loop_wakeups_total" => vec![counter(s.io.wakeups)],
        "bfd_socket_calls_total" => vec![
            labelled("op", "recv", counter(s.io.recv_calls)),
            labelled("op", "send", counter(s.io.send_calls)),
        ],
        "bfd_xdp_packets_total" => vec![
            labelled("path", "xdp", counter(s.io.xdp.received + s.io.xdp.sent)),
            labelled("path", "kernel", counter(s.io.xdp.via_kernel)),
        ],
        "bfd_xdp_kernel_drops_total" => vec![counter(s.io.xdp.kernel_drops)],
        "bfd_event_loop_slow_turns_total" => vec![
            labelled("cause", "work", counter(s.io.turns.slow_turns)),
            labelled("cause", "preempted", counter(s.io.turns.preempted_turns)),
            labelled("cause", "woke_late", counter(s.io.turns.late_wakeups)),
        ],
        "bfd_event_loop_lag_seconds" => {
            let mut h = Histogram::default();
            let mut cumulative = 0;
            let buckets = LAG_BOUNDS_MICROS
                .iter()
                .zip(s.lag.counts)
                .map(|(bound, n)| {
                    cumulative += n;
                    let mut b = Bucket::default();
                    b.set_upper_bound(*bound as f64 / 1e6);
                    b.set_cumulative_count(cumulative);
                    b
                })
                .collect();
            h.set_bucket(buckets);
            h.set_sample_count(s.lag.count());
            h.set_sample_sum(s.lag.sum_micros as f64 / 1e6);
            let mut m = Metric::default();
            m.set_histogram(h);
            vec![m]
        }
        _ => Vec::new(),
    }
}

impl Collector for SnapshotCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.families.iter().map(|f| &f.desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = *self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        self.families
            .iter()
            .map(|f| {
                let mut mf = MetricFamily::default();
                mf.set_name(f.desc.fq_name.clone());
                mf.set_help(f.desc.help.clone());
                mf.set_field_type(f.kind);
                mf.set_metric(metrics_of(&f.desc.fq_name, &s));
                mf
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_every_family_from_a_snapshot() {
        let m = Metrics::new().unwrap();
        let mut s = Snapshot::default();
        s.states.up = 3;
        s.states.down = 1;
        s.counters.received = 10;
        s.counters.ttl = 2;
        s.counters.detections = 1;
        s.io.send_packets = 11;
        s.io.send_errors = 4;
        s.io.vxlan_rejected = 5;
        s.io.recv_calls = 3;
        s.io.send_calls = 2;
        s.io.xdp.received = 6;
        s.io.xdp.sent = 7;
        s.io.xdp.via_kernel = 8;
        s.io.xdp.rejected = 9;
        s.io.xdp.kernel_drops = 10;
        s.io.turns.slow_turns = 11;
        s.io.turns.late_wakeups = 12;
        s.io.turns.preempted_turns = 13;
        s.lag.observe(Duration::from_micros(700));
        s.lag.observe(Duration::from_secs(3));
        m.update(&s);
        let text = m.render().unwrap();
        for line in [
            r#"bfd_sessions{state="up"} 3"#,
            r#"bfd_sessions{state="down"} 1"#,
            "bfd_packets_received_total 10",
            "bfd_packets_sent_total 11",
            r#"bfd_packets_dropped_total{reason="ttl"} 2"#,
            r#"bfd_packets_dropped_total{reason="send_error"} 4"#,
            r#"bfd_packets_dropped_total{reason="vxlan_frame"} 5"#,
            "bfd_detections_total 1",
            r#"bfd_socket_calls_total{op="recv"} 3"#,
            r#"bfd_socket_calls_total{op="send"} 2"#,
            r#"bfd_xdp_packets_total{path="xdp"} 13"#,
            r#"bfd_xdp_packets_total{path="kernel"} 8"#,
            r#"bfd_packets_dropped_total{reason="xdp_frame"} 9"#,
            "bfd_xdp_kernel_drops_total 10",
            r#"bfd_event_loop_slow_turns_total{cause="work"} 11"#,
            r#"bfd_event_loop_slow_turns_total{cause="preempted"} 13"#,
            r#"bfd_event_loop_slow_turns_total{cause="woke_late"} 12"#,
            r#"bfd_event_loop_lag_seconds_bucket{le="0.0005"} 0"#,
            r#"bfd_event_loop_lag_seconds_bucket{le="0.001"} 1"#,
            r#"bfd_event_loop_lag_seconds_bucket{le="1"} 1"#,
            r#"bfd_event_loop_lag_seconds_bucket{le="+Inf"} 2"#,
            "bfd_event_loop_lag_seconds_count 2",
            "bfd_event_loop_lag_seconds_sum 3.0007",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
