//! The optional authentication section (RFC 5880 §4.2–§4.4) and its
//! procedures (§6.7): simple password, keyed and meticulous keyed MD5 and
//! SHA1, digest computation in place, verification and the sequence window.

use crate::packet::{HEADER_LEN, MAX_LEN, Packet, ReceptionError};
use md5::Md5;
use sha1::{Digest, Sha1};
use thiserror::Error;

/// Auth Type (§4.1, IANA "BFD Authentication Types"); unassigned and the
/// reserved 0 round-trip as `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// 1: cleartext password (§4.2).
    SimplePassword,
    /// 2: MD5 over the packet, sequence number incremented occasionally (§4.3).
    KeyedMd5,
    /// 3: MD5, sequence number incremented on every packet (§4.3).
    MeticulousKeyedMd5,
    /// 4: SHA1, sequence number incremented occasionally (§4.4).
    KeyedSha1,
    /// 5: SHA1, sequence number incremented on every packet (§4.4).
    MeticulousKeyedSha1,
    /// Any other value, kept so it round-trips.
    Unknown(u8),
}

impl AuthType {
    /// Decodes the Auth Type byte.
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => AuthType::SimplePassword,
            2 => AuthType::KeyedMd5,
            3 => AuthType::MeticulousKeyedMd5,
            4 => AuthType::KeyedSha1,
            5 => AuthType::MeticulousKeyedSha1,
            n => AuthType::Unknown(n),
        }
    }

    /// Encodes the Auth Type byte.
    pub fn to_u8(self) -> u8 {
        match self {
            AuthType::SimplePassword => 1,
            AuthType::KeyedMd5 => 2,
            AuthType::MeticulousKeyedMd5 => 3,
            AuthType::KeyedSha1 => 4,
            AuthType::MeticulousKeyedSha1 => 5,
            AuthType::Unknown(n) => n,
        }
    }

    /// Whether the sequence number must advance on every packet (§6.7.3, §6.7.4).
    pub fn is_meticulous(self) -> bool {
        matches!(
            self,
            AuthType::MeticulousKeyedMd5 | AuthType::MeticulousKeyedSha1
        )
    }

    /// Longest key or password the type can carry (16 for password and MD5,
    /// 20 for SHA1), or `None` if we do not implement the type.
    pub fn max_key_len(self) -> Option<usize> {
        match self {
            AuthType::SimplePassword | AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => {
                Some(16)
            }
            AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => Some(20),
            AuthType::Unknown(_) => None,
        }
    }
}

/// A simple password of 1 to 16 bytes (§4.2), held inline so `Auth` is `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Password {
    len: u8,
    bytes: [u8; 16],
}

impl core::fmt::Debug for Password {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never log a secret.
        write!(f, "Password({} bytes)", self.len)
    }
}

impl Password {
    /// Builds a password; `None` unless it is 1 to 16 bytes (§4.2).
    pub fn new(p: &[u8]) -> Option<Self> {
        if p.is_empty() || p.len() > 16 {
            return None;
        }
        let mut bytes = [0; 16];
        bytes[..p.len()].copy_from_slice(p);
        Some(Password {
            len: p.len() as u8,
            bytes,
        })
    }

    /// The password bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A parsed authentication section.
///
/// ```text
/// Simple Password (§4.2):
/// |   Auth Type   |   Auth Len    |  Auth Key ID  |  Password...  |
///
/// Keyed / Meticulous Keyed MD5 (§4.3), Auth Len 24, 16-byte digest;
/// Keyed / Meticulous Keyed SHA1 (§4.4), Auth Len 28, 20-byte hash:
/// |   Auth Type   |   Auth Len    |  Auth Key ID  |   Reserved    |
/// |                        Sequence Number                        |
/// |                     Auth Key/Digest/Hash...                   |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// §4.2.
    SimplePassword {
        /// Auth Key ID.
        key_id: u8,
        /// Password.
        password: Password,
    },
    /// §4.3 (type 2, or 3 when `meticulous`).
    KeyedMd5 {
        /// Auth Key ID.
        key_id: u8,
        /// Type 3 rather than 2.
        meticulous: bool,
        /// Sequence Number.
        seq: u32,
        /// Auth Key/Digest.
        digest: [u8; 16],
    },
    /// §4.4 (type 4, or 5 when `meticulous`).
    KeyedSha1 {
        /// Auth Key ID.
        key_id: u8,
        /// Type 5 rather than 4.
        meticulous: bool,
        /// Sequence Number.
        seq: u32,
        /// Auth Key/Hash.
        hash: [u8; 20],
    },
}

const MD5_AUTH_LEN: u8 = 24;
const SHA1_AUTH_LEN: u8 = 28;
const DIGEST_OFFSET: usize = 8;

