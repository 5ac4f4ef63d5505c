//! The SIP vocabulary of the server side: registrar usernames and passwords, transports, and the
//! registration state of a trunk. Trunk settings are in [`super::trunk`].

use std::fmt;

// `string_enum!` names these unqualified.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

string_enum! {
    /// The transport a softphone registered over (`Via` of its REGISTER).
    SipTransport {
        /// UDP.
        Udp = "udp",
        /// TCP.
        Tcp = "tcp",
        /// TLS over TCP.
        Tls = "tls",
        /// WebSocket (RFC 7118).
        Ws = "ws",
        /// Secure WebSocket (RFC 7118).
        Wss = "wss",
    }
}

string_enum! {
    /// The transport masterz uses towards a trunk's provider.
    #[derive(Default)]
    TrunkTransport {
        /// UDP (the default, and what most providers expect).
        #[default]
        Udp = "udp",
        /// TCP.
        Tcp = "tcp",
        /// TLS over TCP.
        Tls = "tls",
    }
}

string_enum! {
    /// Where masterz stands in registering to a trunk's provider.
    TrunkState {
        /// The trunk does not register (`register` is off).
        Disabled = "disabled",
        /// A REGISTER is under way, or the trunk changed and has not registered since.
        Registering = "registering",
        /// The provider accepted the registration until `registered_until`.
        Registered = "registered",
        /// The last attempt failed (`reason`); the next one is at `next_attempt_at`.
        Failed = "failed",
    }
}

/// `TryFrom<String>` for reading these enums from TEXT columns (`#[sqlx(try_from = "String")]`).
macro_rules! from_stored {
    ($($name:ident),*) => {$(
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                Self::parse(&text).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?}"), text)
                })
            }
        }
    )*};
}
from_stored!(SipTransport, TrunkTransport, TrunkState);

/// Largest SIP username, in bytes.
pub const MAX_SIP_USERNAME: usize = 64;

/// Checks a registrar username: 1–64 characters of `A-Z a-z 0-9 . _ - +`.
///
/// The set is a subset of RFC 3261 `unreserved` that needs no escaping in a SIP URI user part or
/// a digest `username="…"`, and that softphones accept in their account forms. Usernames are
/// compared case-sensitively, as RFC 3261 §19.1.4 compares user parts.
pub fn valid_sip_username(name: &str) -> bool {
    (1..=MAX_SIP_USERNAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

/// Why a SIP password is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SipPasswordError {
    /// Shorter than 8 or longer than 128 characters.
    Length,
    /// Contains a control character (softphones cannot type it; some print it into logs).
    Control,
}

impl fmt::Display for SipPasswordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Length => "must be 8 to 128 characters",
            Self::Control => "must not contain control characters",
        })
    }
}

impl std::error::Error for SipPasswordError {}

/// Checks a registrar password. Digest authentication reveals nothing of it on the wire, but a
/// captured challenge and response can be attacked offline, so short passwords are refused.
pub fn check_sip_password(password: &str) -> Result<(), SipPasswordError> {
    if !(8..=128).contains(&password.chars().count()) {
        return Err(SipPasswordError::Length);
    }
    if password.chars().any(char::is_control) {
        return Err(SipPasswordError::Control);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["alice", "A.b_c-d+1", "1001", &"x".repeat(64)] {
            assert!(valid_sip_username(ok), "{ok}");
        }
        for bad in ["", "a b", "a@b", "a:b", "ä", "a;b", &"x".repeat(65)] {
            assert!(!valid_sip_username(bad), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert_eq!(check_sip_password("long enough"), Ok(()));
        assert_eq!(check_sip_password("short"), Err(SipPasswordError::Length));
        assert_eq!(
            check_sip_password(&"p".repeat(129)),
            Err(SipPasswordError::Length)
        );
        assert_eq!(
            check_sip_password("line\nbreak!"),
            Err(SipPasswordError::Control)
        );
    }

    #[test]
    fn stored_names_round_trip() {
        for t in SipTransport::ALL {
            assert_eq!(SipTransport::try_from(t.as_str().to_owned()), Ok(*t));
        }
        assert!(TrunkState::try_from("up".to_owned()).is_err());
    }
}
