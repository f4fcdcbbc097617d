//! What the controller and its clients exchange besides the objects of
//! [`crate::model`]: the answers of writes, lists, leases and the watch
//! stream. Compiled with or without the `server` feature, so the daemons'
//! client and the server share one definition of each.

use hyper::header::HeaderName;
use serde::{Deserialize, Serialize};

use crate::model::{Event, LeaseId, Stored};

/// Header of the watch answer: the server's revision when the stream started.
pub const REVISION_HEADER: HeaderName = HeaderName::from_static("x-bridgehead-revision");

/// The answer to a successful write.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Written {
    /// Store revision after the write.
    pub revision: u64,
    /// The object as stored (absent for deletes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Stored>,
}

/// A lease: observed state written by a daemon lives as long as the daemon renews it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Identifier.
    pub id: LeaseId,
    /// Time to live, ms.
    pub ttl_ms: u64,
    /// Expiry, ms since the Unix epoch (leader's clock).
    pub expires_at_ms: u64,
    /// Transport node that may use it (see `state_machine::Command::GrantLease`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// One line of the watch stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchMessage {
    /// All (matching) events of one revision.
    Events {
        /// The revision.
        revision: u64,
        /// Its events, in apply order.
        events: Vec<Event>,
    },
    /// Everything up to `revision` has been delivered; resume from here.
    Progress {
        /// Revision the client is now current to.
        revision: u64,
    },
    /// The requested start is no longer in history; list again and watch from the new revision.
    Compacted {
        /// Lowest revision a watch may start from.
        floor: u64,
        /// Current revision.
        current: u64,
    },
}

/// A consistent list: objects as of `revision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// Revision the list reflects; watch from it.
    pub revision: u64,
    /// The objects.
    pub items: Vec<Stored>,
}
