//! The informer a daemon runs: a local copy of some kinds, kept current by
//! list-then-watch, that survives controller restarts and network cuts.
//!
//! ```text
//!   List ──ok──▶ Watch(from = revision) ──messages──▶ ...
//!    ▲  │err        │err / stream broken / silent too long
//!    │  ▼           ▼
//!    └─ Wait(backoff) ◀── (then List or Watch again: resume from the last revision)
//!   compacted ──▶ List (at once)
//! ```
//!
//! The local copy changes only through a successful list (replaced whole)
//! or an events message (applied in revision order). A server whose
//! revision is behind the highest one seen is refused: the reflector
//! reports [`ClientError::ServerBehind`], keeps its copy, and retries with
//! backoff, so a store restored from an old backup (or another cluster at
//! the same address) never rolls a daemon's view back.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{Client, ClientError, WatchStream};
use crate::model::{Event, EventType, Kind, Stored};
use crate::wire::WatchMessage;

/// Exponential backoff with jitter; sans-IO (the caller supplies the randomness).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays start near `base` and double up to `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The next delay. "Equal jitter": half of the exponential step is
    /// fixed, the other half scaled by `unit` in `[0, 1)`, so clients that
    /// lost the same server do not come back in lockstep.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = step / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// After a success: start over at `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// What [`Reflector::next`] reports.
#[derive(Debug)]
pub enum ReflectorEvent {
    /// The copy was (re)built from a list at `revision`: reconcile everything.
    Synced {
        /// Revision of the list.
        revision: u64,
    },
    /// Events of one revision were applied to the copy.
    Changed {
        /// The revision.
        revision: u64,
        /// Its events (of the watched kinds).
        events: Vec<Event>,
    },
    /// Nothing changed up to `revision` (a bookmark).
    Progress {
        /// The revision the copy is current to.
        revision: u64,
    },
    /// A failure; the reflector retries by itself after a backoff. The copy is unchanged.
    Error(ClientError),
}

#[derive(Debug)]
enum Phase {
    List,
    Watch,
    Watching(Box<WatchStream>),
    Wait { until: Instant, then: Box<Phase> },
}

/// A local copy of some kinds of the store, kept current.
#[derive(Debug)]
pub struct Reflector {
    client: Client,
    kinds: Option<Vec<Kind>>,
    objects: BTreeMap<String, Stored>,
    /// Revision the copy reflects (list revision, then each event or bookmark).
    revision: u64,
    /// Highest revision any answer of any server has shown this client.
    seen: u64,
    synced: bool,
    phase: Phase,
    backoff: Backoff,
}

impl Reflector {
    /// A reflector over `kinds` (all if `None`); nothing happens until [`Reflector::next`].
    pub fn new(client: Client, kinds: Option<Vec<Kind>>) -> Reflector {
        Reflector {
            client,
            kinds,
            objects: BTreeMap::new(),
            revision: 0,
            seen: 0,
            synced: false,
            phase: Phase::List,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
        }
    }

    /// Replaces the backoff policy (default 100 ms doubling to 10 s).
    pub fn with_backoff(mut self, b: Backoff) -> Reflector {
        self.backoff = b;
        self
    }

    /// The copy, by key (`kind-segment/name`).
    pub fn objects(&self) -> &BTreeMap<String, Stored> {
        &self.objects
    }