impl Auth {
    /// Parses a section whose length already equals its Auth Len byte.
    pub(crate) fn parse(s: &[u8]) -> Result<Auth, ReceptionError> {
        let auth_type = AuthType::from_u8(s[0]);
        let auth_len = s[1];
        let bad = ReceptionError::BadAuthLen {
            auth_type,
            auth_len,
        };
        match auth_type {
            AuthType::SimplePassword => {
                // Auth Len = password length + 3, password 1..=16 bytes.
                if !(4..=19).contains(&auth_len) {
                    return Err(bad);
                }
                let password = Password::new(&s[3..]).ok_or(bad)?;
                Ok(Auth::SimplePassword {
                    key_id: s[2],
                    password,
                })
            }
            AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => {
                let (key_id, meticulous, seq, digest) = keyed_fields(s, MD5_AUTH_LEN).ok_or(bad)?;
                Ok(Auth::KeyedMd5 {
                    key_id,
                    meticulous,
                    seq,
                    digest,
                })
            }
            AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => {
                let (key_id, meticulous, seq, hash) = keyed_fields(s, SHA1_AUTH_LEN).ok_or(bad)?;
                Ok(Auth::KeyedSha1 {
                    key_id,
                    meticulous,
                    seq,
                    hash,
                })
            }
            AuthType::Unknown(_) => Err(ReceptionError::UnsupportedAuthType(auth_type)),
        }
    }

    /// The Auth Type this section carries.
    pub fn auth_type(&self) -> AuthType {
        match *self {
            Auth::SimplePassword { .. } => AuthType::SimplePassword,
            Auth::KeyedMd5 {
                meticulous: false, ..
            } => AuthType::KeyedMd5,
            Auth::KeyedMd5 {
                meticulous: true, ..
            } => AuthType::MeticulousKeyedMd5,
            Auth::KeyedSha1 {
                meticulous: false, ..
            } => AuthType::KeyedSha1,
            Auth::KeyedSha1 {
                meticulous: true, ..
            } => AuthType::MeticulousKeyedSha1,
        }
    }

    /// Auth Key ID.
    pub fn key_id(&self) -> u8 {
        match *self {
            Auth::SimplePassword { key_id, .. }
            | Auth::KeyedMd5 { key_id, .. }
            | Auth::KeyedSha1 { key_id, .. } => key_id,
        }
    }

    /// Sequence Number, for the keyed types.
    pub fn seq(&self) -> Option<u32> {
        match *self {
            Auth::SimplePassword { .. } => None,
            Auth::KeyedMd5 { seq, .. } | Auth::KeyedSha1 { seq, .. } => Some(seq),
        }
    }

    /// Auth Len: the section's size in bytes.
    pub fn len(&self) -> usize {
        match self {
            Auth::SimplePassword { password, .. } => 3 + password.as_bytes().len(),
            Auth::KeyedMd5 { .. } => usize::from(MD5_AUTH_LEN),
            Auth::KeyedSha1 { .. } => usize::from(SHA1_AUTH_LEN),
        }
    }

    /// Never true: every section has at least its type and length bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the section into `s`, exactly `len()` bytes long.
    pub(crate) fn emit(&self, s: &mut [u8]) {
        s[0] = self.auth_type().to_u8();
        s[1] = self.len() as u8;
        s[2] = self.key_id();
        match self {
            Auth::SimplePassword { password, .. } => s[3..].copy_from_slice(password.as_bytes()),
            Auth::KeyedMd5 { seq, digest, .. } => emit_keyed(s, *seq, digest),
            Auth::KeyedSha1 { seq, hash, .. } => emit_keyed(s, *seq, hash),
        }
    }
}

/// Writes Reserved, Sequence Number and the digest of a keyed section (§4.3, §4.4).
fn emit_keyed(s: &mut [u8], seq: u32, digest: &[u8]) {
    s[3] = 0;
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s[DIGEST_OFFSET..].copy_from_slice(digest);
}

/// Key ID, meticulous flag, Sequence Number and digest of a keyed section
/// (§4.3, §4.4), if Auth Len is `auth_len`; the digest is the rest of it.
fn keyed_fields<const N: usize>(s: &[u8], auth_len: u8) -> Option<(u8, bool, u32, [u8; N])> {
    if s[1] != auth_len {
        return None;
    }
    let digest = <[u8; N]>::try_from(&s[DIGEST_OFFSET..]).ok()?;
    let meticulous = AuthType::from_u8(s[0]).is_meticulous();
    Some((
        s[2],
        meticulous,
        u32::from_be_bytes([s[4], s[5], s[6], s[7]]),
        digest,
    ))
}

