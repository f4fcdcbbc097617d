//! Steering a running [`crate::udp::Driver`] from other threads (a daemon's
//! tokio tasks, a status API): commands go through a channel, and an eventfd
//! in the loop's `ppoll` set wakes it at once, so the one event loop stays
//! the only owner of the sessions.

use crate::config::{ConfigError, SessionConfig};
use crate::manager::{Counters, ManagerError, PeerKey};
use crate::packet::Diagnostic;
use crate::session::{Event, Status};
use crate::stats::Snapshot;
use crate::udp::Driver;
use crate::vxlan::VxlanFlavor;
use futures::channel::oneshot;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use thiserror::Error;

/// The loop's answer to one request.
type Reply<T> = oneshot::Sender<T>;

/// A request to the loop; replies come back on the embedded channel.
#[derive(Debug)]
enum Command {
    Add(PeerKey, SessionConfig, Reply<Result<u32, ManagerError>>),
    Remove(u32, Reply<bool>),
    Retire(u32, Diagnostic, Reply<bool>),
    AdminDown(u32, Diagnostic),
    AdminUp(u32),
    SetParams(u32, Duration, Duration, u8, Reply<Result<(), ConfigError>>),
    Statuses(Reply<Vec<(u32, PeerKey, Status)>>),
    Counters(Reply<Counters>),
    Snapshot(Reply<Snapshot>),
    AttachVxlan(String, PeerKey, VxlanFlavor, Reply<io::Result<()>>),
    Stop,
}

/// Why a command could not be carried out.
#[derive(Debug, Error)]
pub enum ControlError {
    /// The loop has ended.
    #[error("BFD loop is not running")]
    Stopped,
    /// The manager refused.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// Invalid timing parameters.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A device could not be opened.
    #[error("attach VXLAN device: {0}")]
    Io(#[from] io::Error),
}

/// Where [`crate::udp::Driver::run`] delivers state changes: a std channel
/// for threads, or a futures channel whose receiver is a `Stream` for async
/// tasks. A closed receiver is ignored (nobody listens any more).
pub trait EventSink {
    /// Hands over one state change; must not block.
    fn deliver(&self, event: (u32, PeerKey, Event));
}

impl EventSink for std::sync::mpsc::Sender<(u32, PeerKey, Event)> {
    fn deliver(&self, event: (u32, PeerKey, Event)) {
        let _ = self.send(event);
    }
}

impl EventSink for futures::channel::mpsc::UnboundedSender<(u32, PeerKey, Event)> {
    fn deliver(&self, event: (u32, PeerKey, Event)) {
        let _ = self.unbounded_send(event);
    }
}

#[derive(Debug)]
struct Wake(OwnedFd);

impl Wake {
    fn new() -> io::Result<Wake> {
        // SAFETY: eventfd returns a new descriptor or -1; we own it on success.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Wake(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full
        // counter (EAGAIN) still leaves it readable, which is all we need.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn clear(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; nonblocking.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// The cloneable, `Send` side: what other threads hold. Every request is
/// answered within one turn of the loop (an eventfd wakes it at once).
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    wake: Arc<Wake>,
}

/// The loop's side: pass it to [`crate::udp::Driver::run`].
#[derive(Debug)]
pub struct Control {
    rx: mpsc::Receiver<Command>,
    wake: Arc<Wake>,
}

/// A connected handle and control.
pub fn channel() -> io::Result<(Handle, Control)> {
    let (tx, rx) = mpsc::channel();
    let wake = Arc::new(Wake::new()?);
    Ok((
        Handle {
            tx,
            wake: wake.clone(),
        },
        Control { rx, wake },
    ))
}

/// An answer on its way from the loop: `wait()` for it from a thread, or
/// `.await` it from an async task (no runtime needed, nothing blocks).
#[derive(Debug)]
#[must_use = "the request is sent; wait for or await the answer"]
pub struct Pending<T>(oneshot::Receiver<T>);

impl<T> Pending<T> {
    /// Blocks the calling thread until the loop answers.
    pub fn wait(self) -> Result<T, ControlError> {
        futures::executor::block_on(self)
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, ControlError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| ControlError::Stopped))
    }
}

impl Handle {
    fn send(&self, c: Command) -> Result<(), ControlError> {
        self.tx.send(c).map_err(|_| ControlError::Stopped)?;
        self.wake.ring();
        Ok(())
    }

    fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Pending<T> {
        let (tx, rx) = oneshot::channel();
        // A stopped loop drops the command and with it the reply sender, so
        // the answer then resolves to `Stopped`.
        let _ = self.send(make(tx));
        Pending(rx)
    }

    /// Adds a session; returns its local discriminator.
    pub fn add_session(&self, peer: PeerKey, config: SessionConfig) -> Result<u32, ControlError> {
        Ok(self.add_session_async(peer, config).wait()??)
    }

    /// [`Handle::add_session`] without blocking.
    pub fn add_session_async(
        &self,
        peer: PeerKey,
        config: SessionConfig,
    ) -> Pending<Result<u32, ManagerError>> {
        self.request(|r| Command::Add(peer, config, r))
    }

