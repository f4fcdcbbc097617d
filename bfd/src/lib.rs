//! BFD: wire format, sans-IO session core and the scalable session manager.

pub mod auth;
pub mod packet;
