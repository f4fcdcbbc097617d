//! [`LeaseKeeper`]: the lease a daemon writes its observed objects under.
//!
//! Granted when first needed, renewed every TTL/3, and forgotten when the
//! controller no longer knows it (404 on renew, or on a write under it: it
//! expired, e.g. after a long partition), so that the next [`LeaseKeeper::ensure`]
//! grants a new one and the daemon writes everything again. Objects written
//! under the old lease go when it expires, one TTL at most.

use std::time::Duration;

use tokio::time::Instant;

use super::{Client, ClientError};
use crate::model::LeaseId;

/// The lease of one writer, with its renewal clock.
#[derive(Debug, Clone)]
pub struct LeaseKeeper {
    ttl: Duration,
    lease: Option<LeaseId>,
    next_renew: Instant,
}

/// What [`LeaseKeeper::ensure`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The lease to write under.
    pub id: LeaseId,
    /// It was granted by this call: no object is under it yet.
    pub new: bool,
}

impl LeaseKeeper {
    /// No lease yet; one of `ttl` is granted when first needed.
    pub fn new(ttl: Duration) -> Self {
        LeaseKeeper {
            ttl,
            lease: None,
            next_renew: Instant::now(),
        }
    }

    /// The lease held, if any.
    pub fn id(&self) -> Option<LeaseId> {
        self.lease
    }

    /// When the next renewal is due (`None` without a lease).
    pub fn next_renew(&self) -> Option<Instant> {
        self.lease.map(|_| self.next_renew)
    }

    /// Renews the lease if a renewal is due. Returns false if the controller
    /// no longer knows it: it is forgotten, and whatever was written under
    /// it must be written again (under the lease [`Self::ensure`] grants).
    pub async fn renew_if_due(&mut self, client: &Client) -> Result<bool, ClientError> {
        let Some(id) = self.lease else {
            return Ok(true);
        };
        if Instant::now() < self.next_renew {
            return Ok(true);
        }
        match client.renew_lease(id).await {
            Ok(_) => {
                self.next_renew = Instant::now() + self.ttl / 3;
                Ok(true)
            }
            Err(e) if e.status() == Some(404) => {
                self.lost();
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The lease to write under, granted now if none is held.
    pub async fn ensure(&mut self, client: &Client) -> Result<Held, ClientError> {
        if let Some(id) = self.lease {
            return Ok(Held { id, new: false });
        }
        let l = client.grant_lease(self.ttl).await?;
        tracing::info!(lease = l.id, ttl_ms = l.ttl_ms, "lease granted");
        self.lease = Some(l.id);
        self.next_renew = Instant::now() + self.ttl / 3;
        Ok(Held {
            id: l.id,
            new: true,
        })
    }

    /// Forgets the lease: the controller answered 404 to a write under it.
    pub fn lost(&mut self) {
        tracing::warn!(lease = ?self.lease,
            "lease gone at the controller; granting a new one and writing everything again");
        self.lease = None;
    }
}
