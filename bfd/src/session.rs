//! One BFD session as a deterministic, sans-IO state machine (RFC 5880 §6).
//!
//! Driven like quinn-proto: feed received packets with [`Session::handle_packet`]
//! or [`Session::handle_datagram`], call [`Session::handle_timeout`] when
//! [`Session::poll_timeout`] passes, drain [`Session::poll_transmit`] and
//! [`Session::poll_event`]. Time is always passed in; nothing here reads a
//! clock, sleeps or touches a socket, and randomness (jitter, the initial
//! authentication sequence number) comes from an injected RNG.
//!
//! Asynchronous mode only: Demand mode (§6.6) and the Echo function (§6.4)
//! are not implemented. We never set D, advertise Required Min Echo RX 0, and
//! keep transmitting periodically even if the remote sets D.

use crate::auth::{self, AuthError, AuthType, SeqWindow};
use crate::config::{ConfigError, SessionConfig, micros};
use crate::packet::{Diagnostic, ReceptionError, Repr, State};
use crate::timers::{SLOW_TX_MICROS, detection_time, jittered, tx_interval};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Something the owner of a session should know about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `bfd.SessionState` changed.
    StateChange {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// `bfd.LocalDiag` after the change: why it happened.
        diag: Diagnostic,
        /// The Diag the remote last sent (its reason, e.g. AdminDown's 7).
        remote_diag: Diagnostic,
        /// When.
        at: Instant,
    },
}

/// Why a received packet was discarded by a session (§6.8.6); counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Discard {
    /// Failed a packet-only rule.
    #[error(transparent)]
    Reception(#[from] ReceptionError),
    /// Failed the authentication rules (§6.7, and the A bit rules of §6.8.6).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// §6.8.6: Your Discriminator names another session.
    #[error("your discriminator {got} is not ours ({ours})")]
    NotOurDiscriminator {
        /// Received.
        got: u32,
        /// `bfd.LocalDiscr`.
        ours: u32,
    },
    /// This session authenticates, and a parsed `Repr` carries no proof of the
    /// digest: use [`Session::handle_datagram`] with the raw bytes.
    #[error("authenticated session needs the raw packet")]
    NeedsRawPacket,
}

/// A read-only snapshot of a session for status reports and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `bfd.SessionState`.
    pub state: State,
    /// `bfd.RemoteSessionState`.
    pub remote_state: State,
    /// `bfd.LocalDiag`.
    pub local_diag: Diagnostic,
    /// Diag of the last accepted packet.
    pub remote_diag: Diagnostic,
    /// `bfd.LocalDiscr`.
    pub local_discriminator: u32,
    /// `bfd.RemoteDiscr` (0 until heard, and after a detection time of silence).
    pub remote_discriminator: u32,
    /// Negotiated interval we transmit at, before jitter (§6.8.7).
    pub tx_interval: Duration,
    /// Negotiated interval the remote transmits at (§6.8.4's "agreed transmit
    /// interval of the remote system").
    pub rx_interval: Duration,
    /// §6.8.4 Detection Time currently in force.
    pub detection_time: Duration,
    /// Detect Mult last received.
    pub remote_detect_mult: u8,
    /// Times the session left Up.
    pub flaps: u64,
    /// When the state last changed (creation counts).
    pub last_state_change: Instant,
    /// A Poll Sequence is outstanding (§6.5).
    pub poll_in_progress: bool,
}

/// One BFD session (§6.8.1 state variables plus timers). `R` supplies jitter.
#[derive(Debug)]
pub struct Session<R = SmallRng> {
    config: SessionConfig,
    rng: R,

    // §6.8.1 state variables.
    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diagnostic,
    /// `bfd.DesiredMinTxInterval` as advertised, µs.
    desired_min_tx: u32,
    /// `bfd.RequiredMinRxInterval` as advertised, µs.
    required_min_rx: u32,
    remote_min_rx: u32,
    remote_demand: bool,
    detect_mult: u8,
    xmit_auth_seq: u32,
    rcv_auth: SeqWindow,

    // What the last accepted packet said, for §6.8.4.
    remote_detect_mult: u8,
    remote_desired_min_tx: u32,
    remote_diag: Diagnostic,

