//! Meta's `signed_request` (the data-deletion callback's one form field), verified as the
//! contracts file says: `<b64url(signature)>.<b64url(payload)>`, split on the first `.`, both
//! parts base64url without padding; the signature is HMAC-SHA256 with the app secret over the
//! payload segment *as received* (still encoded), compared in constant time; the decoded payload
//! is JSON whose `algorithm` must be `HMAC-SHA256`.
//!
//! Pure: no clock, no I/O. The caller tries each secret that may have signed it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Why a `signed_request` was refused. Each names what was wrong, for the 400 answer and the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    /// No `.` between signature and payload, or an empty part.
    #[error("signed_request is not <signature>.<payload>")]
    Shape,
    /// A part is not base64url.
    #[error("signed_request {0} is not base64url")]
    Encoding(&'static str),
    /// The signature is not HMAC-SHA256 of the payload with any secret we hold.
    #[error("signed_request signature does not verify")]
    Signature,
    /// The payload is not the JSON object Meta sends.
    #[error("signed_request payload is not valid JSON: {0}")]
    Payload(String),
    /// `algorithm` is not `HMAC-SHA256`.
    #[error("signed_request algorithm {0:?} is not HMAC-SHA256")]
    Algorithm(String),
    /// No `user_id` in the payload.
    #[error("signed_request payload has no user_id")]
    UserId,
}

/// The verified payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionPayload {
    /// The app-scoped id of the person who asked for deletion.
    pub user_id: String,
    /// When Meta issued the request (Unix seconds), if said.
    pub issued_at: Option<i64>,
    /// When it expires (Unix seconds), if said.
    pub expires: Option<i64>,
}

#[derive(Deserialize)]
struct Raw {
    algorithm: Option<String>,
    #[serde(default, deserialize_with = "id_text")]
    user_id: Option<String>,
    issued_at: Option<i64>,
    expires: Option<i64>,
}

/// An id that Meta documents as a string but that some tools send as a number.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(Option::<Id>::deserialize(d)?.map(|id| match id {
        Id::Text(t) => t,
        Id::Number(n) => n.to_string(),
    }))
}

/// The two parts of a `signed_request`, split and the signature decoded, not yet verified.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    signature: Vec<u8>,
    payload: &'a str,
}

/// Base64url without padding; padded input (`=`) is accepted too, as Meta's SDKs strip it but a
/// tool may not.
fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, SignedRequestError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| SignedRequestError::Encoding(what))
}

impl<'a> SignedRequest<'a> {
    /// Splits `value` on its first `.` and decodes the signature.
    pub fn parse(value: &'a str) -> Result<Self, SignedRequestError> {
        let (sig, payload) = value.split_once('.').ok_or(SignedRequestError::Shape)?;
        if sig.is_empty() || payload.is_empty() {
            return Err(SignedRequestError::Shape);
        }
        let signature = b64(sig, "signature")?;
        // The payload is checked for base64url now, so a garbled one is told apart from a wrong
        // signature; it is decoded again only after the signature verified.
        b64(payload, "payload")?;
        Ok(Self { signature, payload })
    }

    /// Whether HMAC-SHA256(`secret`, payload segment) is the signature (constant time).
    pub fn signed_by(&self, secret: &[u8]) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(self.payload.as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }

    /// The payload, once [`SignedRequest::signed_by`] said yes: JSON, `algorithm` HMAC-SHA256,
    /// a `user_id`.
    pub fn payload(&self) -> Result<DeletionPayload, SignedRequestError> {
        let bytes = b64(self.payload, "payload")?;
        let raw: Raw = serde_json::from_slice(&bytes)
            .map_err(|e| SignedRequestError::Payload(e.to_string()))?;
        match raw.algorithm.as_deref() {
            Some(a) if a.eq_ignore_ascii_case("HMAC-SHA256") => {}
            other => {
                return Err(SignedRequestError::Algorithm(
                    other.unwrap_or_default().to_owned(),
                ));
            }
        }
        let user_id = raw
            .user_id
            .filter(|u| !u.trim().is_empty())
            .ok_or(SignedRequestError::UserId)?;
        Ok(DeletionPayload {
            user_id,
            issued_at: raw.issued_at,
            expires: raw.expires,
        })
    }
}

/// Verifies `value` against `secrets` (tried in order); returns the index of the secret that
/// signed it and the payload.
pub fn verify<'s>(
    value: &str,
    secrets: impl IntoIterator<Item = &'s [u8]>,
) -> Result<(usize, DeletionPayload), SignedRequestError> {
    let req = SignedRequest::parse(value)?;
    let index = secrets
        .into_iter()
        .position(|s| req.signed_by(s))
        .ok_or(SignedRequestError::Signature)?;
    Ok((index, req.payload()?))
}

