//! vtep-sync: OVSDB client, typed hardware_vtep tables and (later) the
//! per-switch reconciler that makes a hardware VTEP match the controller.
//!
//! # How the pieces fit
//!
//! ```text
//!             bytes                JSON values            messages
//!  socket ─────────────▶ framing ─────────────▶ jsonrpc ─────────────▶ client task
//!  (target: tcp/unix/ssl)  JsonSplitter          Message, Pending        │   │
//!                                                                        │   ├─ echo answered at once
//!                                                  liveness::Prober ◀────┤   ├─ our own echo probe
//!                                                  liveness::Backoff ◀───┤   ├─ reconnect + fresh monitor
//!                                                                        │   └─ lock / steal / unlock
//!                                update / update2                        ▼
//!                     replica::Replica  ◀────────────────────────  notifications
//!                          │ rows (datum::Row)
//!                          ▼
//!                  vtep_tables::{LogicalSwitch, PhysicalPort, ...}  (typed reads)
//!                  vtep_tables::check_schema(schema)                 (refuse old switches)
//!
//!  writes:  ops::Operation builders ─▶ Client::transact ─▶ ops::parse_transact_result
//! ```
//!
//! Everything except [`client`] and [`target`] is sans-IO: [`framing`],
//! [`jsonrpc`], [`datum`], [`ops`], [`schema`], [`replica`], [`liveness`] and
//! [`vtep_tables`] are plain data and functions, fed bytes, JSON and `now`,
//! and are unit tested on JSON captured from ovsdb-server 3.1. The
//! [`client::Client`] runs one tokio task per server connection that owns
//! the socket; callers send requests through a channel and get oneshot
//! replies, and receive [`client::Event`]s (connected, synced, updated,
//! locked, stolen, disconnected). The monitored [`replica::Replica`] is
//! rebuilt from a fresh initial dump after every reconnect and swapped in
//! whole, so readers never see a half-built copy.
//!
//! Tests against the real ovsdb-server and vtep-ctl live in
//! `tests/ovsdb_server.rs` behind the `root-tests` feature.

#![warn(missing_docs)]

pub mod client;
pub mod datum;
pub mod desired;
pub mod framing;
pub mod jsonrpc;
pub mod liveness;
pub mod ops;
pub mod plan;
pub mod reconciler;
pub mod replica;
pub mod schema;
pub mod target;
#[cfg(test)]
mod testsim;
pub mod vtep_tables;
