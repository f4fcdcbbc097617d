//! Real peers as lab building blocks: each starts the real daemon inside a lab
//! host, supervised by the lab, and offers the few operations tests need.

pub mod frr;
pub mod kernel_vtep;
pub mod ovs_vtep;
