//! The BFD Control packet (RFC 5880 §4.1) as a checked view and a validated
//! representation, with every discard rule of §6.8.6 that can be judged from
//! the packet alone.

use crate::auth::{Auth, AuthType};
use thiserror::Error;

/// The only protocol version RFC 5880 defines; §6.8.6 discards any other.
pub const VERSION: u8 = 1;
/// Length of the mandatory section (§4.1); the minimum Length with A clear.
pub const HEADER_LEN: usize = 24;
/// Minimum Length with the A bit set (§6.8.6: 26 if the A bit is set).
pub const MIN_AUTH_LEN: usize = HEADER_LEN + 2;
/// Largest packet we ever build or accept: header plus the SHA1 section.
pub const MAX_LEN: usize = HEADER_LEN + 28;

mod field {
    pub const VERS_DIAG: usize = 0;
    pub const STA_FLAGS: usize = 1;
    pub const DETECT_MULT: usize = 2;
    pub const LENGTH: usize = 3;
    pub const MY_DISCR: core::ops::Range<usize> = 4..8;
    pub const YOUR_DISCR: core::ops::Range<usize> = 8..12;
    pub const DESIRED_MIN_TX: core::ops::Range<usize> = 12..16;
    pub const REQUIRED_MIN_RX: core::ops::Range<usize> = 16..20;
    pub const REQUIRED_MIN_ECHO_RX: core::ops::Range<usize> = 20..24;
    pub const AUTH: usize = 24;
}

mod flag {
    pub const POLL: u8 = 0x20;
    pub const FINAL: u8 = 0x10;
    pub const CPI: u8 = 0x08;
    pub const AUTH: u8 = 0x04;
    pub const DEMAND: u8 = 0x02;
    pub const MULTIPOINT: u8 = 0x01;
}

/// Session state as carried in the Sta field (§4.1) and held in
/// `bfd.SessionState` (§6.8.1). All four 2-bit values are assigned, so there is
/// no unknown variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Administratively held down; the remote must not treat it as a failure.
    AdminDown,
    /// No session, or it has just failed.
    Down,
    /// The remote is heard but has not yet confirmed it hears us.
    Init,
    /// Both directions are confirmed.
    Up,
}

impl State {
    /// Decodes the 2-bit Sta field; only the low two bits are used.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// Encodes for the Sta field.
    pub fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// A stable lower-case name for logs, status output and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "admin_down",
            State::Down => "down",
            State::Init => "init",
            State::Up => "up",
        }
    }
}

/// Diagnostic code (§4.1, IANA "BFD Diagnostic Codes"): why the sender's
/// session last changed state. Unassigned values round-trip as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    /// 0: no diagnostic.
    None,
    /// 1: the detection time passed without a packet from the remote.
    ControlDetectionTimeExpired,
    /// 2: the echo function failed.
    EchoFunctionFailed,
    /// 3: the remote told us it went down.
    NeighborSignaledSessionDown,
    /// 4: the forwarding plane was reset.
    ForwardingPlaneReset,
    /// 5: the path is down.
    PathDown,
    /// 6: a concatenated path is down.
    ConcatenatedPathDown,
    /// 7: an operator took the session down.
    AdministrativelyDown,
    /// 8: the reverse concatenated path is down.
    ReverseConcatenatedPathDown,
    /// Any other 5-bit value (9..=31), kept so it round-trips.
    Unknown(u8),
}

impl Diagnostic {
    /// A stable lower-case name for logs and status output (`unknown` for
    /// unassigned codes).
    pub fn name(self) -> &'static str {
        match self {
            Diagnostic::None => "none",
            Diagnostic::ControlDetectionTimeExpired => "control_detection_time_expired",
            Diagnostic::EchoFunctionFailed => "echo_function_failed",
            Diagnostic::NeighborSignaledSessionDown => "neighbor_signaled_session_down",
            Diagnostic::ForwardingPlaneReset => "forwarding_plane_reset",
            Diagnostic::PathDown => "path_down",
            Diagnostic::ConcatenatedPathDown => "concatenated_path_down",
            Diagnostic::AdministrativelyDown => "administratively_down",
            Diagnostic::ReverseConcatenatedPathDown => "reverse_concatenated_path_down",
            Diagnostic::Unknown(_) => "unknown",
        }
    }

    /// Decodes the 5-bit Diag field; only the low five bits are used.
    pub fn from_bits(bits: u8) -> Self {
        match bits & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            n => Diagnostic::Unknown(n),
        }
    }

    /// Encodes for the Diag field (an `Unknown` value is masked to 5 bits).
    pub fn bits(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Unknown(n) => n & 0x1f,
        }
    }
}