    // §6.8.3: values in force while a Poll Sequence is outstanding.
    /// Our desired TX used for the actual interval; an increase waits for Final.
    tx_in_effect: u32,
    /// Our required RX used for the Detection Time; a decrease waits for Final.
    rx_in_effect: u32,
    poll_active: bool,
    final_pending: bool,

    // Timers.
    last_tx: Option<Instant>,
    next_tx: Option<Instant>,
    /// The negotiated interval `next_tx` was computed with.
    scheduled_interval: u32,
    last_rx: Option<Instant>,
    detect_deadline: Option<Instant>,
    auth_seq_deadline: Option<Instant>,
    /// §6.8.16: keep signalling AdminDown until then.
    admin_tx_until: Option<Instant>,

    events: VecDeque<Event>,
    flaps: u64,
    last_state_change: Instant,
}

impl Session<SmallRng> {
    /// Creates a session in Down (§6.8.1 initial values) with a small RNG
    /// seeded from the discriminator, so runs are reproducible and sessions
    /// created together still jitter apart.
    pub fn new(config: SessionConfig, local_discr: u32, now: Instant) -> Result<Self, ConfigError> {
        Session::with_rng(
            config,
            local_discr,
            now,
            SmallRng::seed_from_u64(u64::from(local_discr)),
        )
    }
}

impl<R: RngCore> Session<R> {
    /// Creates a session with an injected RNG (tests seed it; a manager may share a fast one).
    pub fn with_rng(
        config: SessionConfig,
        local_discr: u32,
        now: Instant,
        mut rng: R,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if local_discr == 0 {
            // §6.8.1: bfd.LocalDiscr MUST be nonzero.
            return Err(ConfigError::Invalid {
                field: "local_discr",
                reason: "must be nonzero",
            });
        }
        // §6.8.3: not less than one second while not Up.
        let desired = micros(config.desired_min_tx).max(SLOW_TX_MICROS);
        let required = micros(config.required_min_rx);
        let xmit_auth_seq = rng.next_u32(); // §6.8.1: initialized to a random 32-bit value
        Ok(Session {
            rng,
            state: State::Down,
            remote_state: State::Down,
            local_discr,
            remote_discr: 0,
            local_diag: Diagnostic::None,
            desired_min_tx: desired,
            required_min_rx: required,
            remote_min_rx: 1, // §6.8.1: initialized to 1
            remote_demand: false,
            detect_mult: config.detect_mult,
            xmit_auth_seq,
            rcv_auth: SeqWindow::default(),
            remote_detect_mult: 0,
            remote_desired_min_tx: 0,
            remote_diag: Diagnostic::None,
            tx_in_effect: desired,
            rx_in_effect: required,
            poll_active: false,
            final_pending: false,
            last_tx: None,
            next_tx: Some(now),
            scheduled_interval: tx_interval(desired, 1),
            last_rx: None,
            detect_deadline: None,
            auth_seq_deadline: None,
            admin_tx_until: None,
            events: VecDeque::new(),
            flaps: 0,
            last_state_change: now,
            config,
        })
    }

    /// Holds the first transmission back until `at`, so a manager creating
    /// thousands of sessions at once spreads their first packets out.
    pub fn delay_first_transmit(&mut self, at: Instant) {
        if self.last_tx.is_none() {
            self.next_tx = self.next_tx.map(|t| t.max(at));
        }
    }

    /// `bfd.LocalDiscr`: the key a manager demultiplexes on.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// AdminDown and done telling the remote so (§6.8.16): the session
    /// sends nothing more and can be deleted without the remote seeing a failure.
    pub fn admin_down_signalled(&self) -> bool {
        self.state == State::AdminDown && self.admin_tx_until.is_none()
    }

