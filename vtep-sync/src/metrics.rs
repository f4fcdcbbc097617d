//! Prometheus metrics of the reconcilers, one set of series per switch.
//!
//! vtep-sync is a library first: the daemon that embeds it (gateway,
//! service node, or the standalone binary) owns the [`Registry`] and its
//! HTTP listener, and hands [`Metrics::new`] the registry to register in.
//! One [`Metrics`] serves every reconciler of the process; each series has a
//! `switch` label (the transport node name). Label values are bounded: switch
//! names, table names from [`crate::reconciler::MONITORED_TABLES`], logical
//! switch names, fixed result/op/state words; never MACs or IPs.
//!
//! # Logical_Binding_Stats as counters
//!
//! A switch reports absolute packet and byte counts per VLAN binding
//! (`Physical_Port:vlan_stats` → `Logical_Binding_Stats`). Those values go
//! back to zero when the switch's agent restarts or recreates a binding, and
//! the columns are ephemeral (a restarted switch database drops them). We
//! export them as Prometheus counters per (switch, logical switch) that
//! never go down: [`StatsTracker`] remembers the last value of every stats
//! row and adds the increase; a value lower than the last one is a reset and
//! adds the new value whole (the traffic since the reset), a row seen for the
//! first time adds its whole value. So while neither side restarts the
//! counter equals the switch's total, `rate()` is right across switch
//! restarts, and a restart of vtep-sync looks to Prometheus like any counter
//! reset. Bindings of one logical switch on several ports/VLANs add up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::datum::Uuid;
use crate::observed::{BFD_STATES, Observed, bfd_word, find_switch};
use crate::plan::PlanCounts;
use crate::reconciler::ReconcilerStatus;
use crate::replica::Replica;
use crate::vtep_tables::{LogicalBindingStats, LogicalSwitch, PhysicalPort, RowError, VtepTable};

/// Metric registration failed (a name clash: a programming error, reported not panicked).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// How a transaction ended, the `result` label of the transaction counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnResult {
    /// Committed.
    Committed,
    /// The server answered with an error (will be retried).
    Failed,
    /// No answer within the request timeout (outcome unknown).
    Timeout,
}

impl TxnResult {
    fn label(self) -> &'static str {
        match self {
            TxnResult::Committed => "committed",
            TxnResult::Failed => "failed",
            TxnResult::Timeout => "timeout",
        }
    }
}

/// Packet and byte increments of one logical switch's bindings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsDelta {
    /// Packets received on the bound ports.
    pub packets_from_local: u64,
    /// Bytes received on the bound ports.
    pub bytes_from_local: u64,
    /// Packets sent out of the bound ports.
    pub packets_to_local: u64,
    /// Bytes sent out of the bound ports.
    pub bytes_to_local: u64,
}

impl StatsDelta {
    fn add(&mut self, o: StatsDelta) {
        self.packets_from_local += o.packets_from_local;
        self.bytes_from_local += o.bytes_from_local;
        self.packets_to_local += o.packets_to_local;
        self.bytes_to_local += o.bytes_to_local;
    }

    fn is_zero(&self) -> bool {
        *self == StatsDelta::default()
    }
}

/// Turns the switch's absolute, resettable binding statistics into
/// increments (sans-IO; see the module doc for the semantics).
#[derive(Clone, Debug, Default)]
pub struct StatsTracker {
    /// Last values seen per `Logical_Binding_Stats` row.
    last: BTreeMap<Uuid, [u64; 4]>,
}

fn increase(last: Option<u64>, cur: u64) -> u64 {
    match last {
        Some(l) if cur >= l => cur - l,
        // First sight, or lower than before: the switch reset it.
        _ => cur,
    }
}