/// Why an authentication section was rejected (§6.7); the packet is discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The key material does not fit the type (or the type is not implemented).
    #[error("key of {len} bytes invalid for {auth_type:?}")]
    BadKey {
        /// Configured type.
        auth_type: AuthType,
        /// Key length given.
        len: usize,
    },
    /// §6.8.6: A bit set but the session uses no authentication.
    #[error("authentication present but not in use")]
    Unexpected,
    /// §6.8.6: A bit clear but the session uses authentication.
    #[error("authentication missing")]
    Missing,
    /// The packet's Auth Type is not the session's.
    #[error("auth type {got:?}, session uses {want:?}")]
    WrongType {
        /// Received.
        got: AuthType,
        /// Configured.
        want: AuthType,
    },
    /// §6.7.2–§6.7.4: Auth Key ID does not name a configured key.
    #[error("unknown auth key id {0}")]
    UnknownKeyId(u8),
    /// §6.7.2: password differs.
    #[error("password mismatch")]
    BadPassword,
    /// §6.7.3, §6.7.4: digest or hash differs.
    #[error("digest mismatch")]
    BadDigest,
    /// §6.7.3, §6.7.4: sequence number outside the accepted window.
    #[error("sequence number {seq} outside window after {last}")]
    SeqOutOfWindow {
        /// Received.
        seq: u32,
        /// `bfd.RcvAuthSeq`.
        last: u32,
    },
    /// The bytes are not a valid BFD packet at all.
    #[error(transparent)]
    Packet(#[from] ReceptionError),
}

/// A configured key: `bfd.AuthType` plus one key ID and its secret (§6.7.1).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey {
    auth_type: AuthType,
    key_id: u8,
    len: u8,
    secret: [u8; 20],
}

