//! Personal data in logs: a [`Pii`] value prints as a short keyed fingerprint, never the value, so
//! log lines about the same number or address can still be correlated.

use std::fmt;

use sha2::{Digest, Sha256};

/// Wraps a phone number, SIP URI, IP address or message text for logging.
pub struct Pii<T>(pub T);

impl<T: AsRef<str>> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = Sha256::digest(self.0.as_ref().as_bytes());
        write!(f, "pii:{}", hex::encode(&digest[..4]))
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