    /// Removes a session; false if there was none.
    pub fn remove_session(&self, discr: u32) -> Result<bool, ControlError> {
        self.remove_session_async(discr).wait()
    }

    /// [`Handle::remove_session`] without blocking.
    pub fn remove_session_async(&self, discr: u32) -> Pending<bool> {
        self.request(|r| Command::Remove(discr, r))
    }

    /// Takes a session AdminDown and deletes it after telling the remote
    /// (see [`crate::manager::Manager::retire_session`]); false if there was none.
    pub fn retire_session(&self, discr: u32, diag: Diagnostic) -> Result<bool, ControlError> {
        self.request(|r| Command::Retire(discr, diag, r)).wait()
    }

    /// §6.8.16 AdminDown with `diag`.
    pub fn set_admin_down(&self, discr: u32, diag: Diagnostic) -> Result<(), ControlError> {
        self.send(Command::AdminDown(discr, diag))
    }

    /// §6.8.16 enable.
    pub fn set_admin_up(&self, discr: u32) -> Result<(), ControlError> {
        self.send(Command::AdminUp(discr))
    }

    /// §6.8.3 parameter change (a Poll Sequence if Up).
    pub fn set_params(
        &self,
        discr: u32,
        tx_interval: Duration,
        rx_interval: Duration,
        mult: u8,
    ) -> Result<(), ControlError> {
        Ok(self
            .set_params_async(discr, tx_interval, rx_interval, mult)
            .wait()??)
    }

    /// [`Handle::set_params`] without blocking.
    pub fn set_params_async(
        &self,
        discr: u32,
        tx_interval: Duration,
        rx_interval: Duration,
        mult: u8,
    ) -> Pending<Result<(), ConfigError>> {
        self.request(|r| Command::SetParams(discr, tx_interval, rx_interval, mult, r))
    }

    /// Every session's status.
    pub fn statuses(&self) -> Result<Vec<(u32, PeerKey, Status)>, ControlError> {
        self.statuses_async().wait()
    }

    /// [`Handle::statuses`] without blocking.
    pub fn statuses_async(&self) -> Pending<Vec<(u32, PeerKey, Status)>> {
        self.request(Command::Statuses)
    }

    /// The manager's packet counters.
    pub fn counters(&self) -> Result<Counters, ControlError> {
        self.request(Command::Counters).wait()
    }

    /// Everything metrics need, without walking the sessions.
    pub fn snapshot(&self) -> Result<Snapshot, ControlError> {
        self.snapshot_async().wait()
    }

    /// [`Handle::snapshot`] without blocking.
    pub fn snapshot_async(&self) -> Pending<Snapshot> {
        self.request(Command::Snapshot)
    }

    /// Opens VXLAN device `ifname` (in the BFD VNI of `flavor`) for VXLAN
    /// sessions between `peer.local` and `peer.remote` (see
    /// [`crate::udp::Driver::attach_vxlan`]); it replaces a device attached
    /// before for those addresses.
    pub fn attach_vxlan(
        &self,
        ifname: &str,
        peer: PeerKey,
        flavor: VxlanFlavor,
    ) -> Result<(), ControlError> {
        Ok(self
            .request(|r| Command::AttachVxlan(ifname.to_owned(), peer, flavor, r))
            .wait()??)
    }

    /// Ends the loop after the current turn.
    pub fn stop(&self) -> Result<(), ControlError> {
        self.send(Command::Stop)
    }
}

impl Control {
    pub(crate) fn wake_fd(&self) -> libc::c_int {
        self.wake.0.as_raw_fd()
    }

    /// Applies every queued command; false when the loop should end.
    pub(crate) fn apply(&self, d: &mut Driver) -> bool {
        self.wake.clear();
        loop {
            let now = Instant::now();
            // Replies go to callers that may have given up waiting: ignore send errors.
            match self.rx.try_recv() {
                Ok(Command::Add(peer, cfg, r)) => {
                    let _ = r.send(d.manager_mut().add_session(peer, cfg, now));
                }
                Ok(Command::Remove(id, r)) => {
                    let _ = r.send(d.manager_mut().remove_session(id));
                }
                Ok(Command::Retire(id, diag, r)) => {
                    let _ = r.send(d.manager_mut().retire_session(id, now, diag));
                }
                Ok(Command::AdminDown(id, diag)) => d.manager_mut().set_admin_down(id, now, diag),
                Ok(Command::AdminUp(id)) => d.manager_mut().set_admin_up(id, now),
                Ok(Command::SetParams(id, tx, rx, mult, r)) => {
                    let _ = r.send(d.manager_mut().set_params(id, now, tx, rx, mult));
                }
                Ok(Command::Statuses(r)) => {
                    let _ = r.send(d.manager().statuses_by_discr().collect());
                }
                Ok(Command::Counters(r)) => {
                    let _ = r.send(d.manager().counters());
                }
                Ok(Command::Snapshot(r)) => {
                    let _ = r.send(d.snapshot());
                }
                Ok(Command::AttachVxlan(ifname, peer, flavor, r)) => {
                    let _ = r.send(d.attach_vxlan(&ifname, peer, flavor));
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }
}