/// Signs `payload` (JSON text) as Meta does: `<b64url(HMAC-SHA256(secret, b64url(payload)))>.
/// <b64url(payload)>`. For tests and tools.
pub fn sign(secret: &[u8], payload: &str) -> String {
    let encoded = URL_SAFE_NO_PAD.encode(payload.as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(encoded.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{sig}.{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of the `facebook-signed-request` crate's data-deletion fixture (contracts file).
    const CRATE_FIXTURE: &str = r#"{"user_id":"218471","algorithm":"HMAC-SHA256","issued_at":1291836800,"expires":1291840400}"#;

    #[test]
    fn the_crate_fixture_verifies_and_reads() {
        let signed = sign(b"app-secret", CRATE_FIXTURE);
        assert!(!signed.contains('='), "no padding: {signed}");
        let (i, p) = verify(&signed, [b"other".as_slice(), b"app-secret".as_slice()])
            .expect("the second secret signed it");
        assert_eq!(i, 1);
        assert_eq!(
            p,
            DeletionPayload {
                user_id: "218471".into(),
                issued_at: Some(1_291_836_800),
                expires: Some(1_291_840_400),
            }
        );
    }

    #[test]
    fn a_hand_made_signature_matches_the_contract() {
        // Built step by step from the contract, independently of `sign`.
        let payload = URL_SAFE_NO_PAD.encode(CRATE_FIXTURE);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").expect("any key length");
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let value = format!("{sig}.{payload}");
        assert_eq!(value, sign(b"k", CRATE_FIXTURE));
        assert_eq!(
            verify(&value, [b"k".as_slice()])
                .expect("the contract's signature")
                .1
                .user_id,
            "218471"
        );
        // The HMAC is over the encoded segment, not the decoded JSON.
        let mut wrong = Hmac::<Sha256>::new_from_slice(b"k").expect("any key length");
        wrong.update(CRATE_FIXTURE.as_bytes());
        let wrong_sig = URL_SAFE_NO_PAD.encode(wrong.finalize().into_bytes());
        assert_eq!(
            verify(&format!("{wrong_sig}.{payload}"), [b"k".as_slice()]),
            Err(SignedRequestError::Signature)
        );
    }

    #[test]
    fn one_changed_byte_anywhere_is_refused() {
        let signed = sign(b"k", CRATE_FIXTURE);
        let dot = signed.find('.').expect("signature.payload");
        for at in [0, dot - 2, dot + 1, dot + 10, signed.len() - 2] {
            let mut bytes = signed.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).expect("still ASCII");
            let r = verify(&tampered, [b"k".as_slice()]);
            assert!(
                matches!(
                    r,
                    Err(SignedRequestError::Signature | SignedRequestError::Encoding(_))
                ),
                "byte {at}: {r:?}"
            );
        }
        assert_eq!(
            verify(&signed, [b"wrong".as_slice()]),
            Err(SignedRequestError::Signature)
        );
    }

    #[test]
    fn other_algorithms_and_missing_fields_are_refused() {
        let md5 = sign(
            b"k",
            r#"{"user_id":"1","algorithm":"HMAC-MD5","issued_at":1}"#,
        );
        assert_eq!(
            verify(&md5, [b"k".as_slice()]),
            Err(SignedRequestError::Algorithm("HMAC-MD5".into()))
        );
        let none = sign(b"k", r#"{"user_id":"1"}"#);
        assert_eq!(
            verify(&none, [b"k".as_slice()]),
            Err(SignedRequestError::Algorithm(String::new()))
        );
        let no_user = sign(b"k", r#"{"algorithm":"HMAC-SHA256"}"#);
        assert_eq!(
            verify(&no_user, [b"k".as_slice()]),
            Err(SignedRequestError::UserId)
        );
        let numeric = sign(b"k", r#"{"algorithm":"HMAC-SHA256","user_id":218471}"#);
        assert_eq!(
            verify(&numeric, [b"k".as_slice()])
                .expect("a numeric user_id")
                .1
                .user_id,
            "218471"
        );
        let not_json = sign(b"k", "not json");
        assert!(matches!(
            verify(&not_json, [b"k".as_slice()]),
            Err(SignedRequestError::Payload(_))
        ));
    }

    #[test]
    fn malformed_shapes_are_refused_before_any_secret_is_tried() {
        assert_eq!(
            verify("", [b"k".as_slice()]),
            Err(SignedRequestError::Shape)
        );
        assert_eq!(
            verify("abc", [b"k".as_slice()]),
            Err(SignedRequestError::Shape)
        );
        assert_eq!(
            verify(".abc", [b"k".as_slice()]),
            Err(SignedRequestError::Shape)
        );
        assert_eq!(
            verify("abc.", [b"k".as_slice()]),
            Err(SignedRequestError::Shape)
        );
        assert_eq!(
            verify("a*b.abc", [b"k".as_slice()]),
            Err(SignedRequestError::Encoding("signature"))
        );
        assert_eq!(
            verify("abc.a*b", [b"k".as_slice()]),
            Err(SignedRequestError::Encoding("payload"))
        );
        // Split on the first dot: a dot in the payload part makes it invalid base64url.
        let signed = sign(b"k", CRATE_FIXTURE);
        assert!(verify(&format!("{signed}.x"), [b"k".as_slice()]).is_err());
        // No secret at all: nothing can verify.
        assert_eq!(
            verify(&signed, std::iter::empty::<&[u8]>()),
            Err(SignedRequestError::Signature)
        );
    }
}