    /// `bfd.SessionState`.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// A snapshot for status reports and metrics.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            remote_state: self.remote_state,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            local_discriminator: self.local_discr,
            remote_discriminator: self.remote_discr,
            tx_interval: Duration::from_micros(u64::from(self.negotiated_tx())),
            rx_interval: Duration::from_micros(u64::from(
                self.rx_in_effect.max(self.remote_desired_min_tx),
            )),
            detection_time: self.detection_time(),
            remote_detect_mult: self.remote_detect_mult,
            flaps: self.flaps,
            last_state_change: self.last_state_change,
            poll_in_progress: self.poll_active,
        }
    }

    /// §6.8.4 Detection Time with the values in force (zero before the remote is heard).
    pub fn detection_time(&self) -> Duration {
        detection_time(
            self.remote_detect_mult,
            self.rx_in_effect,
            self.remote_desired_min_tx,
        )
    }

    fn negotiated_tx(&self) -> u32 {
        tx_interval(self.tx_in_effect, self.remote_min_rx)
    }

    /// Feeds a received UDP payload: parse, §6.8.6 packet checks, §6.7
    /// authentication with the session's key and sequence window, then the
    /// state machine. The only entry point for authenticated sessions.
    pub fn handle_datagram(&mut self, now: Instant, payload: &[u8]) -> Result<(), Discard> {
        let repr = Repr::parse(payload)?;
        self.handle_parsed(now, &repr, payload)
    }

    /// [`handle_datagram`](Self::handle_datagram) for a caller that parsed
    /// `payload` into `repr` already (the manager demultiplexes on it), so
    /// each packet is parsed once.
    pub(crate) fn handle_parsed(
        &mut self,
        now: Instant,
        repr: &Repr,
        payload: &[u8],
    ) -> Result<(), Discard> {
        self.check_discriminator(repr)?;
        match (&self.config.auth, &repr.auth) {
            (None, None) => {}
            // §6.8.6: "If the A bit is set and no authentication is in use ... discarded."
            (None, Some(_)) => return Err(AuthError::Unexpected.into()),
            // §6.8.6: "If the A bit is clear and authentication is in use ... discarded."
            (Some(_), None) => return Err(AuthError::Missing.into()),
            (Some(key), Some(a)) => {
                // With A set, Length is exactly the header plus the section.
                let len = repr.buffer_len();
                let bytes = payload
                    .get(..len)
                    .ok_or(ReceptionError::LengthExceedsPayload {
                        length: len as u8,
                        payload: payload.len(),
                    })?;
                auth::verify_parsed(bytes, a, key)?;
                if let Some(seq) = a.seq() {
                    // §6.7.3/§6.7.4: only a verified packet moves bfd.RcvAuthSeq.
                    self.rcv_auth.check_and_update(
                        seq,
                        key.auth_type().is_meticulous(),
                        repr.detect_mult,
                    )?;
                }
            }
        }
        self.receive(now, repr);
        Ok(())
    }

    /// Feeds an already parsed packet (unauthenticated sessions only: a `Repr`
    /// cannot prove its digest). Runs the session-level §6.8.6 rules.
    pub fn handle_packet(&mut self, now: Instant, repr: &Repr) -> Result<(), Discard> {
        self.check_discriminator(repr)?;
        if self.config.auth.is_some() {
            return Err(Discard::NeedsRawPacket);
        }
        if repr.auth.is_some() {
            return Err(AuthError::Unexpected.into());
        }
        self.receive(now, repr);
        Ok(())
    }

    fn check_discriminator(&self, repr: &Repr) -> Result<(), Discard> {
        // §6.8.6: a nonzero Your Discriminator selects the session; a manager
        // normally did that already, this guards a mis-dispatch.
        if repr.your_discriminator != 0 && repr.your_discriminator != self.local_discr {
            return Err(Discard::NotOurDiscriminator {
                got: repr.your_discriminator,
                ours: self.local_discr,
            });
        }
        Ok(())
    }

    /// §6.8.6 from "Set bfd.RemoteDiscr" on, for a packet that passed every check.
    fn receive(&mut self, now: Instant, r: &Repr) {
        self.remote_discr = r.my_discriminator;
        self.remote_state = r.state;
        self.remote_demand = r.demand;
        self.remote_min_rx = r.required_min_rx;
        self.remote_detect_mult = r.detect_mult;
        self.remote_desired_min_tx = r.desired_min_tx;
        self.remote_diag = r.diag;
        // Required Min Echo RX zero means cease echo: we never send echo.

        // §6.5: "When the system sending the Poll sequence receives a packet
        // with Final, the Poll Sequence is terminated".
        if r.final_ && self.poll_active {
            self.finish_poll();
        }

        // §6.8.4: this packet counts for detection, so restart the timer with
        // the (possibly new) Detection Time. (An AdminDown session discards it
        // below, but it has no detection timer anyway.)
        self.last_rx = Some(now);
        self.rearm_detection();
        // §6.8.1: AuthSeqKnown is cleared after two Detection Times of silence.
        if self.config.auth.is_some() {
            self.auth_seq_deadline = Some(now + 2 * self.detection_time());
        }

        if self.state == State::AdminDown {
            // §6.8.6: "If bfd.SessionState is AdminDown: Discard the packet".
            self.reschedule_tx();
            return;
        }

        // §6.8.6 state machine.
        match (self.state, r.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) => {
                self.set_state(now, State::Down, Diagnostic::NeighborSignaledSessionDown);
            }
            (State::Down, State::Down) => self.set_state(now, State::Init, Diagnostic::None),
            (State::Down, State::Init) => self.set_state(now, State::Up, Diagnostic::None),
            (State::Init, State::Init | State::Up) => {
                self.set_state(now, State::Up, Diagnostic::None)
            }
            (State::Up, State::Down) => {
                self.set_state(now, State::Down, Diagnostic::NeighborSignaledSessionDown);
            }
            _ => {}
        }

        // §6.8.6: "If the Poll (P) bit is set, send a BFD Control packet to
        // the remote system with the Poll (P) bit clear, and the Final (F) bit set".
        if r.poll {
            self.final_pending = true;
        }
        // §6.8.3: a reduced RemoteMinRxInterval is honored immediately; a
        // larger one must not be undercut either.
        self.reschedule_tx();
    }

    /// Handles every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.detect_deadline.is_some_and(|d| d <= now) {
            self.detect_deadline = None;
            // §6.8.1: bfd.RemoteDiscr "MUST be set to zero" after a Detection
            // Time without a valid packet; §6.8.18: RemoteMinRxInterval SHOULD
            // go back to its initial 1 µs.
            self.remote_discr = 0;
            self.remote_min_rx = 1;
            // §6.8.4: "... and bfd.SessionState is Init or Up, the session has
            // gone down -- the local system MUST set bfd.SessionState to Down
            // and bfd.LocalDiag to 1 (Control Detection Time Expired)."
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(now, State::Down, Diagnostic::ControlDetectionTimeExpired);
            }
            self.reschedule_tx();
        }
        if self.auth_seq_deadline.is_some_and(|d| d <= now) {
            self.auth_seq_deadline = None;
            self.rcv_auth.known = false;
        }
        if self.admin_tx_until.is_some_and(|d| d <= now) {
            self.admin_tx_until = None;
            if self.state == State::AdminDown {
                self.next_tx = None;
            }
        }
    }

    /// The earliest instant at which `handle_timeout` or `poll_transmit` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let final_now = if self.final_pending {
            self.last_rx
        } else {
            None
        };
        [
            final_now,
            self.next_tx,
            self.detect_deadline,
            self.auth_seq_deadline,
            self.admin_tx_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next packet to send now, if any; call until `None`. Keyed
    /// authentication packets carry a zero digest: sign them after `emit`
    /// (or use [`Session::poll_transmit_into`]).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Repr> {
        if self.final_pending {
            // §6.8.7: the Final is sent "as soon as practicable, without
            // respect to the transmission timer"; it does not move the periodic
            // schedule (§6.5: "independent of any periodic BFD Control packets").
            self.final_pending = false;
            let mut r = self.build();
            r.poll = false;
            r.final_ = true;
            return Some(r);
        }
        if self.next_tx.is_none_or(|t| t > now) {
            return None;
        }
        if !self.may_transmit_periodic() {
            // Skip this slot rather than leave a deadline in the past.
            self.schedule_next(now);
            return None;
        }
        let mut r = self.build();
        // §6.5: a Poll Sequence rides on the scheduled periodic packets.
        r.poll = self.poll_active;
        self.last_tx = Some(now);
        self.schedule_next(now);
        Some(r)
    }

    /// [`poll_transmit`](Self::poll_transmit), emitted and signed into `buf`;
    /// returns the length. `buf` must hold [`crate::packet::MAX_LEN`] bytes.
    pub fn poll_transmit_into(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let r = self.poll_transmit(now)?;
        let n = r.emit(buf)?;
        if let Some(key) = &self.config.auth {
            // Our own freshly emitted packet has a section of the key's type.
            auth::fill_digest(&mut buf[..n], key);
        }
        Some(n)
    }

    /// Pops the next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// §6.8.16: take the session administratively down with `diag` (normally
    /// [`Diagnostic::AdministrativelyDown`]; Path Down when a lower layer failed).
    /// AdminDown is still signalled for one of the remote's Detection Times.
    pub fn set_admin_down(&mut self, now: Instant, diag: Diagnostic) {
        if self.state == State::AdminDown {
            return;
        }
        // "BFD Control packets SHOULD be transmitted for at least a Detection
        // Time after transitioning to AdminDown state": the remote's detection
        // time is our Detect Mult times the interval we transmit at.
        self.set_state(now, State::AdminDown, diag);
        // Measured at the slow rate now in force, so about Detect Mult packets go out.
        let remote_detect = u64::from(self.detect_mult) * u64::from(self.negotiated_tx());
        self.detect_deadline = None;
        self.admin_tx_until = Some(now + Duration::from_micros(remote_detect));
        if self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
    }

    /// §6.8.16: "If enabling session: Set bfd.SessionState to Down".
    pub fn set_admin_up(&mut self, now: Instant) {
        if self.state != State::AdminDown {
            return;
        }
        self.admin_tx_until = None;
        self.set_state(now, State::Down, Diagnostic::None);
        if self.next_tx.is_none() {
            self.next_tx = Some(now);
        }
        self.rearm_detection();
    }

    /// Changes the timing parameters. §6.8.3: a change of Desired Min TX or
    /// Required Min RX while Up runs a Poll Sequence; an increase of TX and a
    /// decrease of RX take effect only when it ends, the opposite changes at once.
    pub fn set_params(
        &mut self,
        desired_min_tx: Duration,
        required_min_rx: Duration,
        detect_mult: u8,
    ) -> Result<(), ConfigError> {
        let mut c = self.config.clone();
        c.desired_min_tx = desired_min_tx;
        c.required_min_rx = required_min_rx;
        c.detect_mult = detect_mult;
        c.validate()?;
        self.config = c;
        self.reconcile_params();
        Ok(())
    }

    /// The values to advertise: configuration, with §6.8.3's 1 s floor on
    /// Desired Min TX while not Up.
    fn target_params(&self) -> (u32, u32) {
        let tx = micros(self.config.desired_min_tx);
        let tx = if self.state == State::Up {
            tx
        } else {
            tx.max(SLOW_TX_MICROS)
        };
        (tx, micros(self.config.required_min_rx))
    }

    /// Moves the advertised values toward the target, honoring §6.8.3.
    fn reconcile_params(&mut self) {
        // Detect Mult has no Poll rule: the remote applies it on receipt.
        self.detect_mult = self.config.detect_mult;
        let (tx, rx) = self.target_params();
        if (tx, rx) != (self.desired_min_tx, self.required_min_rx) {
            if self.state != State::Up {
                // The §6.8.3 hold rules are all conditioned on "bfd.SessionState
                // is Up"; outside Up the values apply at once. We also start no
                // Poll Sequence outside Up (the remote may not be listening; the
                // values reach it with every packet), as FRR bfdd does.
                self.desired_min_tx = tx;
                self.required_min_rx = rx;
                self.tx_in_effect = tx;
                self.rx_in_effect = rx;
            } else if !self.poll_active {
                // "If either bfd.DesiredMinTxInterval or bfd.RequiredMinRxInterval
                // is changed, a Poll Sequence MUST be initiated." Further changes
                // wait for this one to end (see finish_poll) so every Poll of a
                // sequence carries the same values and a Final confirms exactly them.
                self.start_poll(tx, rx);
            }
        }
        self.rearm_detection();
        self.reschedule_tx();
    }

    /// Advertises `tx`/`rx` with a Poll Sequence, in Up (§6.8.3).
    fn start_poll(&mut self, tx: u32, rx: u32) {
        self.desired_min_tx = tx;
        self.required_min_rx = rx;
        // "If bfd.DesiredMinTxInterval is increased and bfd.SessionState is
        // Up, the actual transmission interval used MUST NOT change until
        // the Poll Sequence ... has terminated." A decrease is safe now.
        self.tx_in_effect = self.tx_in_effect.min(tx);
        // "If bfd.RequiredMinRxInterval is reduced and bfd.SessionState is
        // Up, the previous value ... MUST be used when calculating the
        // Detection Time ... until the Poll Sequence ... has terminated."
        // An increase lengthens the Detection Time at once, which is safe.
        self.rx_in_effect = self.rx_in_effect.max(rx);
        self.poll_active = true;
    }

    fn finish_poll(&mut self) {
        self.poll_active = false;
        self.tx_in_effect = self.desired_min_tx;
        self.rx_in_effect = self.required_min_rx;
        // Changes made during the sequence start the next one (the caller
        // reschedules; reconcile also re-arms detection with the new RX).
        let (tx, rx) = self.target_params();
        if (tx, rx) != (self.desired_min_tx, self.required_min_rx) && self.state == State::Up {
            self.start_poll(tx, rx);
        }
    }

    fn set_state(&mut self, now: Instant, to: State, diag: Diagnostic) {
        let from = self.state;
        if from == to {
            return;
        }
        tracing::debug!(
            discr = self.local_discr,
            ?from,
            ?to,
            ?diag,
            "bfd state change"
        );
        self.state = to;
        self.local_diag = diag;
        self.last_state_change = now;
        if from == State::Up {
            self.flaps += 1;
            // Leaving Up ends any Poll Sequence: its hold rules only apply in Up.
            self.poll_active = false;
        }
        self.events.push_back(Event::StateChange {
            from,
            to,
            diag,
            remote_diag: self.remote_diag,
            at: now,
        });
        self.reconcile_params();
    }

    /// Restarts the detection timer from the last reception with the current
    /// Detection Time; it runs only in Init and Up (§6.8.4), but also bounds
    /// how long `bfd.RemoteDiscr` is kept in Down (§6.8.1).
    fn rearm_detection(&mut self) {
        let Some(last) = self.last_rx else { return };
        if self.state == State::AdminDown || self.remote_detect_mult == 0 || self.rx_in_effect == 0
        {
            // Having asked for no packets (Required Min RX 0), silence is no failure.
            self.detect_deadline = None;
            return;
        }
        let deadline = last + self.detection_time();
        // Never re-arm a timer that already fired for this reception.
        if self.detect_deadline.is_some() || self.remote_discr != 0 {
            self.detect_deadline = Some(deadline);
        }
    }

    fn may_transmit_periodic(&self) -> bool {
        // §6.8.7: "MUST NOT transmit ... if bfd.RemoteDiscr is zero and the
        // system is taking the Passive role", and "MUST NOT periodically
        // transmit ... if bfd.RemoteMinRxInterval is zero".
        !(self.config.passive && self.remote_discr == 0) && self.remote_min_rx != 0
    }

    fn schedule_next(&mut self, from: Instant) {
        let interval = self.negotiated_tx();
        self.scheduled_interval = interval;
        self.next_tx = Some(from + jittered(interval, self.detect_mult, &mut self.rng));
    }

    /// When the negotiated interval shrank below the one the pending packet
    /// was scheduled with, pull that packet in: §6.8.3 "MUST honor the new
    /// interval immediately". When it grew, the pending packet keeps its time
    /// and the next one uses the new interval: the remote's Detection Time
    /// still reflects the rate it last heard, so slowing one packet later is
    /// what spares it a false detection (e.g. before it sees our AdminDown).
    fn reschedule_tx(&mut self) {
        let (Some(last), Some(next)) = (self.last_tx, self.next_tx) else {
            return;
        };
        let interval = self.negotiated_tx();
        if interval >= self.scheduled_interval {
            return;
        }
        self.scheduled_interval = interval;
        let sooner = last + jittered(interval, self.detect_mult, &mut self.rng);
        if sooner < next {
            self.next_tx = Some(sooner);
        }
    }

    fn build(&mut self) -> Repr {
        let auth = self.config.auth.as_ref().map(|key| {
            // §6.7.3/§6.7.4: meticulous types advance on every packet; for the
            // others incrementing "occasionally" may be every packet as well,
            // which stays inside the receiver's window.
            if key.auth_type() != AuthType::SimplePassword {
                self.xmit_auth_seq = self.xmit_auth_seq.wrapping_add(1);
            }
            key.section(self.xmit_auth_seq)
        });
        // §6.8.7 contents.
        Repr {
            diag: self.local_diag,
            state: self.state,
            poll: false,
            final_: false,
            control_plane_independent: self.config.control_plane_independent,
            demand: false,
            detect_mult: self.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.required_min_rx,
            required_min_echo_rx: 0,
            auth,
        }
    }
}
