//! Personal data in logs: a [`Pii`] value prints as a short keyed fingerprint, never the value, so
//! log lines about the same number or address can still be correlated within one run of the
//! server. The key is random per process: a fingerprint cannot be reversed by hashing every phone
//! number, and fingerprints from different runs do not link.

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 32];
        // Without an OS random source the key stays zero: fingerprints then still hide the value
        // from a casual reader, and the server cannot run anyway (sessions need randomness).
        let _ = getrandom::fill(&mut k);
        k
    })
}

/// Wraps a phone number, SIP URI, IP address or message text for logging.
pub struct Pii<T>(pub T);

impl<T: AsRef<str>> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key()) else {
            return f.write_str("pii:?");
        };
        mac.update(self.0.as_ref().as_bytes());
        write!(f, "pii:{}", hex::encode(&mac.finalize().into_bytes()[..5]))
    }
}

impl<T: AsRef<str>> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Pii;

    #[test]
    fn never_prints_the_value() {
        let shown = format!("{} {:?}", Pii("+4915123456789"), Pii("+4915123456789"));
        assert!(!shown.contains("4915"));
        assert_eq!(format!("{}", Pii("a")), format!("{}", Pii("a")));
    }
}
