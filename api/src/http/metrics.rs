//! Prometheus metrics of the API and the store, served at `/metrics`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `bridgehead_http_requests_total` | counter | `route` (path template), `method`, `status` |
//! | `bridgehead_http_request_duration_seconds` | histogram (to the response head) | `route`, `method` |
//! | `bridgehead_store_revision` | gauge | |
//! | `bridgehead_raft_term`, `bridgehead_raft_commit_index`, `bridgehead_raft_applied_index` | gauge | |
//! | `bridgehead_raft_is_leader` | gauge (0/1) | |
//! | `bridgehead_store_durable_batches` | gauge (fsynced Ready transactions since start) | |
//! | `bridgehead_watch_history_floor` | gauge | |
//! | `bridgehead_watchers` | gauge (open watch streams) | |
//! | `bridgehead_store_file_bytes` | gauge (size of the redb file) | |
//! | `bridgehead_leases` | gauge | |
//! | `bridgehead_objects` | gauge | `kind` |
//!
//! Label values come from fixed sets (path templates, not paths; five
//! methods; status codes), so cardinality is bounded whatever clients send.
//! Store gauges are read from the node at scrape time.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::model::Kind;
use crate::node::Node;

/// The API's metrics and the registry that holds them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    revision: IntGauge,
    term: IntGauge,
    commit: IntGauge,
    applied: IntGauge,
    leader: IntGauge,
    batches: IntGauge,
    floor: IntGauge,
    watchers: IntGauge,
    store_bytes: IntGauge,
    leases: IntGauge,
    objects: IntGaugeVec,
    /// `(collection path, item template)` per kind; the collection path is its own template.
    routes: Vec<(String, String)>,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "bridgehead_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(requests.clone()))
            .expect("unique metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "bridgehead_http_request_duration_seconds",
                "Time from request to response head (for watch: to the stream's start)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(latency.clone()))
            .expect("unique metric");
        let objects = IntGaugeVec::new(
            Opts::new("bridgehead_objects", "Objects in the store by kind"),
            &["kind"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(objects.clone()))
            .expect("unique metric");
        let r = &registry;
        let routes = Kind::ALL
            .iter()
            .map(|k| {
                let base = k.collection_path();
                let item = format!("{base}/{{name}}");
                (base, item)
            })
            .collect();
        Metrics {
            revision: gauge(r, "bridgehead_store_revision", "Current store revision"),
            term: gauge(r, "bridgehead_raft_term", "Current raft term"),
            commit: gauge(r, "bridgehead_raft_commit_index", "Raft commit index"),
            applied: gauge(r, "bridgehead_raft_applied_index", "Raft applied index"),
            leader: gauge(
                r,
                "bridgehead_raft_is_leader",
                "1 if this node is the raft leader",
            ),
            batches: gauge(
                r,
                "bridgehead_store_durable_batches",
                "Fsynced Ready transactions since start",
            ),
            floor: gauge(
                r,
                "bridgehead_watch_history_floor",
                "Lowest revision a watch can start from",
            ),
            watchers: gauge(r, "bridgehead_watchers", "Open watch streams"),
            store_bytes: gauge(r, "bridgehead_store_file_bytes", "Size of the redb file"),
            leases: gauge(r, "bridgehead_leases", "Live leases"),
            objects,
            requests,
            latency,
            registry,
            routes,
        }
    }

    /// The path template a request path matches; a fixed set of values.
    pub fn route_of<'a>(&'a self, path: &str) -> &'a str {
        const FIXED: [&str; 9] = [
            "/v1/leases",
            "/v1/state",
            "/v1/watch",
            "/healthz",
            "/readyz",
            "/metrics",
            "/openapi.json",
            "/v1/leases/{id}",
            "/v1/leases/{id}/renew",
        ];
        if let Some(f) = FIXED[..7].iter().find(|f| **f == path) {
            return f;
        }
        if let Some(rest) = path.strip_prefix("/v1/leases/") {
            return if rest.ends_with("/renew") {
                FIXED[8]
            } else {
                FIXED[7]
            };
        }
        for (base, item) in &self.routes {
            if let Some(rest) = path.strip_prefix(base.as_str()) {
                if rest.is_empty() {
                    return base;
                }
                if rest.len() > 1 && rest.starts_with('/') {
                    return item;
                }
            }
        }
        "other"
    }

    /// A watch stream opened; the guard closes it in the gauge when dropped.
    pub fn watcher(&self) -> WatcherGauge {
        self.watchers.inc();
        WatcherGauge(self.watchers.clone())
    }

    /// Reads the store's gauges from the node and encodes everything as text.
    pub fn render(&self, node: &Node) -> Vec<u8> {
        let rs = node.raft_status();
        self.term.set(rs.term as i64);
        self.commit.set(rs.commit as i64);
        self.applied.set(rs.applied as i64);
        self.leader.set(node.is_leader() as i64);
        self.batches.set(node.durable_batches() as i64);
        self.floor.set(node.history_floor() as i64);
        {
            let st = node.state();
            self.revision.set(st.revision() as i64);
            self.leases.set(st.leases().count() as i64);
            for k in Kind::ALL {
                self.objects
                    .with_label_values(&[k.segment()])
                    .set(st.list(k).count() as i64);
            }
        }
        if let Ok(m) = std::fs::metadata(node.store_file()) {
            self.store_bytes.set(m.len() as i64);
        }
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Decrements the watcher gauge when a watch stream ends.
#[derive(Debug)]
pub struct WatcherGauge(IntGauge);

impl Drop for WatcherGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

/// Middleware: counts every request and times it to the response head.
pub async fn track(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let method = method_label(req.method());
    // Borrowed from `m`, which outlives the request: no copy per request.
    let route = m.route_of(req.uri().path());
    let resp = next.run(req).await;
    let status = resp.status();
    m.latency
        .with_label_values(&[route, method])
        .observe(t0.elapsed().as_secs_f64());
    m.requests
        .with_label_values(&[route, method, status.as_str()])
        .inc();
    resp
}

/// `GET /metrics`.
pub fn answer(m: &Metrics, node: &Node) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        m.render(node),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        let m = Metrics::new();
        for (path, want) in [
            ("/v1/logical-switches", "/v1/logical-switches"),
            ("/v1/logical-switches/web", "/v1/logical-switches/{name}"),
            (
                "/v1/remote-macs/web/02:00:00:00:00:01",
                "/v1/remote-macs/{name}",
            ),
            (
                "/v1/observed/learned-macs/a/b/c",
                "/v1/observed/learned-macs/{name}",
            ),
            ("/v1/leases/7", "/v1/leases/{id}"),
            ("/v1/leases/7/renew", "/v1/leases/{id}/renew"),
            ("/v1/watch", "/v1/watch"),
            ("/v1/logical-switchesX", "other"),
            ("/v1/logical-switches/", "other"),
            ("/random/12345", "other"),
        ] {
            assert_eq!(m.route_of(path), want, "{path}");
        }
    }
}
