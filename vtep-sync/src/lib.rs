//! vtep-sync: OVSDB client, typed hardware_vtep tables and the per-switch reconciler.
//!
//! (crate doc filled in below)

pub mod client;
pub mod datum;
pub mod framing;
pub mod jsonrpc;
pub mod liveness;
pub mod ops;
pub mod replica;
pub mod schema;
pub mod target;
pub mod vtep_tables;
