//! Traffic helpers: ping with a per-packet timeline (for outage measurements)
//! and packet capture decoded by tshark.

pub mod capture;
pub mod ping;