impl core::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never log a secret.
        f.debug_struct("AuthKey")
            .field("auth_type", &self.auth_type)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl AuthKey {
    /// Builds a key, checking the secret fits the type (password 1–16 bytes,
    /// MD5 key 1–16, SHA1 key 1–20; shorter keys are zero-padded per §4.3/§4.4).
    pub fn new(auth_type: AuthType, key_id: u8, secret: &[u8]) -> Result<Self, AuthError> {
        let bad = AuthError::BadKey {
            auth_type,
            len: secret.len(),
        };
        let max = auth_type.max_key_len().ok_or(bad)?;
        if secret.is_empty() || secret.len() > max {
            return Err(bad);
        }
        let mut s = [0; 20];
        s[..secret.len()].copy_from_slice(secret);
        Ok(AuthKey {
            auth_type,
            key_id,
            len: secret.len() as u8,
            secret: s,
        })
    }

    /// The configured `bfd.AuthType`.
    pub fn auth_type(&self) -> AuthType {
        self.auth_type
    }

    /// The configured key ID.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    fn secret(&self) -> &[u8] {
        &self.secret[..usize::from(self.len)]
    }

    /// The section to put in an outgoing `Repr`, with sequence number `seq`
    /// and the digest still unset (fill it with [`sign`] after `emit`).
    pub fn section(&self, seq: u32) -> Auth {
        let meticulous = self.auth_type.is_meticulous();
        match self.auth_type {
            AuthType::SimplePassword => Auth::SimplePassword {
                key_id: self.key_id,
                // The constructor guarantees 1..=16 bytes.
                password: Password::new(self.secret()).unwrap_or(Password {
                    len: 1,
                    bytes: [0; 16],
                }),
            },
            AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => Auth::KeyedMd5 {
                key_id: self.key_id,
                meticulous,
                seq,
                digest: [0; 16],
            },
            _ => Auth::KeyedSha1 {
                key_id: self.key_id,
                meticulous,
                seq,
                hash: [0; 20],
            },
        }
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // Length is public; the content comparison does not stop early.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Overwrites the digest field of `packet` (a whole keyed packet, exactly
/// Length long) with the zero-padded key and hashes the packet into `out`
/// (§6.7.3, §6.7.4): MD5 (16 bytes) or SHA1 (20 bytes).
fn keyed_digest(packet: &mut [u8], key: &AuthKey, out: &mut [u8]) {
    let field = &mut packet[HEADER_LEN + DIGEST_OFFSET..];
    field.fill(0);
    field[..usize::from(key.len)].copy_from_slice(key.secret());
    match key.auth_type {
        AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => {
            out.copy_from_slice(&Md5::digest(&*packet));
        }
        _ => out.copy_from_slice(&Sha1::digest(&*packet)),
    }
}

/// The checked packet and its authentication section, which must be present.
fn section_of(packet: &[u8]) -> Result<(Packet<&[u8]>, Auth), AuthError> {
    let p = Packet::new_checked(packet)?;
    // Parsing proves the section has the exact size of its type.
    let auth = p.auth()?.ok_or(AuthError::Missing)?;
    Ok((p, auth))
}

fn check_type(auth: &Auth, key: &AuthKey) -> Result<(), AuthError> {
    if auth.auth_type() != key.auth_type {
        return Err(AuthError::WrongType {
            got: auth.auth_type(),
            want: key.auth_type,
        });
    }
    Ok(())
}

/// Fills the digest of an emitted keyed-MD5/SHA1 packet in place (§6.7.3,
/// §6.7.4: the key, zero padded, stands in the digest field while hashing the
/// whole packet). A no-op for simple password, whose section is final already.
pub fn sign(packet: &mut [u8], key: &AuthKey) -> Result<(), AuthError> {
    let (p, auth) = section_of(packet)?;
    check_type(&auth, key)?;
    let len = usize::from(p.length());
    fill_digest(&mut packet[..len], key);
    Ok(())
}

/// [`sign`] for a packet known to be well formed with a section of `key`'s
/// type (one a session has just emitted): no checks, exactly Length bytes.
pub(crate) fn fill_digest(packet: &mut [u8], key: &AuthKey) {
    let n = match key.auth_type {
        AuthType::KeyedMd5 | AuthType::MeticulousKeyedMd5 => 16,
        AuthType::KeyedSha1 | AuthType::MeticulousKeyedSha1 => 20,
        AuthType::SimplePassword | AuthType::Unknown(_) => return,
    };
    let mut out = [0u8; 20];
    keyed_digest(packet, key, &mut out[..n]);
    packet[HEADER_LEN + DIGEST_OFFSET..].copy_from_slice(&out[..n]);
}

/// Verifies the auth section of a received packet against `key`: type, key
/// ID, and password or digest (§6.7.2–§6.7.4). The sequence window is the
/// session's job ([`SeqWindow`]). Returns the parsed section.
pub fn verify(packet: &[u8], key: &AuthKey) -> Result<Auth, AuthError> {
    let (p, auth) = section_of(packet)?;
    verify_parsed(p.bfd_bytes(), &auth, key)?;
    Ok(auth)
}

/// [`verify`] for a section already parsed out of `bytes` (the packet's
/// Length bytes), so a receive path parses each packet once.
pub(crate) fn verify_parsed(bytes: &[u8], auth: &Auth, key: &AuthKey) -> Result<(), AuthError> {
    check_type(auth, key)?;
    if auth.key_id() != key.key_id {
        return Err(AuthError::UnknownKeyId(auth.key_id()));
    }
    match auth {
        Auth::SimplePassword { password, .. } => {
            if ct_eq(password.as_bytes(), key.secret()) {
                Ok(())
            } else {
                Err(AuthError::BadPassword)
            }
        }
        Auth::KeyedMd5 { digest, .. } => check_digest(bytes, key, digest),
        Auth::KeyedSha1 { hash, .. } => check_digest(bytes, key, hash),
    }
}

fn check_digest(bytes: &[u8], key: &AuthKey, received: &[u8]) -> Result<(), AuthError> {
    let mut copy = [0u8; MAX_LEN];
    let copy = &mut copy[..bytes.len()];
    copy.copy_from_slice(bytes);
    let mut out = [0u8; 20];
    let out = &mut out[..received.len()];
    keyed_digest(copy, key, out);
    if ct_eq(out, received) {
        Ok(())
    } else {
        Err(AuthError::BadDigest)
    }
}

/// Receive-side replay protection: `bfd.RcvAuthSeq` and `bfd.AuthSeqKnown`
/// (§6.8.1) with the window of §6.7.3/§6.7.4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqWindow {
    /// `bfd.AuthSeqKnown`.
    pub known: bool,
    /// `bfd.RcvAuthSeq`.
    pub last: u32,
}

impl SeqWindow {
    /// Accepts `seq` if it lies in `last..=last+3*detect_mult` (keyed) or
    /// `last+1..=last+3*detect_mult` (meticulous), circularly, or if no sequence
    /// is known yet; on success records it. `detect_mult` is the received
    /// packet's Detect Mult: the window counts the sender's packets.
    pub fn check_and_update(
        &mut self,
        seq: u32,
        meticulous: bool,
        detect_mult: u8,
    ) -> Result<(), AuthError> {
        if self.known {
            let ahead = seq.wrapping_sub(self.last);
            let lo = u32::from(meticulous);
            let hi = 3 * u32::from(detect_mult);
            if ahead < lo || ahead > hi {
                return Err(AuthError::SeqOutOfWindow {
                    seq,
                    last: self.last,
                });
            }
        }
        self.known = true;
        self.last = seq;
        Ok(())
    }
}
