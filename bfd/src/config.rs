//! Per-session configuration: the operator-chosen values behind the §6.8.1
//! state variables `bfd.DesiredMinTxInterval`, `bfd.RequiredMinRxInterval`,
//! `bfd.DetectMult` and `bfd.AuthType`.

use crate::auth::AuthKey;
use std::time::Duration;
use thiserror::Error;

/// What an operator sets for one session; checked by [`SessionConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Desired Min TX Interval once Up (§6.8.3 forces at least 1 s otherwise).
    pub desired_min_tx: Duration,
    /// Required Min RX Interval: the fastest we accept packets. Zero asks the
    /// remote to send nothing (§6.8.18).
    pub required_min_rx: Duration,
    /// Detect Mult: how many of our packets the remote may miss.
    pub detect_mult: u8,
    /// Passive role (§6.1): send nothing until the remote's discriminator is known.
    pub passive: bool,
    /// C bit: our BFD shares no fate with our control plane.
    pub control_plane_independent: bool,
    /// Authentication in use (`bfd.AuthType` nonzero), or `None`.
    pub auth: Option<AuthKey>,
}

impl Default for SessionConfig {
    /// 300 ms × 3, a common tunnel-monitoring default (0.9 s detection).
    fn default() -> Self {
        SessionConfig {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
            passive: false,
            control_plane_independent: false,
            auth: None,
        }
    }
}

/// A configuration value the protocol cannot carry; names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A field is out of range; the message says which and why.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Several fields are invalid at once.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<ConfigError>),
}

/// Largest interval the 32-bit microsecond fields can carry.
pub const MAX_INTERVAL: Duration = Duration::from_micros(u32::MAX as u64);

impl SessionConfig {
    /// Reports every invalid field, so an operator fixes them in one go.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if self.desired_min_tx < Duration::from_micros(1) {
            // §4.1: "The value zero is reserved."
            errs.push(ConfigError::Invalid {
                field: "desired_min_tx",
                reason: "must be at least 1 µs",
            });
        }
        if self.desired_min_tx > MAX_INTERVAL {
            errs.push(ConfigError::Invalid {
                field: "desired_min_tx",
                reason: "exceeds 2^32-1 µs",
            });
        }
        if self.required_min_rx > MAX_INTERVAL {
            errs.push(ConfigError::Invalid {
                field: "required_min_rx",
                reason: "exceeds 2^32-1 µs",
            });
        }
        if self.detect_mult == 0 {
            // §6.8.6 discards packets with Detect Mult 0.
            errs.push(ConfigError::Invalid {
                field: "detect_mult",
                reason: "must be at least 1",
            });
        }
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(ConfigError::Many(errs)),
        }
    }
}

/// Microseconds for a wire field; callers validated the range.
pub(crate) fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}
