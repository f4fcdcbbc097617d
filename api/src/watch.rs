//! List-then-watch, in the etcd v3 shape.
//!
//! A client lists at revision `R` ([`Node::list`], one consistent read), then
//! watches from `R` ([`Node::watch`]) and receives every revision after `R`:
//!
//! - in revision order, each revision whole in one message, never a gap
//!   (the unfiltered stream is `R+1, R+2, ...`; a kind filter skips revisions
//!   that touch none of its kinds but never reorders);
//! - resumable: watching from any `R` still in history replays from the redb
//!   history table, then switches to the live broadcast without gap or
//!   duplicate (it subscribes before reading, and skips what it already sent);
//! - a watcher that falls behind the live broadcast re-reads from disk
//!   instead of losing events;
//! - periodic [`WatchMessage::Progress`] bookmarks say "everything up to this
//!   revision has been delivered", so a quiet client can resume cheaply;
//! - if `R` is below the compacted floor, the answer is
//!   [`WatchMessage::Compacted`]: relist.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::model::{Event, Kind, RevisionEvents};
use crate::node::{Node, Shared};
use crate::storage::StoreError;

pub use crate::wire::{List, WatchMessage};

/// What woke a caught-up watcher.
enum Wake {
    Live(Result<Arc<RevisionEvents>, RecvError>),
    Closed,
    Progress,
}

/// Revisions read from disk per round while catching up.
const CATCH_UP_BATCH: usize = 256;

/// A stream of [`WatchMessage`]s from a start revision.
#[derive(Debug)]
pub struct Watcher {
    shared: Arc<Shared>,
    rx: broadcast::Receiver<Arc<RevisionEvents>>,
    closed: tokio::sync::watch::Receiver<bool>,
    /// Highest revision processed (delivered or filtered out).
    last: u64,
    kinds: Option<Vec<Kind>>,
    backlog: VecDeque<RevisionEvents>,
    caught_up: bool,
    progress_every: Duration,
    next_progress: Instant,
    finished: bool,
}

impl Node {
    /// Lists objects of the given kinds (all kinds if `None`) at the current revision.
    pub fn list(&self, kinds: Option<&[Kind]>) -> List {
        let st = self.state();
        let items = match kinds {
            None => st.objects().cloned().collect(),
            Some(ks) => ks.iter().flat_map(|k| st.list(*k).cloned()).collect(),
        };
        List {
            revision: st.revision(),
            items,
        }
    }

    /// Watches every revision after `from`, optionally only events of `kinds`.
    pub fn watch(&self, from: u64, kinds: Option<Vec<Kind>>, progress_every: Duration) -> Watcher {
        // Subscribe first: whatever commits after this is in `rx`, whatever
        // committed before is on disk, so the two overlap and never leave a gap.
        let rx = self.shared.events.subscribe();
        Watcher {
            shared: self.shared.clone(),
            rx,
            closed: self.shared.closed.subscribe(),
            last: from,
            kinds,
            backlog: VecDeque::new(),
            caught_up: false,
            progress_every,
            next_progress: Instant::now() + progress_every,
            finished: false,
        }
    }

    /// Lowest revision a watch can start from.
    pub fn history_floor(&self) -> u64 {
        self.shared
            .history_floor
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Compacts history now with the given limits; returns the new floor.
    pub fn compact_history(&self, keep_revisions: u64, keep: Duration) -> Result<u64, StoreError> {
        let rev = self.state().revision();
        let floor = self.shared.storage.compact_history(
            rev,
            keep_revisions,
            keep.as_millis() as u64,
            crate::storage::now_ms(),
        )?;
        self.shared
            .history_floor
            .store(floor, std::sync::atomic::Ordering::Relaxed);
        Ok(floor)
    }
}

impl Watcher {
    /// Highest revision delivered or skipped so far.
    pub fn revision(&self) -> u64 {
        self.last
    }

    /// The next message; `None` after `Compacted`, a storage error, or node shutdown.
    ///
    /// Cancel-safe: dropping the future between messages loses nothing.
    pub async fn next(&mut self) -> Option<WatchMessage> {
        if self.finished {
            return None;
        }
        loop {
            if let Some(re) = self.backlog.pop_front() {
                if let Some(m) = self.deliver(re) {
                    return Some(m);
                }
                continue;
            }
            if !self.caught_up {
                match self.shared.storage.history_after(self.last, CATCH_UP_BATCH) {
                    Ok(Ok(v)) if v.is_empty() => self.caught_up = true,
                    Ok(Ok(v)) => self.backlog.extend(v),
                    Ok(Err(floor)) => {
                        self.finished = true;
                        let current = self.shared.state.read().map(|s| s.revision()).unwrap_or(0);
                        return Some(WatchMessage::Compacted { floor, current });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watch history read failed");
                        self.finished = true;
                        return None;
                    }
                }
                continue;
            }
            let wake = tokio::select! {
                r = self.rx.recv() => Wake::Live(r),
                _ = self.closed.wait_for(|c| *c) => Wake::Closed,
                _ = tokio::time::sleep_until(self.next_progress) => Wake::Progress,
            };
            match wake {
                Wake::Live(Ok(re)) => {
                    if re.revision <= self.last {
                        continue;
                    }
                    if re.revision != self.last + 1 {
                        // Something was missed: fetch it from disk.
                        self.caught_up = false;
                        continue;
                    }
                    if let Some(m) = self.deliver((*re).clone()) {
                        return Some(m);
                    }
                }
                Wake::Live(Err(RecvError::Lagged(_))) => self.caught_up = false,
                Wake::Live(Err(RecvError::Closed)) | Wake::Closed => {
                    // The node stopped: end the stream; the client resumes elsewhere.
                    self.finished = true;
                    return None;
                }
                Wake::Progress => {
                    self.next_progress = Instant::now() + self.progress_every;
                    return Some(WatchMessage::Progress {
                        revision: self.last,
                    });
                }
            }
        }
    }

    /// Advances `last` past `re` and returns it if anything in it matches.
    fn deliver(&mut self, re: RevisionEvents) -> Option<WatchMessage> {
        if re.revision <= self.last {
            return None;
        }
        self.last = re.revision;
        let events: Vec<Event> = match &self.kinds {
            None => re.events,
            Some(ks) => re
                .events
                .into_iter()
                .filter(|e| ks.contains(&e.value.object.kind()))
                .collect(),
        };
        if events.is_empty() {
            return None;
        }
        self.next_progress = Instant::now() + self.progress_every;
        Some(WatchMessage::Events {
            revision: re.revision,
            events,
        })
    }
}
