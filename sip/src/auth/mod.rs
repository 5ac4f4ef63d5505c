//! Digest authentication (RFC 3261 §22, RFC 7616, RFC 8760) on header *values*.
//!
//! This module knows nothing of the message parser: it reads and prints the value of a
//! `WWW-Authenticate` / `Proxy-Authenticate` header ([`Challenge`]) and of an `Authorization` /
//! `Proxy-Authorization` header ([`Credentials`]).
//!
//! - A user agent answers challenges with [`Credentials::answer`], or keeps them across requests
//!   with [`ClientAuth`] (nonce-count per nonce, cnonce from the driver's [`RandomSource`]).
//! - A server issues stateless nonces and checks answers with [`NonceIssuer`]; time is an input
//!   (seconds since the UNIX epoch), the key and the randomness come from the driver.
//!
//! Supported: MD5, MD5-sess, SHA-256, SHA-256-sess; `qop=auth` and RFC 2069 answers (no qop).
//! Not supported: `qop=auth-int` (it needs the body hash, and no SIP peer we target uses it),
//! SHA-512-256, `userhash` and the `username*` extended notation of RFC 7616.
//!
//! [`RandomSource`]: crate::ident::RandomSource

mod client;
mod header;
mod params;
mod server;
#[cfg(test)]
mod test_rng;

use std::fmt;
use std::str::FromStr;

use md5::Md5;
use sha2::{Digest, Sha256};

pub use client::{ChallengeKind, ClientAuth};
pub use header::{Challenge, Credentials};
pub use server::{NonceIssuer, VerifyError};

/// Why a digest header value could not be read or answered; each variant names the culprit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// The scheme is not `Digest` (e.g. `Basic`), so this module cannot use it.
    #[error("not a Digest header")]
    NotDigest,
    /// The parameter list is malformed at byte `pos` of the value.
    #[error("malformed digest parameters at byte {pos}: expected {expected}")]
    BadSyntax {
        /// Byte offset in the header value.
        pos: usize,
        /// What the parser was looking for there.
        expected: &'static str,
    },
    /// The quoted string of this parameter is unterminated or holds a forbidden character.
    #[error("bad quoted string in digest parameter {0:?}")]
    BadQuotedString(String),
    /// This parameter appears twice.
    #[error("duplicate digest parameter {0:?}")]
    DuplicateParam(String),
    /// This required parameter is absent.
    #[error("missing digest parameter {0:?}")]
    MissingParam(&'static str),
    /// This parameter's value does not have the required form (e.g. `nc` not 8 hex digits).
    #[error("bad value for digest parameter {0:?}")]
    BadParam(&'static str),
    /// The algorithm is not one of MD5, MD5-sess, SHA-256, SHA-256-sess.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// No quality of protection we can use (we implement `auth` only).
    #[error("unsupported digest qop {0:?}")]
    UnsupportedQop(String),
    /// The server refused our answer to a challenge that was not stale: the password is wrong.
    #[error("credentials for realm {0:?} were rejected")]
    Rejected(String),
}

/// The hash and session variant named by the `algorithm` parameter (RFC 7616 §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// MD5, the default when the parameter is absent; every SIP peer supports it.
    #[default]
    Md5,
    /// MD5 with a session key that mixes in the nonce and cnonce.
    Md5Sess,
    /// SHA-256 (RFC 8760 brings it to SIP).
    Sha256,
    /// SHA-256 with a session key.
    Sha256Sess,
}

impl Algorithm {
    /// The token as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether HA1 is a session key over the nonce and cnonce (the `-sess` variants).
    pub fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// Length in hex digits of a hash (and so of a `response`) under this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 | Self::Md5Sess => 32,
            Self::Sha256 | Self::Sha256Sess => 64,
        }
    }

    /// `H(parts joined by ':')` in lowercase hex, the one primitive of RFC 7616 §3.4.
    fn hash(self, parts: &[&str]) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hash_hex::<Md5>(parts),
            Self::Sha256 | Self::Sha256Sess => hash_hex::<Sha256>(parts),
        }
    }
}

