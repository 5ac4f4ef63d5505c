//! Webhook signatures, checked on the exact bytes received and compared in constant time
//! (`Mac::verify_slice`): Meta's `X-Hub-Signature-256: sha256=<hex>` (HMAC-SHA256 with the app
//! secret) and WAHA's `X-Webhook-Hmac: <hex>` (HMAC-SHA512 with the webhook's key).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

/// Why a signature did not verify: missing (→ 401) or wrong (→ 403).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// No signature header, or not in the documented form.
    Missing,
    /// A signature that does not match the body.
    Invalid,
}

/// The raw digest of an `X-Hub-Signature-256` header value (`sha256=<hex>`).
pub fn parse_meta_header(value: Option<&[u8]>) -> Result<Vec<u8>, Rejection> {
    let text = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or(Rejection::Missing)?;
    let hex_part = text
        .trim()
        .strip_prefix("sha256=")
        .ok_or(Rejection::Missing)?;
    hex::decode(hex_part).map_err(|_| Rejection::Invalid)
}

/// Whether `digest` is HMAC-SHA256(`secret`, `body`).
pub fn meta_matches(secret: &[u8], body: &[u8], digest: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(digest).is_ok()
}

/// Checks WAHA's `X-Webhook-Hmac` (hex HMAC-SHA512 of the body with `key`).
pub fn waha_check(key: &[u8], body: &[u8], header: Option<&[u8]>) -> Result<(), Rejection> {
    let text = header
        .and_then(|v| std::str::from_utf8(v).ok())
        .ok_or(Rejection::Missing)?;
    let digest = hex::decode(text.trim()).map_err(|_| Rejection::Invalid)?;
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(key) else {
        return Err(Rejection::Invalid);
    };
    mac.update(body);
    mac.verify_slice(&digest).map_err(|_| Rejection::Invalid)
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// `sha256=<hex>` for `body` (what Meta sends; for tests and tools).
pub fn meta_header(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Hex HMAC-SHA512 of `body` (what WAHA sends; for tests and tools).
pub fn waha_header(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_test_vector() {
        // HMAC-SHA256(key="secret", msg="test"), from the contracts file.
        let expected = "0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert_eq!(
            meta_header(b"secret", b"test"),
            format!("sha256={expected}")
        );
        let digest = parse_meta_header(Some(format!("sha256={expected}").as_bytes())).unwrap();
        assert!(meta_matches(b"secret", b"test", &digest));
        assert!(!meta_matches(b"secret", b"test ", &digest));
        assert!(!meta_matches(b"other", b"test", &digest));
    }

    #[test]
    fn malformed_meta_headers() {
        assert_eq!(parse_meta_header(None), Err(Rejection::Missing));
        assert_eq!(
            parse_meta_header(Some(b"sha1=abc")),
            Err(Rejection::Missing)
        );
        assert_eq!(
            parse_meta_header(Some(b"sha256=zz")),
            Err(Rejection::Invalid)
        );
        assert_eq!(
            parse_meta_header(Some(&[0xff, 0xfe])),
            Err(Rejection::Missing)
        );
    }

    #[test]
    fn waha_sha512() {
        let h = waha_header(b"k", b"{}");
        assert_eq!(h.len(), 128);
        assert_eq!(waha_check(b"k", b"{}", Some(h.as_bytes())), Ok(()));
        assert_eq!(
            waha_check(b"k", b"{ }", Some(h.as_bytes())),
            Err(Rejection::Invalid)
        );
        assert_eq!(waha_check(b"k", b"{}", None), Err(Rejection::Missing));
        assert_eq!(
            waha_check(b"k", b"{}", Some(b"nothex")),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
