//! Controller: resource model, replicated store, REST API, watch, client library.

pub mod http;
pub mod model;
pub mod node;
pub mod state_machine;
pub mod storage;
pub mod validate;
pub mod watch;
