//! Many sessions behind one set of shared sockets, still sans-IO: the
//! manager demultiplexes received datagrams to sessions (RFC 5880 §6.8.6,
//! RFC 5881 §3, RFC 5883 §4), applies GTSM (RFC 5881 §5, RFC 5883 §5),
//! keeps one [`TimerWheel`] for all sessions and queues transmissions with
//! each session's fixed source port (RFC 5881 §4). The socket loop in
//! [`crate::udp`] feeds it; tests feed it directly with a virtual clock.

use crate::config::{ConfigError, SessionConfig};
use crate::fasthash::{FastMap, FastSet};
use crate::packet::State;
use crate::packet::{Diagnostic, MAX_LEN, ReceptionError, Repr};
use crate::session::{Discard, Event, Session, Status};
use crate::stats::{LagHistogram, StateCounts};
use crate::timer_wheel::TimerWheel;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How a session's packets travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// RFC 5881: UDP 3784, TTL 255 both ways.
    SingleHop,
    /// RFC 5883: UDP 4784, TTL checked against a configured minimum.
    MultiHop,
    /// Inside VXLAN (the link decides the flavour: OVS convention in VNI 0, or
    /// RFC 8971 in a Management VNI); the inner TTL is 255 like single hop.
    Vxlan,
}

impl Encap {
    /// The BFD destination port of this encapsulation (inner port for VXLAN).
    pub fn dst_port(self) -> u16 {
        match self {
            Encap::SingleHop | Encap::Vxlan => 3784,
            Encap::MultiHop => 4784,
        }
    }
}

/// What identifies a session before the remote's discriminator is known:
/// RFC 5881 §3 (source address; we add the local address) and RFC 5883 §4
/// (source and destination addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerKey {
    /// The remote system's address (for VXLAN: its tunnel endpoint).
    pub remote: IpAddr,
    /// Our address the session runs from.
    pub local: IpAddr,
    /// The encapsulation.
    pub encap: Encap,
}

/// A received BFD payload with what the socket layer learnt about it.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Who sent it (for VXLAN: the outer source address).
    pub remote: IpAddr,
    /// Where it was sent (our address).
    pub local: IpAddr,
    /// Received IP TTL (for VXLAN: the inner header's), if known.
    pub ttl: Option<u8>,
    /// Which socket or tunnel it came in on.
    pub encap: Encap,
    /// The BFD Control packet.
    pub payload: &'a [u8],
}

/// A packet for the socket layer to send.
#[derive(Debug, Clone, Copy)]
pub struct Transmit {
    /// Local discriminator of the sending session.
    pub discr: u32,
    /// Where and how.
    pub peer: PeerKey,
    /// The session's UDP source port (49152–65535, fixed per session).
    pub src_port: u16,
    /// IP TTL to send with: 255 (GTSM) for every encapsulation.
    pub ttl: u8,
    /// The emitted (and signed) BFD packet.
    pub payload: [u8; MAX_LEN],
    /// Bytes of `payload` in use.
    pub len: usize,
}

impl Transmit {
    /// The BFD bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.payload[..self.len]
    }
}

/// Why the manager dropped a datagram; each has a counter in [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DropReason {
    /// Failed a packet-only rule of §6.8.6.
    #[error(transparent)]
    Malformed(#[from] ReceptionError),
    /// §6.8.6: nonzero Your Discriminator that names no session.
    #[error("no session with discriminator {0}")]
    UnknownDiscriminator(u32),
    /// Your Discriminator zero and no session configured for the addresses.
    #[error("no session for {0:?}")]
    UnknownPeer(PeerKey),
    /// The discriminator names a session for another peer.
    #[error("discriminator {discr} belongs to another peer")]
    PeerMismatch {
        /// The session found.
        discr: u32,
    },
    /// GTSM: TTL not 255 (single hop, VXLAN) or below the multihop minimum.
    #[error("TTL {ttl:?} fails GTSM")]
    Ttl {
        /// Received TTL (None: the socket did not report it).
        ttl: Option<u8>,
    },
    /// The session discarded it (authentication, §6.8.6 session rules).
    #[error(transparent)]
    Session(#[from] Discard),
}

/// Counters for metrics: bounded, per manager, never per session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams accepted by a session.
    pub received: u64,
    /// Packets handed to the socket layer.
    pub sent: u64,
    /// Dropped as malformed.
    pub malformed: u64,
    /// Dropped: no session by discriminator or address.
    pub no_session: u64,
    /// Dropped by GTSM.
    pub ttl: u64,
    /// Dropped by a session (auth or session rules) or for a peer mismatch.
    pub rejected: u64,
    /// Times a session left Up (removed sessions' flaps stay counted).
    pub flaps: u64,
    /// Times a session went Down because its Detection Time expired (diag 1).
    pub detections: u64,
    /// State changes of all sessions.
    pub state_changes: u64,
}