impl FromStr for Algorithm {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, DigestError> {
        [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(s.to_owned()))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection (RFC 7616 §3.3): what the response hash covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Qop {
    /// Method and URI, with nonce-count and cnonce: the one we answer and ask for.
    Auth,
    /// Also the body; parsed so a challenge offering it can be read, never answered.
    AuthInt,
}

impl Qop {
    /// The token as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

impl FromStr for Qop {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, DigestError> {
        if s.eq_ignore_ascii_case("auth") {
            Ok(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Ok(Self::AuthInt)
        } else {
            Err(DigestError::UnsupportedQop(s.to_owned()))
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `H(username:realm:password)`: what a server may store instead of the password.
///
/// For the `-sess` algorithms this is the base key; [`session_ha1`] mixes in the nonces.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&[username, realm, password])
}

/// The HA1 that goes into the response: `H(ha1:nonce:cnonce)` for `-sess`, else `ha1` itself.
pub fn session_ha1(algorithm: Algorithm, ha1: &str, nonce: &str, cnonce: &str) -> String {
    if algorithm.is_session() {
        algorithm.hash(&[ha1, nonce, cnonce])
    } else {
        ha1.to_owned()
    }
}

/// The `response` value (RFC 7616 §3.4.1, RFC 3261 §22.4), lowercase hex.
///
/// `ha1` is the result of [`session_ha1`]. `auth` is `Some((nc, cnonce))` for `qop=auth` and
/// `None` for an RFC 2069 answer to a challenge without qop.
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    auth: Option<(u32, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hash(&[method, uri]);
    match auth {
        Some((nc, cnonce)) => {
            let nc = format!("{nc:08x}");
            algorithm.hash(&[ha1, nonce, &nc, cnonce, Qop::Auth.as_str(), &ha2])
        }
        None => algorithm.hash(&[ha1, nonce, &ha2]),
    }
}

fn hash_hex<D: Digest>(parts: &[&str]) -> String {
    let mut d = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(part.as_bytes());
    }
    hex(&d.finalize())
}

/// Lowercase hex, as RFC 7616 requires for every hash and as our nonces use.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Decodes hex of exactly `N` bytes (either case); `None` on anything else.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *byte = u8::try_from(hi << 4 | lo).ok()?;
    }
    Some(out)
}

/// Equality whose running time depends only on the lengths, so that a peer timing our answers
/// learns nothing about how much of a guessed `response` was right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE_7616: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE_7616: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn rfc7616(algorithm: Algorithm) -> String {
        let realm = "http-auth@example.org";
        let ha1 = ha1(algorithm, "Mufasa", realm, "Circle of Life");
        let ha1 = session_ha1(algorithm, &ha1, NONCE_7616, CNONCE_7616);
        let auth = Some((1, CNONCE_7616));
        response(algorithm, &ha1, NONCE_7616, auth, "GET", "/dir/index.html")
    }

    #[test]
    fn rfc7616_section_3_9_1_vectors() {
        assert_eq!(rfc7616(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            rfc7616(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_section_3_5_vector() {
        let nonce = "dcd98b7102dd2f0e8b11d0f600bfb0c093";
        let h = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = response(
            Algorithm::Md5,
            &h,
            nonce,
            Some((1, "0a4f113b")),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn rfc2069_and_session_variants_follow_the_formulas() {
        let a = Algorithm::Md5;
        let h = ha1(a, "u", "r", "p");
        assert_eq!(h, a.hash(&["u", "r", "p"]));
        let ha2 = a.hash(&["REGISTER", "sip:r"]);
        assert_eq!(
            response(a, &h, "n", None, "REGISTER", "sip:r"),
            a.hash(&[&h, "n", &ha2])
        );
        let s = Algorithm::Sha256Sess;
        let base = ha1(s, "u", "r", "p");
        assert_eq!(base.len(), 64);
        assert_eq!(session_ha1(s, &base, "n", "c"), s.hash(&[&base, "n", "c"]));
        assert_eq!(session_ha1(Algorithm::Sha256, &base, "n", "c"), base);
    }

    #[test]
    fn algorithm_and_qop_tokens() {
        for (s, a) in [
            ("md5", Algorithm::Md5),
            ("MD5-SESS", Algorithm::Md5Sess),
            ("sha-256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
        ] {
            assert_eq!(s.parse::<Algorithm>(), Ok(a));
            assert_eq!(a.to_string().parse::<Algorithm>(), Ok(a));
        }
        assert_eq!(
            "SHA-512-256".parse::<Algorithm>(),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!("AUTH".parse::<Qop>(), Ok(Qop::Auth));
        assert_eq!("auth-int".parse::<Qop>(), Ok(Qop::AuthInt));
        assert_eq!(
            "auth-conf".parse::<Qop>(),
            Err(DigestError::UnsupportedQop("auth-conf".into()))
        );
    }

    #[test]
    fn hex_and_constant_time_helpers() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex::<3>("00ABff"), Some([0x00, 0xab, 0xff]));
        assert_eq!(unhex::<3>("00abf"), None);
        assert_eq!(unhex::<2>("zz00"), None);
        assert_eq!(unhex::<1>("é"), None);
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