impl StatsTracker {
    /// Reads every binding's statistics from the replica and returns the
    /// increase since the previous call, per logical switch (the switch's
    /// row name). Rows that disappeared are forgotten.
    pub fn update(
        &mut self,
        replica: &Replica,
        physical_switch: Option<&str>,
    ) -> Result<BTreeMap<String, StatsDelta>, RowError> {
        // The same switch row the observed state reports on; none, no stats.
        let ports = find_switch(replica, physical_switch)?
            .map(|ps| ps.ports)
            .unwrap_or_default();
        let ls_names: BTreeMap<Uuid, String> = LogicalSwitch::all(replica)?
            .into_iter()
            .map(|l| (l.uuid, l.name))
            .collect();
        let mut seen: BTreeMap<Uuid, [u64; 4]> = BTreeMap::new();
        let mut out: BTreeMap<String, StatsDelta> = BTreeMap::new();
        for port in PhysicalPort::all(replica)? {
            if !ports.contains(&port.uuid) {
                continue;
            }
            for (vlan, stats) in &port.vlan_stats {
                let Some(ls) = port.vlan_bindings.get(vlan).and_then(|u| ls_names.get(u)) else {
                    continue;
                };
                let Some(row) = replica.row(LogicalBindingStats::TABLE, *stats) else {
                    continue;
                };
                let s = LogicalBindingStats::from_row(*stats, row)?;
                let cur = [
                    s.packets_from_local,
                    s.bytes_from_local,
                    s.packets_to_local,
                    s.bytes_to_local,
                ]
                .map(|v| u64::try_from(v).unwrap_or(0));
                let last = self.last.get(stats);
                let inc: [u64; 4] = std::array::from_fn(|i| increase(last.map(|l| l[i]), cur[i]));
                seen.insert(*stats, cur);
                let d = StatsDelta {
                    packets_from_local: inc[0],
                    bytes_from_local: inc[1],
                    packets_to_local: inc[2],
                    bytes_to_local: inc[3],
                };
                out.entry(ls.clone()).or_default().add(d);
            }
        }
        self.last = seen;
        out.retain(|_, d| !d.is_zero());
        Ok(out)
    }
}

/// Every vtep-sync metric; cheap to clone, shared by all reconcilers of a process.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    connected: IntGaugeVec,
    lock_held: IntGaugeVec,
    in_sync: IntGaugeVec,
    transactions: IntCounterVec,
    transaction_duration: HistogramVec,
    plan_duration: HistogramVec,
    rows_written: IntCounterVec,
    rows: IntGaugeVec,
    learned_macs: IntGaugeVec,
    tunnels: IntGaugeVec,
    store_head: IntGaugeVec,
    store_applied: IntGaugeVec,
    store_lag: IntGaugeVec,
    binding_packets: IntCounterVec,
    binding_bytes: IntCounterVec,
    /// Last store head and applied revision per switch, to compute the lag.
    revisions: Arc<Mutex<Revisions>>,
}

#[derive(Debug, Default)]
struct Revisions {
    head: u64,
    applied: BTreeMap<String, u64>,
}