/// Why a received packet was discarded by the packet-only rules of §6.8.6
/// (and the section formats of §4.2–§4.4). Counted and dropped by callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReceptionError {
    /// The datagram cannot even hold the mandatory section.
    #[error("truncated: {len} bytes, need at least {HEADER_LEN}")]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// §6.8.6: "If the version number is not correct (1), the packet MUST be discarded."
    #[error("version {0}, only 1 is defined")]
    BadVersion(u8),
    /// §6.8.6: Length below 24 (A clear) or 26 (A set).
    #[error("length field {length} below the minimum {min}")]
    LengthTooShort {
        /// The Length field.
        length: u8,
        /// 24 or 26 depending on the A bit.
        min: u8,
    },
    /// §6.8.6: "If the Length field is greater than the payload of the
    /// encapsulating protocol, the packet MUST be discarded."
    #[error("length field {length} exceeds the {payload}-byte payload")]
    LengthExceedsPayload {
        /// The Length field.
        length: u8,
        /// The UDP payload size.
        payload: usize,
    },
    /// §6.8.6: "If the Detect Mult field is zero, the packet MUST be discarded."
    #[error("detect mult is zero")]
    ZeroDetectMult,
    /// §6.8.6: "If the Multipoint (M) bit is nonzero, the packet MUST be discarded."
    #[error("multipoint bit set")]
    Multipoint,
    /// §6.8.6: "If the My Discriminator field is zero, the packet MUST be discarded."
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// §6.8.6: Your Discriminator zero while State is neither Down nor AdminDown.
    #[error("your discriminator is zero in state {0:?}")]
    ZeroYourDiscriminator(State),
    /// §4.2–§4.4: the auth section's Auth Len disagrees with the Length field
    /// (the section is the last thing in the packet, so they must add up).
    #[error("auth len {auth_len} does not fill length {length}")]
    AuthLengthMismatch {
        /// The Auth Len field.
        auth_len: u8,
        /// The Length field.
        length: u8,
    },
    /// §4.2–§4.4: Auth Len is not the value the Auth Type requires.
    #[error("auth len {auth_len} invalid for auth type {auth_type:?}")]
    BadAuthLen {
        /// The Auth Type field.
        auth_type: AuthType,
        /// The Auth Len field.
        auth_len: u8,
    },
    /// §6.7: an auth type we cannot verify (reserved or unassigned).
    #[error("unsupported auth type {0:?}")]
    UnsupportedAuthType(AuthType),
}