/// Manager-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// First of the source ports sessions are spread over (RFC 5881 §4: 49152–65535).
    pub src_port_base: u16,
    /// How many source ports (one shared socket each in the socket layer).
    pub src_port_count: u16,
    /// RFC 5883 §5: lowest TTL accepted on multihop sessions (0: no check).
    pub multihop_min_ttl: u8,
    /// Seed for discriminators and jitter (a fixed one makes runs reproducible).
    pub seed: u64,
    /// A new session's first packet goes out at a random moment within this
    /// much, so adding thousands at once does not send them in one burst.
    pub initial_spread: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            src_port_base: 49152,
            src_port_count: 16,
            multihop_min_ttl: 0,
            seed: 0,
            initial_spread: Duration::from_millis(250),
        }
    }
}

/// Why a manager operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManagerError {
    /// The session configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A session for these addresses exists already.
    #[error("session for {0:?} exists")]
    Duplicate(PeerKey),
    /// The manager configuration is invalid.
    #[error("{0}")]
    BadManagerConfig(&'static str),
}

#[derive(Debug)]
struct Entry {
    peer: PeerKey,
    src_port: u16,
    session: Session,
    /// The live one of this session's entries in the wheel.
    armed: Option<Instant>,
}

/// All sessions of one event loop.
#[derive(Debug)]
pub struct Manager {
    config: ManagerConfig,
    sessions: FastMap<u32, Entry>,
    by_peer: FastMap<PeerKey, u32>,
    wheel: TimerWheel<u32>,
    /// Scratch for one drain of the wheel, kept for its allocation.
    expired: Vec<(u32, Instant)>,
    rng: SmallRng,
    transmits: VecDeque<Transmit>,
    events: VecDeque<(u32, PeerKey, Event)>,
    counters: Counters,
    states: StateCounts,
    lag: LagHistogram,
    /// Sessions signalling AdminDown before they are deleted; their
    /// addresses are free for a new session already.
    retiring: FastSet<u32>,
}

impl Manager {
    /// An empty manager.
    pub fn new(config: ManagerConfig) -> Result<Self, ManagerError> {
        if config.src_port_base < 49152 {
            return Err(ManagerError::BadManagerConfig(
                "src_port_base: must be at least 49152 (RFC 5881 §4)",
            ));
        }
        if config.src_port_count == 0
            || u32::from(config.src_port_base) + u32::from(config.src_port_count) > 65536
        {
            return Err(ManagerError::BadManagerConfig(
                "src_port_count: must be 1.. and stay within 65535",
            ));
        }
        Ok(Manager {
            rng: SmallRng::seed_from_u64(config.seed),
            config,
            sessions: FastMap::default(),
            by_peer: FastMap::default(),
            // The origin only buckets deadlines: any instant will do.
            wheel: TimerWheel::new(Instant::now()),
            expired: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            states: StateCounts::default(),
            lag: LagHistogram::default(),
            retiring: FastSet::default(),
        })
    }

    /// Source ports in use, so the socket layer binds one socket per port.
    pub fn src_ports(&self) -> std::ops::Range<u16> {
        self.config.src_port_base..self.config.src_port_base + self.config.src_port_count
    }

    /// Adds a session; returns its local discriminator (random, unique and
    /// nonzero, as §6.8.1 recommends).
    pub fn add_session(
        &mut self,
        peer: PeerKey,
        config: SessionConfig,
        now: Instant,
    ) -> Result<u32, ManagerError> {
        if self.by_peer.contains_key(&peer) {
            return Err(ManagerError::Duplicate(peer));
        }
        let discr = loop {
            let d: u32 = self.rng.random();
            if d != 0 && !self.sessions.contains_key(&d) {
                break d;
            }
        };
        let rng = SmallRng::seed_from_u64(self.rng.random());
        let mut session = Session::with_rng(config, discr, now, rng)?;
        let spread = u64::try_from(self.config.initial_spread.as_micros()).unwrap_or(u64::MAX);
        if spread > 0 {
            session.delay_first_transmit(
                now + Duration::from_micros(self.rng.random_range(0..spread)),
            );
        }
        // RFC 5881 §4: one source port for all of a session's packets.
        let src_port =
            self.config.src_port_base + (discr % u32::from(self.config.src_port_count)) as u16;
        self.sessions.insert(
            discr,
            Entry {
                peer,
                src_port,
                session,
                armed: None,
            },
        );
        self.by_peer.insert(peer, discr);
        self.states.add(State::Down);
        self.service(discr, now);
        Ok(discr)
    }