impl Metrics {
    /// Creates every metric and registers it in `registry`.
    pub fn new(registry: &Registry) -> Result<Metrics, MetricsError> {
        let p = |n: &str| format!("bridgehead_vtep_sync_{n}");
        let gauge =
            |n: &str, help: &str, labels: &[&str]| IntGaugeVec::new(Opts::new(p(n), help), labels);
        let counter = |n: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(p(n), help), labels)
        };
        let m = Metrics {
            registry: registry.clone(),
            connected: gauge(
                "connected",
                "1 while the OVSDB session to the switch is up and its dump read",
                &["switch"],
            )?,
            lock_held: gauge(
                "lock_held",
                "1 while this instance holds the switch's writer lock",
                &["switch"],
            )?,
            in_sync: gauge(
                "in_sync",
                "1 when the last plan was empty: the switch matches the desired state",
                &["switch"],
            )?,
            transactions: counter(
                "transactions_total",
                "Transactions sent to the switch, by result (committed, failed, timeout)",
                &["switch", "result"],
            )?,
            transaction_duration: HistogramVec::new(
                HistogramOpts::new(
                    p("transaction_duration_seconds"),
                    "Time from sending a transaction to its reply",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 16)?),
                &["switch"],
            )?,
            plan_duration: HistogramVec::new(
                HistogramOpts::new(
                    p("plan_duration_seconds"),
                    "Time to compute one plan (diff of desired state and replica)",
                )
                .buckets(prometheus::exponential_buckets(0.0001, 4.0, 10)?),
                &["switch"],
            )?,
            rows_written: counter(
                "rows_written_total",
                "Rows written by committed transactions, by operation",
                &["switch", "op"],
            )?,
            rows: gauge(
                "rows",
                "Rows in the switch's database, per monitored table",
                &["switch", "table"],
            )?,
            learned_macs: gauge(
                "learned_macs",
                "MACs the switch learned locally that are reported to the store",
                &["switch"],
            )?,
            tunnels: gauge(
                "tunnels",
                "Tunnels with BFD, by the BFD state the switch reports",
                &["switch", "state"],
            )?,
            store_head: gauge(
                "store_head_revision",
                "Latest store revision known to this process (0 without a store)",
                &[],
            )?,
            store_applied: gauge(
                "store_applied_revision",
                "Store revision of the desired state the switch is in sync with",
                &["switch"],
            )?,
            store_lag: gauge(
                "store_lag_revisions",
                "Store head minus the revision the switch is in sync with (0 without a store)",
                &["switch"],
            )?,
            binding_packets: counter(
                "binding_packets_total",
                "Packets through the switch's VLAN bindings per logical switch (Logical_Binding_Stats; resets handled)",
                &["switch", "logical_switch", "direction"],
            )?,
            binding_bytes: counter(
                "binding_bytes_total",
                "Bytes through the switch's VLAN bindings per logical switch (Logical_Binding_Stats; resets handled)",
                &["switch", "logical_switch", "direction"],
            )?,
            revisions: Arc::default(),
        };
        for c in [
            Box::new(m.connected.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.lock_held.clone()),
            Box::new(m.in_sync.clone()),
            Box::new(m.transactions.clone()),
            Box::new(m.transaction_duration.clone()),
            Box::new(m.plan_duration.clone()),
            Box::new(m.rows_written.clone()),
            Box::new(m.rows.clone()),
            Box::new(m.learned_macs.clone()),
            Box::new(m.tunnels.clone()),
            Box::new(m.store_head.clone()),
            Box::new(m.store_applied.clone()),
            Box::new(m.store_lag.clone()),
            Box::new(m.binding_packets.clone()),
            Box::new(m.binding_bytes.clone()),
        ] {
            registry.register(c)?;
        }
        m.store_head.with_label_values::<&str>(&[]).set(0);
        Ok(m)
    }

    /// The registry the metrics live in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Makes every series of a switch exist (at 0) from the start, so
    /// dashboards need no `absent()`.
    pub fn init_switch(&self, switch: &str) {
        for r in [TxnResult::Committed, TxnResult::Failed, TxnResult::Timeout] {
            self.transactions.with_label_values(&[switch, r.label()]);
        }
        for op in ["insert", "update", "mutate", "delete"] {
            self.rows_written.with_label_values(&[switch, op]);
        }
        for s in BFD_STATES {
            self.tunnels
                .with_label_values(&[switch, bfd_word(s)])
                .set(0);
        }
        self.learned_macs.with_label_values(&[switch]).set(0);
        self.store_applied.with_label_values(&[switch]).set(0);
        self.store_lag.with_label_values(&[switch]).set(0);
        self.status(switch, &ReconcilerStatus::default());
    }

    /// Mirrors a reconciler's status: connection, lock, sync, rows per table.
    pub fn status(&self, switch: &str, s: &ReconcilerStatus) {
        self.connected
            .with_label_values(&[switch])
            .set(i64::from(s.connected && s.synced));
        self.lock_held
            .with_label_values(&[switch])
            .set(i64::from(s.lock_held));
        self.in_sync
            .with_label_values(&[switch])
            .set(i64::from(s.in_sync));
        for (t, n) in &s.rows {
            self.rows
                .with_label_values(&[switch, t.as_str()])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// Records one computed plan.
    pub fn plan(&self, switch: &str, took: Duration) {
        self.plan_duration
            .with_label_values(&[switch])
            .observe(took.as_secs_f64());
    }

    /// Records one transaction; `counts` are the rows it wrote when it committed.
    pub fn transaction(
        &self,
        switch: &str,
        result: TxnResult,
        took: Duration,
        counts: Option<PlanCounts>,
    ) {
        self.transactions
            .with_label_values(&[switch, result.label()])
            .inc();
        self.transaction_duration
            .with_label_values(&[switch])
            .observe(took.as_secs_f64());
        if let (TxnResult::Committed, Some(c)) = (result, counts) {
            for (op, n) in [
                ("insert", c.inserts),
                ("update", c.updates),
                ("mutate", c.mutates),
                ("delete", c.deletes),
            ] {
                self.rows_written
                    .with_label_values(&[switch, op])
                    .inc_by(n as u64);
            }
        }
    }

    /// Mirrors the observed state: learned MACs and tunnels by BFD state.
    pub fn observed(&self, switch: &str, o: &Observed) {
        self.learned_macs
            .with_label_values(&[switch])
            .set(o.learned_macs.len() as i64);
        let mut by_state: BTreeMap<&str, i64> =
            BFD_STATES.iter().map(|s| (bfd_word(*s), 0)).collect();
        for t in o.tunnels.values() {
            *by_state.entry(bfd_word(t.state)).or_default() += 1;
        }
        for (s, n) in by_state {
            self.tunnels.with_label_values(&[switch, s]).set(n);
        }
    }

    /// Adds binding statistics increments (from [`StatsTracker::update`]).
    pub fn binding_stats(&self, switch: &str, deltas: &BTreeMap<String, StatsDelta>) {
        for (ls, d) in deltas {
            let ls = ls.as_str();
            for (dir, packets, bytes) in [
                ("from_local", d.packets_from_local, d.bytes_from_local),
                ("to_local", d.packets_to_local, d.bytes_to_local),
            ] {
                self.binding_packets
                    .with_label_values(&[switch, ls, dir])
                    .inc_by(packets);
                self.binding_bytes
                    .with_label_values(&[switch, ls, dir])
                    .inc_by(bytes);
            }
        }
    }

    /// The switch is in sync with the desired state of this store revision.
    pub fn applied_revision(&self, switch: &str, revision: u64) {
        let mut r = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        r.applied.insert(switch.to_owned(), revision);
        self.store_applied
            .with_label_values(&[switch])
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
        self.set_lag(&r, switch);
    }

    /// The latest revision the store client has seen (the watch's head).
    pub fn store_head(&self, revision: u64) {
        let mut r = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        r.head = r.head.max(revision);
        self.store_head
            .with_label_values::<&str>(&[])
            .set(i64::try_from(r.head).unwrap_or(i64::MAX));
        for s in r.applied.keys() {
            self.set_lag(&r, s);
        }
    }

    fn set_lag(&self, r: &Revisions, switch: &str) {
        let applied = r.applied.get(switch).copied().unwrap_or(0);
        let lag = r.head.saturating_sub(applied);
        self.store_lag
            .with_label_values(&[switch])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// The text exposition of every metric in the registry.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The Prometheus text exposition of a registry.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!(error = %e, "metrics encoding failed");
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::vtep_schema;
    use serde_json::json;

    const PS: &str = "0d796ea5-7adf-4312-8550-4b91c32d1603";
    const P0: &str = "83a6de69-0821-48cd-9d4e-8116bacf6256";
    const P1: &str = "83a6de69-0821-48cd-9d4e-8116bacf6257";
    const LS0: &str = "6b32a7aa-7854-4da3-a746-cfd068ceb71b";
    const S0: &str = "b0000000-0000-0000-0000-000000000001";
    const S1: &str = "b0000000-0000-0000-0000-000000000002";

    fn uuid(u: &str) -> serde_json::Value {
        json!(["uuid", u])
    }

    /// Two ports bound to ls0 (p0 untagged, p1 VLAN 7), each with its stats
    /// row, as ovs-vtep's add_binding creates them.
    fn replica(p0: [i64; 4], p1: [i64; 4]) -> Replica {
        let mut r = Replica::new(vtep_schema());
        let stats = |v: [i64; 4]| {
            json!({"packets_from_local": v[0], "bytes_from_local": v[1],
                   "packets_to_local": v[2], "bytes_to_local": v[3]})
        };
        r.apply_update2(&json!({
            "Physical_Switch": {PS: {"initial": {"name": "sw1",
                "ports": ["set", [uuid(P0), uuid(P1)]]}}},
            "Physical_Port": {
                P0: {"initial": {"name": "p0", "vlan_bindings": ["map", [[0, uuid(LS0)]]],
                                  "vlan_stats": ["map", [[0, uuid(S0)]]]}},
                P1: {"initial": {"name": "p1", "vlan_bindings": ["map", [[7, uuid(LS0)]]],
                                  "vlan_stats": ["map", [[7, uuid(S1)]]]}}
            },
            "Logical_Switch": {LS0: {"initial": {"name": "ls0", "tunnel_key": 5000}}},
            "Logical_Binding_Stats": {S0: {"initial": stats(p0)}, S1: {"initial": stats(p1)}}
        }))
        .unwrap();
        r
    }

    #[test]
    fn stats_increase_add_up_and_survive_resets() {
        let mut t = StatsTracker::default();
        // First sight: the whole value, both bindings summed.
        let d = t
            .update(&replica([10, 1000, 5, 500], [5, 500, 0, 0]), None)
            .unwrap();
        assert_eq!(
            d["ls0"],
            StatsDelta {
                packets_from_local: 15,
                bytes_from_local: 1500,
                packets_to_local: 5,
                bytes_to_local: 500
            }
        );
        // No change: nothing.
        let d = t
            .update(&replica([10, 1000, 5, 500], [5, 500, 0, 0]), None)
            .unwrap();
        assert!(d.is_empty(), "{d:?}");
        // p0 grows, p1 was reset by a switch restart and counted 3 packets since.
        let d = t
            .update(&replica([20, 2000, 5, 500], [3, 300, 0, 0]), Some("sw1"))
            .unwrap();
        assert_eq!(d["ls0"].packets_from_local, 10 + 3);
        assert_eq!(d["ls0"].bytes_from_local, 1000 + 300);
        assert_eq!(d["ls0"].packets_to_local, 0);
        // Another switch's name: no ports of ours, nothing counted, rows forgotten.
        let d = t
            .update(&replica([30, 3000, 5, 500], [3, 300, 0, 0]), Some("sw9"))
            .unwrap();
        assert!(d.is_empty());
        // Seen again after being forgotten: counted whole (a new row to us).
        let d = t
            .update(&replica([30, 3000, 5, 500], [3, 300, 0, 0]), None)
            .unwrap();
        assert_eq!(d["ls0"].packets_from_local, 33);
    }

    #[test]
    fn registry_renders_the_expected_series() {
        let reg = Registry::new();
        let m = Metrics::new(&reg).unwrap();
        m.init_switch("tor1");
        let st = ReconcilerStatus {
            connected: true,
            synced: true,
            lock_held: true,
            in_sync: true,
            rows: BTreeMap::from([("Ucast_Macs_Remote".to_owned(), 10_000)]),
            ..ReconcilerStatus::default()
        };
        m.status("tor1", &st);
        m.transaction(
            "tor1",
            TxnResult::Committed,
            Duration::from_millis(3),
            Some(PlanCounts {
                inserts: 10_001,
                updates: 1,
                mutates: 0,
                deletes: 2,
            }),
        );
        m.transaction("tor1", TxnResult::Failed, Duration::from_millis(1), None);
        m.plan("tor1", Duration::from_micros(300));
        let mut t = StatsTracker::default();
        let d = t
            .update(&replica([10, 1000, 5, 500], [1, 100, 0, 0]), None)
            .unwrap();
        m.binding_stats("tor1", &d);
        m.store_head(42);
        m.applied_revision("tor1", 40);
        let text = m.render();
        for line in [
            r#"bridgehead_vtep_sync_connected{switch="tor1"} 1"#,
            r#"bridgehead_vtep_sync_lock_held{switch="tor1"} 1"#,
            r#"bridgehead_vtep_sync_in_sync{switch="tor1"} 1"#,
            r#"bridgehead_vtep_sync_transactions_total{result="committed",switch="tor1"} 1"#,
            r#"bridgehead_vtep_sync_transactions_total{result="failed",switch="tor1"} 1"#,
            r#"bridgehead_vtep_sync_transactions_total{result="timeout",switch="tor1"} 0"#,
            r#"bridgehead_vtep_sync_transaction_duration_seconds_count{switch="tor1"} 2"#,
            r#"bridgehead_vtep_sync_transaction_duration_seconds_bucket{switch="tor1",le="0.004"} 2"#,
            r#"bridgehead_vtep_sync_plan_duration_seconds_count{switch="tor1"} 1"#,
            r#"bridgehead_vtep_sync_rows_written_total{op="insert",switch="tor1"} 10001"#,
            r#"bridgehead_vtep_sync_rows_written_total{op="delete",switch="tor1"} 2"#,
            r#"bridgehead_vtep_sync_rows{switch="tor1",table="Ucast_Macs_Remote"} 10000"#,
            r#"bridgehead_vtep_sync_tunnels{state="up",switch="tor1"} 0"#,
            r#"bridgehead_vtep_sync_learned_macs{switch="tor1"} 0"#,
            r#"bridgehead_vtep_sync_store_head_revision 42"#,
            r#"bridgehead_vtep_sync_store_applied_revision{switch="tor1"} 40"#,
            r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor1"} 2"#,
            r#"bridgehead_vtep_sync_binding_packets_total{direction="from_local",logical_switch="ls0",switch="tor1"} 11"#,
            r#"bridgehead_vtep_sync_binding_bytes_total{direction="to_local",logical_switch="ls0",switch="tor1"} 500"#,
            "# TYPE bridgehead_vtep_sync_binding_packets_total counter",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        // A second switch in the same registry has its own series; the head is shared.
        m.init_switch("tor2");
        m.applied_revision("tor2", 42);
        let text = m.render();
        assert!(text.contains(r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor2"} 0"#));
        assert!(text.contains(r#"bridgehead_vtep_sync_connected{switch="tor2"} 0"#));
        m.store_head(50);
        let text = m.render();
        assert!(text.contains(r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor1"} 10"#));
        assert!(text.contains(r#"bridgehead_vtep_sync_store_lag_revisions{switch="tor2"} 8"#));
        // Registering twice in one registry is an error value, not a panic.
        assert!(Metrics::new(&reg).is_err());
    }
}