/// A read/write view of a BFD Control packet in a byte buffer.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       My Discriminator                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Your Discriminator                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Desired Min TX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Required Min RX Interval                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Required Min Echo RX Interval                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
///
/// An optional Authentication Section MAY be present:
///
/// |   Auth Type   |   Auth Len    |    Authentication Data...     |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// Intervals are in microseconds. The buffer is the UDP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on short input.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len), so no accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Self, ReceptionError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that every field the Length and A bit announce lies within the
    /// buffer (§6.8.6 length rules), including the auth section's own header.
    pub fn check_len(&self) -> Result<(), ReceptionError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(ReceptionError::Truncated { len: b.len() });
        }
        let length = self.length();
        let min = if self.auth_present() {
            MIN_AUTH_LEN
        } else {
            HEADER_LEN
        };
        if usize::from(length) < min {
            return Err(ReceptionError::LengthTooShort {
                length,
                min: min as u8,
            });
        }
        if usize::from(length) > b.len() {
            return Err(ReceptionError::LengthExceedsPayload {
                length,
                payload: b.len(),
            });
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Vers field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERS_DIAG] >> 5
    }
    /// Diag field.
    pub fn diag(&self) -> Diagnostic {
        Diagnostic::from_bits(self.buffer.as_ref()[field::VERS_DIAG])
    }
    /// Sta field.
    pub fn state(&self) -> State {
        State::from_bits(self.buffer.as_ref()[field::STA_FLAGS] >> 6)
    }
    fn flag(&self, f: u8) -> bool {
        self.buffer.as_ref()[field::STA_FLAGS] & f != 0
    }
    /// P bit: the sender asks for a Final (§6.5).
    pub fn poll(&self) -> bool {
        self.flag(flag::POLL)
    }
    /// F bit: the sender answers a Poll (§6.5).
    pub fn final_(&self) -> bool {
        self.flag(flag::FINAL)
    }
    /// C bit: the sender's BFD does not share fate with its control plane.
    pub fn control_plane_independent(&self) -> bool {
        self.flag(flag::CPI)
    }
    /// A bit: an authentication section follows.
    pub fn auth_present(&self) -> bool {
        self.flag(flag::AUTH)
    }
    /// D bit: the sender wants Demand mode.
    pub fn demand(&self) -> bool {
        self.flag(flag::DEMAND)
    }
    /// M bit: reserved for multipoint, must be zero.
    pub fn multipoint(&self) -> bool {
        self.flag(flag::MULTIPOINT)
    }
    /// Detect Mult field.
    pub fn detect_mult(&self) -> u8 {
        self.buffer.as_ref()[field::DETECT_MULT]
    }
    /// Length field: the whole BFD packet including the auth section.
    pub fn length(&self) -> u8 {
        self.buffer.as_ref()[field::LENGTH]
    }
    /// My Discriminator field.
    pub fn my_discriminator(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MY_DISCR)
    }
    /// Your Discriminator field.
    pub fn your_discriminator(&self) -> u32 {
        be32(self.buffer.as_ref(), field::YOUR_DISCR)
    }
    /// Desired Min TX Interval field, microseconds.
    pub fn desired_min_tx(&self) -> u32 {
        be32(self.buffer.as_ref(), field::DESIRED_MIN_TX)
    }
    /// Required Min RX Interval field, microseconds.
    pub fn required_min_rx(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REQUIRED_MIN_RX)
    }
    /// Required Min Echo RX Interval field, microseconds.
    pub fn required_min_echo_rx(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REQUIRED_MIN_ECHO_RX)
    }
    /// The authentication section as the Length field bounds it (empty when
    /// the A bit is clear). Needs a checked packet.
    pub fn auth_section(&self) -> &[u8] {
        if !self.auth_present() {
            return &[];
        }
        &self.buffer.as_ref()[field::AUTH..usize::from(self.length())]
    }
    /// The bytes the Length field covers: what a digest is computed over.
    pub fn bfd_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.length())]
    }
    /// The parsed authentication section (`None` when the A bit is clear):
    /// its Auth Len must fill the Length exactly and fit its Auth Type
    /// (§4.2–§4.4). Needs a checked packet.
    pub fn auth(&self) -> Result<Option<Auth>, ReceptionError> {
        if !self.auth_present() {
            return Ok(None);
        }
        let section = self.auth_section();
        let auth_len = section[1];
        if usize::from(auth_len) != section.len() {
            return Err(ReceptionError::AuthLengthMismatch {
                auth_len,
                length: self.length(),
            });
        }
        Auth::parse(section).map(Some)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets Vers and Diag together (they share a byte).
    pub fn set_version_diag(&mut self, version: u8, diag: Diagnostic) {
        self.buffer.as_mut()[field::VERS_DIAG] = (version << 5) | diag.bits();
    }
    /// Sets Sta and all six flags (they share a byte); M is always written 0.
    pub fn set_state_flags(&mut self, state: State, flags: Flags) {
        let mut b = state.bits() << 6;
        for (on, f) in [
            (flags.poll, flag::POLL),
            (flags.final_, flag::FINAL),
            (flags.control_plane_independent, flag::CPI),
            (flags.auth_present, flag::AUTH),
            (flags.demand, flag::DEMAND),
        ] {
            if on {
                b |= f;
            }
        }
        self.buffer.as_mut()[field::STA_FLAGS] = b;
    }
    /// Sets the M bit; only tests need a packet that violates §4.1.
    pub fn set_multipoint(&mut self, on: bool) {
        let b = &mut self.buffer.as_mut()[field::STA_FLAGS];
        if on {
            *b |= flag::MULTIPOINT;
        } else {
            *b &= !flag::MULTIPOINT;
        }
    }
    /// Sets Detect Mult.
    pub fn set_detect_mult(&mut self, v: u8) {
        self.buffer.as_mut()[field::DETECT_MULT] = v;
    }
    /// Sets Length.
    pub fn set_length(&mut self, v: u8) {
        self.buffer.as_mut()[field::LENGTH] = v;
    }
    /// Sets My Discriminator.
    pub fn set_my_discriminator(&mut self, v: u32) {
        self.buffer.as_mut()[field::MY_DISCR].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Your Discriminator.
    pub fn set_your_discriminator(&mut self, v: u32) {
        self.buffer.as_mut()[field::YOUR_DISCR].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Desired Min TX Interval (µs).
    pub fn set_desired_min_tx(&mut self, v: u32) {
        self.buffer.as_mut()[field::DESIRED_MIN_TX].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Required Min RX Interval (µs).
    pub fn set_required_min_rx(&mut self, v: u32) {
        self.buffer.as_mut()[field::REQUIRED_MIN_RX].copy_from_slice(&v.to_be_bytes());
    }
    /// Sets Required Min Echo RX Interval (µs).
    pub fn set_required_min_echo_rx(&mut self, v: u32) {
        self.buffer.as_mut()[field::REQUIRED_MIN_ECHO_RX].copy_from_slice(&v.to_be_bytes());
    }
    /// The mutable auth section (bounded by Length), for signing in place.
    pub fn auth_section_mut(&mut self) -> &mut [u8] {
        if !self.auth_present() {
            return &mut [];
        }
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[field::AUTH..end]
    }
}

/// The P, F, C, A, D bits of the second byte, grouped for [`Packet::set_state_flags`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// P bit.
    pub poll: bool,
    /// F bit.
    pub final_: bool,
    /// C bit.
    pub control_plane_independent: bool,
    /// A bit.
    pub auth_present: bool,
    /// D bit.
    pub demand: bool,
}

/// A validated BFD Control packet: everything `parse` accepted satisfies the
/// packet-only rules of §6.8.6, and everything `emit` writes does too (given
/// valid field values). `Copy` and allocation-free, for tens of thousands of
/// sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Diag: why the sender last changed state.
    pub diag: Diagnostic,
    /// Sta: the sender's `bfd.SessionState`.
    pub state: State,
    /// P bit.
    pub poll: bool,
    /// F bit.
    pub final_: bool,
    /// C bit.
    pub control_plane_independent: bool,
    /// D bit.
    pub demand: bool,
    /// Detect Mult: the sender's `bfd.DetectMult`.
    pub detect_mult: u8,
    /// My Discriminator: the sender's `bfd.LocalDiscr`.
    pub my_discriminator: u32,
    /// Your Discriminator: the sender's `bfd.RemoteDiscr` (0 if unknown).
    pub your_discriminator: u32,
    /// Desired Min TX Interval, µs.
    pub desired_min_tx: u32,
    /// Required Min RX Interval, µs.
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval, µs (0: no echo).
    pub required_min_echo_rx: u32,
    /// The authentication section; `Some` exactly when the A bit is set.
    pub auth: Option<Auth>,
}

impl Repr {
    /// Validates a UDP payload by every packet-only rule of §6.8.6 and the
    /// auth section formats of §4.2–§4.4. Does not verify digests: that needs
    /// the session's key (see [`crate::auth`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(payload: &T) -> Result<Repr, ReceptionError> {
        let p = Packet::new_checked(payload.as_ref())?;
        if p.version() != VERSION {
            return Err(ReceptionError::BadVersion(p.version()));
        }
        if p.detect_mult() == 0 {
            return Err(ReceptionError::ZeroDetectMult);
        }
        if p.multipoint() {
            return Err(ReceptionError::Multipoint);
        }
        if p.my_discriminator() == 0 {
            return Err(ReceptionError::ZeroMyDiscriminator);
        }
        if p.your_discriminator() == 0 && !matches!(p.state(), State::Down | State::AdminDown) {
            return Err(ReceptionError::ZeroYourDiscriminator(p.state()));
        }
        // With A clear, bytes between 24 and Length are not defined by §4.1;
        // they are ignored rather than discarded (no discard rule covers them).
        let auth = p.auth()?;
        Ok(Repr {
            diag: p.diag(),
            state: p.state(),
            poll: p.poll(),
            final_: p.final_(),
            control_plane_independent: p.control_plane_independent(),
            demand: p.demand(),
            detect_mult: p.detect_mult(),
            my_discriminator: p.my_discriminator(),
            your_discriminator: p.your_discriminator(),
            desired_min_tx: p.desired_min_tx(),
            required_min_rx: p.required_min_rx(),
            required_min_echo_rx: p.required_min_echo_rx(),
            auth,
        })
    }

    /// Bytes `emit` writes: 24 plus the auth section.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.auth.as_ref().map_or(0, |a| a.len())
    }

    /// Writes the packet into `buf[..buffer_len()]`. The digest field is
    /// written as held in `auth`; use [`crate::auth::sign`] afterwards to fill it.
    /// Returns the number of bytes written, or `None` if `buf` is too short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len)?;
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_version_diag(VERSION, self.diag);
        p.set_state_flags(
            self.state,
            Flags {
                poll: self.poll,
                final_: self.final_,
                control_plane_independent: self.control_plane_independent,
                auth_present: self.auth.is_some(),
                demand: self.demand,
            },
        );
        p.set_detect_mult(self.detect_mult);
        p.set_length(len as u8);
        p.set_my_discriminator(self.my_discriminator);
        p.set_your_discriminator(self.your_discriminator);
        p.set_desired_min_tx(self.desired_min_tx);
        p.set_required_min_rx(self.required_min_rx);
        p.set_required_min_echo_rx(self.required_min_echo_rx);
        if let Some(a) = &self.auth {
            a.emit(&mut buf[HEADER_LEN..len]);
        }
        Some(len)
    }
}
