//! Steering a running [`crate::udp::Driver`] from other threads (a daemon's
//! tokio tasks, a status API): commands go through a channel, and an eventfd
//! in the loop's `ppoll` set wakes it at once, so the one event loop stays
//! the only owner of the sessions.

use crate::config::{ConfigError, SessionConfig};
use crate::manager::{Counters, Manager, ManagerError, PeerKey};
use crate::packet::Diagnostic;
use crate::session::Status;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use thiserror::Error;

/// A request to the loop; replies come back on the embedded channel.
#[derive(Debug)]
enum Command {
    Add(
        PeerKey,
        SessionConfig,
        mpsc::Sender<Result<u32, ManagerError>>,
    ),
    Remove(u32, mpsc::Sender<bool>),
    AdminDown(u32, Diagnostic),
    AdminUp(u32),
    SetParams(
        u32,
        Duration,
        Duration,
        u8,
        mpsc::Sender<Result<(), ConfigError>>,
    ),
    Statuses(mpsc::Sender<Vec<(u32, PeerKey, Status)>>),
    Counters(mpsc::Sender<Counters>),
    Stop,
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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

/// The cloneable, `Send` side: what other threads hold.
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

impl Handle {
    fn send(&self, c: Command) -> Result<(), ControlError> {
        self.tx.send(c).map_err(|_| ControlError::Stopped)?;
        self.wake.ring();
        Ok(())
    }

    /// Adds a session; returns its local discriminator.
    pub fn add_session(&self, peer: PeerKey, config: SessionConfig) -> Result<u32, ControlError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Add(peer, config, tx))?;
        Ok(rx.recv().map_err(|_| ControlError::Stopped)??)
    }

    /// Removes a session; false if there was none.
    pub fn remove_session(&self, discr: u32) -> Result<bool, ControlError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Remove(discr, tx))?;
        rx.recv().map_err(|_| ControlError::Stopped)
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
        let (tx, rx) = mpsc::channel();
        self.send(Command::SetParams(
            discr,
            tx_interval,
            rx_interval,
            mult,
            tx,
        ))?;
        Ok(rx.recv().map_err(|_| ControlError::Stopped)??)
    }

    /// Every session's status.
    pub fn statuses(&self) -> Result<Vec<(u32, PeerKey, Status)>, ControlError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Statuses(tx))?;
        rx.recv().map_err(|_| ControlError::Stopped)
    }

    /// The manager's packet counters, for metrics.
    pub fn counters(&self) -> Result<Counters, ControlError> {
        let (tx, rx) = mpsc::channel();
        self.send(Command::Counters(tx))?;
        rx.recv().map_err(|_| ControlError::Stopped)
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
    pub(crate) fn apply(&self, m: &mut Manager) -> bool {
        self.wake.clear();
        loop {
            let now = Instant::now();
            // Replies go to callers that may have given up waiting: ignore send errors.
            match self.rx.try_recv() {
                Ok(Command::Add(peer, cfg, r)) => {
                    let _ = r.send(m.add_session(peer, cfg, now));
                }
                Ok(Command::Remove(d, r)) => {
                    let _ = r.send(m.remove_session(d));
                }
                Ok(Command::AdminDown(d, diag)) => m.set_admin_down(d, now, diag),
                Ok(Command::AdminUp(d)) => m.set_admin_up(d, now),
                Ok(Command::SetParams(d, tx, rx, mult, r)) => {
                    let _ = r.send(m.set_params(d, now, tx, rx, mult));
                }
                Ok(Command::Statuses(r)) => {
                    let _ = r.send(m.statuses_by_discr().collect());
                }
                Ok(Command::Counters(r)) => {
                    let _ = r.send(m.counters());
                }
                Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }
}