    /// Removes a session (first take it AdminDown and let it signal, if the
    /// remote should know). Its stale deadline is dropped lazily.
    pub fn remove_session(&mut self, discr: u32) -> bool {
        let Some(e) = self.sessions.remove(&discr) else {
            return false;
        };
        // A retiring session's addresses may belong to a newer session.
        if self.by_peer.get(&e.peer) == Some(&discr) {
            self.by_peer.remove(&e.peer);
        }
        // Its wheel entries find no session and are skipped.
        self.retiring.remove(&discr);
        self.states.remove(e.session.state());
        true
    }

    /// Takes a session AdminDown with `diag` and deletes it once it has told
    /// the remote for a Detection Time (§6.8.16), so the remote sees an
    /// administrative stop, not a failure. Its addresses are free at once:
    /// a session added for them meanwhile is a new one.
    pub fn retire_session(&mut self, discr: u32, now: Instant, diag: Diagnostic) -> bool {
        let Some(e) = self.sessions.get_mut(&discr) else {
            return false;
        };
        e.session.set_admin_down(now, diag);
        if self.by_peer.get(&e.peer) == Some(&discr) {
            self.by_peer.remove(&e.peer);
        }
        if e.session.admin_down_signalled() {
            // It had been AdminDown long enough already.
            return self.remove_session(discr);
        }
        self.retiring.insert(discr);
        self.service(discr, now);
        true
    }

    /// Sessions still signalling AdminDown before deletion.
    pub fn retiring(&self) -> usize {
        self.retiring.len()
    }

    /// The session with this discriminator.
    pub fn session(&self, discr: u32) -> Option<&Session> {
        self.sessions.get(&discr).map(|e| &e.session)
    }

    /// The discriminator of the session for these addresses.
    pub fn lookup(&self, peer: &PeerKey) -> Option<u32> {
        self.by_peer.get(peer).copied()
    }

