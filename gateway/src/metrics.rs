//! Prometheus metrics of the gateway daemon and the listener that serves them.
//!
//! Label values are bounded: object kinds and netlink operation names, never
//! MACs or interface names. Served as text at `GET /metrics` on the address
//! given to the daemon (`--metrics-listen`, default [`DEFAULT_LISTEN`]).

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::desired::NEXTHOP_PROTOCOL;
use crate::observed::{LinkKind, Observed};
use crate::reconciler::PassReport;

/// Default metrics address: loopback only (port 9470, next to the other
/// Bridgehead daemons' ports); expose it wider with `--metrics-listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9470";

/// Object kinds counted in `bridgehead_gateway_objects`.
pub const OBJECT_KINDS: [&str; 9] = [
    "bridge",
    "vxlan",
    "vlan",
    "port",
    "fdb",
    "port_fdb",
    "neighbour",
    "nexthop",
    "nexthop_group",
];

/// Metric registration failed (a name clash: a programming error, reported not panicked).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every metric of the daemon, registered in one [`Registry`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Our kernel objects by kind, as of the last pass's dump.
    pub objects: IntGaugeVec,
    /// Netlink requests the kernel refused (or dumps that failed), by operation.
    pub netlink_errors: IntCounterVec,
    /// Completed reconcile passes.
    pub passes: IntCounter,
    /// Wall time of a pass: dump + diff + apply.
    pub pass_duration: Histogram,
    /// Kernel changes applied.
    pub actions_applied: IntCounter,
    /// Parts of the desired state that cannot be realised (last pass).
    pub problems: IntGauge,
    /// 1 while the desired state is invalid (nothing is applied then).
    pub desired_invalid: IntGauge,
    /// MACs currently learned on local ports.
    pub learned_macs: IntGauge,
    /// Store revision of the desired state in force.
    pub desired_revision: IntGauge,
    /// Store revision the kernel last reflected in full (a pass with no
    /// failed action); 0 before the first such pass.
    pub applied_revision: IntGauge,
    /// Newest store revision seen (events and progress bookmarks); 0 with the file source.
    pub store_head: IntGauge,
    /// Store revisions the kernel is behind: head − applied revision while a
    /// newer desired state waits to be applied, else 0 (always 0 with the
    /// file source, which has no head). See [`store_lag`].
    pub store_lag: IntGauge,
    /// 1 while the desired-state source (file, later the store) is readable.
    pub source_up: IntGauge,
    /// Failed controller calls, by operation (watch, grant, renew, put, delete).
    pub store_errors: IntCounterVec,
    /// Learned MACs currently written to the store.
    pub learned_published: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new();
        let p = |n: &str| format!("bridgehead_gateway_{n}");
        let m = Metrics {
            objects: IntGaugeVec::new(
                Opts::new(p("objects"), "Kernel objects owned by Bridgehead, by kind"),
                &["kind"],
            )?,
            netlink_errors: IntCounterVec::new(
                Opts::new(
                    p("netlink_errors_total"),
                    "Netlink requests that failed, by operation",
                ),
                &["op"],
            )?,
            passes: IntCounter::new(p("reconcile_passes_total"), "Completed reconcile passes")?,
            pass_duration: Histogram::with_opts(
                HistogramOpts::new(
                    p("reconcile_duration_seconds"),
                    "Duration of a reconcile pass (dump, diff, apply)",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 4.0, 10)?),
            )?,
            actions_applied: IntCounter::new(
                p("actions_applied_total"),
                "Kernel changes applied by reconcile passes",
            )?,
            problems: IntGauge::new(
                p("desired_problems"),
                "Parts of the desired state that cannot be realised on this node",
            )?,
            desired_invalid: IntGauge::new(
                p("desired_invalid"),
                "1 while the desired state fails validation (nothing applied)",
            )?,
            learned_macs: IntGauge::new(p("learned_macs"), "MACs learned on local ports")?,
            desired_revision: IntGauge::new(
                p("desired_revision"),
                "Store revision of the desired state in force",
            )?,
            applied_revision: IntGauge::new(
                p("applied_revision"),
                "Store revision the kernel last reflected in full",
            )?,
            store_head: IntGauge::new(
                p("store_head_revision"),
                "Newest store revision seen (0 without a store client)",
            )?,
            store_lag: IntGauge::new(
                p("store_lag_revisions"),
                "Store revisions the kernel is behind the head (0 without a store client)",
            )?,
            source_up: IntGauge::new(
                p("desired_source_up"),
                "1 while the desired-state source is readable",
            )?,
            store_errors: IntCounterVec::new(
                Opts::new(
                    p("store_errors_total"),
                    "Failed controller calls, by operation",
                ),
                &["op"],
            )?,
            learned_published: IntGauge::new(
                p("learned_macs_published"),
                "Learned MACs currently written to the store",
            )?,
            registry,
        };
        for c in [
            Box::new(m.objects.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.netlink_errors.clone()),
            Box::new(m.passes.clone()),
            Box::new(m.pass_duration.clone()),
            Box::new(m.actions_applied.clone()),
            Box::new(m.problems.clone()),
            Box::new(m.desired_invalid.clone()),
            Box::new(m.learned_macs.clone()),
            Box::new(m.desired_revision.clone()),
            Box::new(m.applied_revision.clone()),
            Box::new(m.store_head.clone()),
            Box::new(m.store_lag.clone()),
            Box::new(m.source_up.clone()),
            Box::new(m.store_errors.clone()),
            Box::new(m.learned_published.clone()),
        ] {
            m.registry.register(c)?;
        }
        // Every kind shows up from the start, as 0, so dashboards need no `absent()`.
        for k in OBJECT_KINDS {
            m.objects.with_label_values(&[k]).set(0);
        }
        Ok(m)
    }

    /// Records one pass.
    pub fn observe_pass(&self, took: Duration, observed: &Observed, report: &PassReport) {
        self.passes.inc();
        self.pass_duration.observe(took.as_secs_f64());
        self.actions_applied.inc_by(report.applied as u64);
        for (a, _) in &report.failed {
            self.netlink_error(a.kind());
        }
        self.problems.set(report.problems.len() as i64);
        self.desired_invalid
            .set(i64::from(!report.invalid.is_empty()));
        if report.invalid.is_empty() && report.failed.is_empty() {
            self.applied_revision.set(report.revision as i64);
        }
        for (k, n) in count_objects(observed) {
            self.objects.with_label_values(&[k]).set(n as i64);
        }
    }

    /// Counts one failed controller call.
    pub fn store_error(&self, op: &str) {
        self.store_errors.with_label_values(&[op]).inc();
    }

    /// Counts one failed netlink operation.
    pub fn netlink_error(&self, op: &str) {
        self.netlink_errors.with_label_values(&[op]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for the text format's inputs.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Store revisions the kernel is behind: 0 once a pass has applied the
/// desired state in force (first computed at `in_force_since`, and still
/// current at `head` when later revisions did not change it), else the
/// distance from the head to the last fully applied revision.
pub fn store_lag(head: u64, in_force_since: u64, applied: u64) -> u64 {
    if applied >= in_force_since {
        0
    } else {
        head.saturating_sub(applied)
    }
}

/// Our objects in a snapshot, by kind (every kind present, maybe 0).
pub fn count_objects(o: &Observed) -> BTreeMap<&'static str, usize> {
    let mut n: BTreeMap<&'static str, usize> = OBJECT_KINDS.iter().map(|k| (*k, 0)).collect();
    let mut bridges = HashSet::new();
    let mut vxlans = HashSet::new();
    let mut vlans = 0;
    for l in o.links.iter().filter(|l| l.is_ours()) {
        match l.kind {
            LinkKind::Bridge => {
                bridges.insert(l.index);
            }
            LinkKind::Vxlan(_) => {
                vxlans.insert(l.index);
            }
            LinkKind::Vlan { .. } => vlans += 1,
            LinkKind::Other(_) => {}
        }
    }
    // Ports of our bridges other than our VXLAN devices: NICs, VLANs, VM ports.
    let ports: HashSet<u32> = o
        .links
        .iter()
        .filter(|l| l.master.is_some_and(|m| bridges.contains(&m)) && !vxlans.contains(&l.index))
        .map(|l| l.index)
        .collect();
    let mut bump = |k: &'static str, by: usize| {
        if let Some(v) = n.get_mut(k) {
            *v += by;
        }
    };
    bump("bridge", bridges.len());
    bump("vxlan", vxlans.len());
    bump("vlan", vlans);
    bump("port", ports.len());
    bump(
        "fdb",
        o.fdb.iter().filter(|e| vxlans.contains(&e.ifindex)).count(),
    );
    bump(
        "port_fdb",
        o.port_fdb
            .iter()
            .filter(|e| vxlans.contains(&e.port) || ports.contains(&e.port))
            .count(),
    );
    bump(
        "neighbour",
        o.neighbours
            .iter()
            .filter(|e| e.permanent && bridges.contains(&e.ifindex))
            .count(),
    );
    for nh in o.nexthops.iter().filter(|n| n.protocol == NEXTHOP_PROTOCOL) {
        bump(
            if nh.group.is_empty() {
                "nexthop"
            } else {
                "nexthop_group"
            },
            1,
        );
    }
    n
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    m.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener (separately from [`serve`], so a bad address
/// fails the daemon's start-up instead of a background task).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{ObservedFdb, ObservedLink, ObservedNexthop, ObservedPortFdb};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn link(index: u32, name: &str, kind: LinkKind, master: Option<u32>) -> ObservedLink {
        ObservedLink {
            index,
            name: name.into(),
            alias: None,
            kind,
            master,
            parent: None,
            up: true,
            neigh_suppress: None,
        }
    }

    #[test]
    fn counts_only_our_objects() {
        let vx = crate::observed::VxlanParams {
            vni: 1,
            local: None,
            port: 4789,
            learning: false,
            underlay: None,
        };
        let o = Observed {
            links: vec![
                link(10, "bhbr1", LinkKind::Bridge, None),
                link(11, "bhvx1", LinkKind::Vxlan(vx.clone()), Some(10)),
                link(12, "tap1", LinkKind::Other(None), Some(10)),
                link(20, "br0", LinkKind::Bridge, None),
                link(21, "vxlan0", LinkKind::Vxlan(vx), Some(20)),
            ],
            fdb: vec![
                ObservedFdb {
                    ifindex: 11,
                    mac: crate::MacAddr::ZERO,
                    dst: None,
                },
                ObservedFdb {
                    ifindex: 21,
                    mac: crate::MacAddr::ZERO,
                    dst: None,
                },
            ],
            port_fdb: vec![
                ObservedPortFdb {
                    port: 11,
                    mac: crate::MacAddr([2, 0, 0, 0, 0, 1]),
                },
                ObservedPortFdb {
                    port: 12,
                    mac: crate::MacAddr([2, 0, 0, 0, 0, 2]),
                },
            ],
            nexthops: vec![
                ObservedNexthop {
                    id: 1,
                    protocol: NEXTHOP_PROTOCOL,
                    gateway: None,
                    group: vec![],
                    fdb: true,
                },
                ObservedNexthop {
                    id: 2,
                    protocol: 3,
                    gateway: None,
                    group: vec![],
                    fdb: true,
                },
            ],
            ..Observed::default()
        };
        let n = count_objects(&o);
        assert_eq!(n["bridge"], 1);
        assert_eq!(n["vxlan"], 1);
        assert_eq!(n["port"], 1);
        assert_eq!(n["fdb"], 1);
        assert_eq!(n["port_fdb"], 2);
        assert_eq!(n["nexthop"], 1);
        assert_eq!(n["nexthop_group"], 0);
        assert_eq!(n.len(), OBJECT_KINDS.len());
    }

    #[test]
    fn lag_is_zero_once_the_state_in_force_is_applied() {
        // Applied at 7; the state in force was computed at 7, head moved on.
        assert_eq!(store_lag(12, 7, 7), 0);
        // A new state computed at 10 is not applied yet.
        assert_eq!(store_lag(12, 10, 7), 5);
        // Nothing applied yet.
        assert_eq!(store_lag(3, 3, 0), 3);
        assert_eq!(store_lag(0, 0, 0), 0);
    }

    #[tokio::test]
    async fn endpoint_serves_the_metrics() {
        let m = Metrics::new().unwrap();
        m.netlink_error("add_fdb");
        m.learned_macs.set(3);
        m.observe_pass(
            Duration::from_millis(2),
            &Observed::default(),
            &PassReport::default(),
        );
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, m, async {
            let _ = stop_rx.await;
        }));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).await.unwrap();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("text/plain; version=0.0.4"), "{body}");
        for line in [
            "bridgehead_gateway_netlink_errors_total{op=\"add_fdb\"} 1",
            "bridgehead_gateway_learned_macs 3",
            "bridgehead_gateway_reconcile_passes_total 1",
            "bridgehead_gateway_reconcile_duration_seconds_count 1",
            "bridgehead_gateway_objects{kind=\"fdb\"} 0",
            "bridgehead_gateway_store_lag_revisions 0",
        ] {
            assert!(body.contains(line), "missing {line:?} in\n{body}");
        }
        stop_tx.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