    /// Revision the copy reflects.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// True once a list has succeeded.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    fn wait_then(&mut self, then: Phase) {
        let d = self.backoff.next_delay(rand::random::<f64>());
        tracing::debug!(delay_ms = d.as_millis() as u64, "controller: backing off");
        self.phase = Phase::Wait {
            until: Instant::now() + d,
            then: Box::new(then),
        };
    }

    /// Drives the reflector until something happens.
    ///
    /// Cancel-safe: while a call awaits, the phase it would fall back to is
    /// already in place (list again, or watch again from the revision of the
    /// copy), so dropping the future loses nothing; the next call resumes.
    pub async fn next(&mut self) -> ReflectorEvent {
        loop {
            match std::mem::replace(&mut self.phase, Phase::List) {
                Phase::Wait { until, then } => {
                    self.phase = Phase::Wait { until, then };
                    tokio::time::sleep_until(until).await;
                    if let Phase::Wait { then, .. } =
                        std::mem::replace(&mut self.phase, Phase::List)
                    {
                        self.phase = *then;
                    }
                }
                Phase::List => match self.client.list_kinds(self.kinds.as_deref()).await {
                    Ok(l) if l.revision < self.seen => {
                        self.wait_then(Phase::List);
                        return ReflectorEvent::Error(ClientError::ServerBehind {
                            server: l.revision,
                            seen: self.seen,
                        });
                    }
                    Ok(l) => {
                        self.objects = l
                            .items
                            .into_iter()
                            .map(|s| (s.object.key().to_string(), s))
                            .collect();
                        self.revision = l.revision;
                        self.seen = self.seen.max(l.revision);
                        self.synced = true;
                        self.backoff.reset();
                        self.phase = Phase::Watch;
                        return ReflectorEvent::Synced {
                            revision: l.revision,
                        };
                    }
                    Err(e) => {
                        self.wait_then(Phase::List);
                        return ReflectorEvent::Error(e);
                    }
                },
                Phase::Watch => {
                    self.phase = Phase::Watch;
                    match self
                        .client
                        .watch(self.revision, self.kinds.as_deref())
                        .await
                    {
                        Ok(w) => self.phase = Phase::Watching(Box::new(w)),
                        Err(e) => {
                            self.wait_then(Phase::Watch);
                            return ReflectorEvent::Error(e);
                        }
                    }
                }
                // Dropped mid-read, the next call resumes from the copy's revision.
                Phase::Watching(mut w) => {
                    self.phase = Phase::Watch;
                    let msg = w.next().await;
                    match msg {
                        Some(Ok(WatchMessage::Events { revision, events })) => {
                            self.phase = Phase::Watching(w);
                            if revision <= self.revision {
                                continue;
                            }
                            for e in &events {
                                match e.event_type {
                                    EventType::Put => {
                                        self.objects.insert(e.key.clone(), e.value.clone());
                                    }
                                    EventType::Delete => {
                                        self.objects.remove(&e.key);
                                    }
                                }
                            }
                            self.revision = revision;
                            self.seen = self.seen.max(revision);
                            self.backoff.reset();
                            return ReflectorEvent::Changed { revision, events };
                        }
                        Some(Ok(WatchMessage::Progress { revision })) => {
                            if revision < self.revision {
                                self.wait_then(Phase::Watch);
                                return ReflectorEvent::Error(ClientError::ServerBehind {
                                    server: revision,
                                    seen: self.seen,
                                });
                            }
                            self.phase = Phase::Watching(w);
                            self.revision = revision;
                            self.seen = self.seen.max(revision);
                            self.backoff.reset();
                            return ReflectorEvent::Progress { revision };
                        }
                        Some(Ok(WatchMessage::Compacted { floor, current })) => {
                            tracing::info!(
                                from = self.revision,
                                floor,
                                current,
                                "watch history compacted past our revision: relisting"
                            );
                            self.phase = Phase::List;
                        }
                        Some(Err(e)) => {
                            self.wait_then(Phase::Watch);
                            return ReflectorEvent::Error(e);
                        }
                        None => {
                            self.wait_then(Phase::Watch);
                            return ReflectorEvent::Error(ClientError::Decode(
                                "watch stream ended (server stopping?)".into(),
                            ));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let lows: Vec<u128> = (0..6).map(|_| b.next_delay(0.0).as_millis()).collect();
        assert_eq!(lows, [50, 100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(0.999_999).as_millis(), 99);
        assert_eq!(b.next_delay(0.5).as_millis(), 150);
        // Never beyond max, however many attempts.
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..100 {
            assert!(b.next_delay(1.0) <= Duration::from_secs(10));
        }
    }
}