    /// Status of every session, for the status API and metrics.
    pub fn statuses(&self) -> impl Iterator<Item = (PeerKey, Status)> + '_ {
        self.sessions.values().map(|e| (e.peer, e.session.status()))
    }

    /// Status of every session with its discriminator.
    pub fn statuses_by_discr(&self) -> impl Iterator<Item = (u32, PeerKey, Status)> + '_ {
        self.sessions
            .iter()
            .map(|(d, e)| (*d, e.peer, e.session.status()))
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// No sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Counters since creation.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Sessions by state, kept up to date on every change (no walk).
    pub fn state_counts(&self) -> StateCounts {
        self.states
    }

    /// How late deadlines were served so far.
    pub fn lag(&self) -> LagHistogram {
        self.lag
    }

    /// §6.8.16 for one session.
    pub fn set_admin_down(&mut self, discr: u32, now: Instant, diag: Diagnostic) {
        if let Some(e) = self.sessions.get_mut(&discr) {
            e.session.set_admin_down(now, diag);
            self.service(discr, now);
        }
    }

    /// §6.8.16 for one session.
    pub fn set_admin_up(&mut self, discr: u32, now: Instant) {
        if let Some(e) = self.sessions.get_mut(&discr) {
            e.session.set_admin_up(now);
            self.service(discr, now);
        }
    }

    /// §6.8.3 parameter change for one session (runs a Poll Sequence if Up).
    pub fn set_params(
        &mut self,
        discr: u32,
        now: Instant,
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_mult: u8,
    ) -> Result<(), ConfigError> {
        if let Some(e) = self.sessions.get_mut(&discr) {
            e.session
                .set_params(desired_min_tx, required_min_rx, detect_mult)?;
            self.service(discr, now);
        }
        Ok(())
    }

    /// Demultiplexes and delivers one received datagram. Errors are for
    /// counting and debug logs only; the loop goes on.
    pub fn handle_datagram(&mut self, now: Instant, d: &Datagram<'_>) -> Result<u32, DropReason> {
        let r = self.deliver(now, d);
        match &r {
            Ok(_) => self.counters.received += 1,
            Err(DropReason::Malformed(_)) => self.counters.malformed += 1,
            Err(DropReason::UnknownDiscriminator(_) | DropReason::UnknownPeer(_)) => {
                self.counters.no_session += 1
            }
            Err(DropReason::Ttl { .. }) => self.counters.ttl += 1,
            Err(DropReason::PeerMismatch { .. } | DropReason::Session(_)) => {
                self.counters.rejected += 1
            }
        }
        if let Err(e) = &r {
            tracing::debug!(remote = %d.remote, error = %e, "bfd datagram dropped");
        }
        r
    }

    fn deliver(&mut self, now: Instant, d: &Datagram<'_>) -> Result<u32, DropReason> {
        let repr = Repr::parse(d.payload)?;
        let peer = PeerKey {
            remote: d.remote,
            local: d.local,
            encap: d.encap,
        };
        // §6.8.6: a nonzero Your Discriminator selects the session; zero
        // selects by addresses (RFC 5881 §3, RFC 5883 §4).
        let discr = if repr.your_discriminator != 0 {
            let e = self
                .sessions
                .get(&repr.your_discriminator)
                .ok_or(DropReason::UnknownDiscriminator(repr.your_discriminator))?;
            // The discriminator is not a secret: only its own peer may use it.
            if e.peer.remote != peer.remote || e.peer.encap != peer.encap {
                return Err(DropReason::PeerMismatch {
                    discr: repr.your_discriminator,
                });
            }
            repr.your_discriminator
        } else {
            *self
                .by_peer
                .get(&peer)
                .ok_or(DropReason::UnknownPeer(peer))?
        };
        // GTSM, after demultiplexing as RFC 5881 §5 words it ("demultiplexed to the session").
        let ok = match d.encap {
            Encap::SingleHop | Encap::Vxlan => d.ttl == Some(255),
            Encap::MultiHop => {
                self.config.multihop_min_ttl == 0
                    || d.ttl.is_some_and(|t| t >= self.config.multihop_min_ttl)
            }
        };
        if !ok {
            return Err(DropReason::Ttl { ttl: d.ttl });
        }
        let Some(e) = self.sessions.get_mut(&discr) else {
            return Err(DropReason::UnknownDiscriminator(discr));
        };
        // Parsed once above; authentication reads the raw bytes as well.
        e.session.handle_parsed(now, &repr, d.payload)?;
        self.service(discr, now);
        Ok(discr)
    }

    /// Runs every session whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut expired = std::mem::take(&mut self.expired);
        self.wheel.drain_expired(now, &mut expired);
        for &(discr, due) in &expired {
            let Some(e) = self.sessions.get_mut(&discr) else {
                continue; // removed
            };
            if e.armed != Some(due) {
                continue; // re-armed or cancelled since
            }
            e.armed = None;
            self.lag.observe(now - due);
            e.session.handle_timeout(now);
            let done = e.session.admin_down_signalled();
            self.service(discr, now);
            if done && self.retiring.contains(&discr) {
                self.remove_session(discr);
            }
        }
        expired.clear();
        self.expired = expired;
    }

    /// When the loop must wake next: the one sleep for all sessions (at
    /// worst a replaced deadline, which costs a wake-up that finds nothing).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    /// Next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Packets waiting, so the socket layer can size a `sendmmsg` batch.
    pub fn pending_transmits(&self) -> usize {
        self.transmits.len()
    }

    /// Next state change of any session.
    pub fn poll_event(&mut self) -> Option<(u32, PeerKey, Event)> {
        self.events.pop_front()
    }

    /// Drains a session's output and re-files its deadline.
    fn service(&mut self, discr: u32, now: Instant) {
        let Some(e) = self.sessions.get_mut(&discr) else {
            return;
        };
        loop {
            let mut payload = [0u8; MAX_LEN];
            let Some(len) = e.session.poll_transmit_into(now, &mut payload) else {
                break;
            };
            self.counters.sent += 1;
            self.transmits.push_back(Transmit {
                discr,
                peer: e.peer,
                src_port: e.src_port,
                ttl: 255,
                payload,
                len,
            });
        }
        while let Some(ev) = e.session.poll_event() {
            let Event::StateChange { from, to, diag, .. } = ev;
            self.states.moved(from, to);
            self.counters.state_changes += 1;
            if from == State::Up {
                self.counters.flaps += 1;
            }
            if to == State::Down && diag == Diagnostic::ControlDetectionTimeExpired {
                self.counters.detections += 1;
            }
            self.events.push_back((discr, e.peer, ev));
        }
        let next = e.session.poll_timeout();
        if next != e.armed {
            e.armed = next;
            if let Some(at) = next {
                self.wheel.insert(discr, at);
            }
        }
    }
}
