//! The server side: stateless nonces and answer checks with replay protection (RFC 7616 §3.3,
//! §5.5; RFC 3261 §22.4).
//!
//! A nonce is 64 hex digits: the issue time (8 bytes, seconds since the UNIX epoch), 8 random
//! bytes, and the first 16 bytes of HMAC-SHA256 under the driver's key over those, the realm and
//! the algorithm. The server can thus check a nonce it issued, and its age, without storing it;
//! a nonce cannot be moved to another realm or algorithm. Only the nonce-count of nonces in use
//! is remembered, in a bounded table.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Algorithm, Challenge, Credentials, Qop, ct_eq, hex, unhex};
use crate::ident::RandomSource;

/// Why an answer was refused. Every case is answered with a fresh challenge (401/407); only
/// [`Stale`](Self::Stale) sets `stale=true` in it, so the client retries without asking the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The answer was right but its nonce has expired (or its count history was evicted).
    #[error("nonce expired")]
    Stale,
    /// The nonce is not one we issued for this realm and algorithm: garbage, forged, or from
    /// another key.
    #[error("nonce not issued by us")]
    BadNonce,
    /// The response does not match: wrong password (or username).
    #[error("wrong digest response")]
    WrongResponse,
    /// The nonce-count is not above the last one accepted for this nonce: a replay.
    #[error("nonce-count replayed")]
    Replay,
    /// The credentials are for another realm than the one we challenge for.
    #[error("credentials for another realm")]
    RealmMismatch,
    /// The digest `uri` is not the Request-URI, so the answer may belong to another request.
    #[error("digest uri does not match the Request-URI")]
    UriMismatch,
    /// No `qop=auth` (with `nc` and `cnonce`): without a nonce-count, replays go undetected.
    #[error("qop=auth required")]
    QopRequired,
}

/// Issues and checks nonces for a server, keyed by a 32-byte secret from the driver.
///
/// Memory: besides the key, one entry per nonce in use, at most `capacity` (default 65 536)
/// entries of about 60 bytes (map slot and eviction queue), so about 4 MiB when full. When full,
/// the oldest entry is evicted and every nonce issued no later than it that is not in the table
/// is treated as stale: eviction costs a client one extra round trip, never a replay.
pub struct NonceIssuer {
    key: [u8; 32],
    lifetime: u64,
    counts: Counts,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("key", &"[redacted]")
            .field("lifetime", &self.lifetime)
            .field("nonces_in_use", &self.counts.map.len())
            .finish()
    }
}

/// The parts of a nonce we issued, once its MAC is checked.
struct Opened {
    issued: u64,
    id: u128,
}

impl NonceIssuer {
    /// Default nonce lifetime in seconds: long enough for a user to answer, short enough that a
    /// stolen nonce is soon worthless.
    pub const DEFAULT_LIFETIME: u64 = 300;
    /// Default number of nonces whose count is remembered.
    pub const DEFAULT_CAPACITY: usize = 65_536;
    /// Bytes of randomness per nonce, so two nonces issued in one second differ.
    const RANDOM_BYTES: usize = 8;
    /// Bytes of the HMAC kept: 128 bits is beyond guessing within a nonce's life.
    const TAG_BYTES: usize = 16;

    /// An issuer with the default lifetime and capacity.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            lifetime: Self::DEFAULT_LIFETIME,
            counts: Counts::new(Self::DEFAULT_CAPACITY),
        }
    }

    /// Sets how many seconds a nonce stays fresh.
    pub fn with_lifetime(mut self, seconds: u64) -> Self {
        self.lifetime = seconds;
        self
    }

    /// Sets how many nonces' counts are remembered (at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.counts = Counts::new(capacity);
        self
    }

    /// A new nonce for `realm` and `algorithm`, issued at `now` (seconds since the UNIX epoch).
    pub fn nonce(
        &self,
        rng: &mut dyn RandomSource,
        realm: &str,
        algorithm: Algorithm,
        now: u64,
    ) -> String {
        let mut body = [0u8; 8 + Self::RANDOM_BYTES];
        let (time, random) = body.split_at_mut(8);
        time.copy_from_slice(&now.to_be_bytes());
        rng.fill(random);
        let tag = self.mac(&body, realm, algorithm).finalize().into_bytes();
        let mut nonce = hex(&body);
        nonce.push_str(&hex(tag.get(..Self::TAG_BYTES).unwrap_or_default()));
        nonce
    }

    /// A challenge with a new nonce and `qop="auth"`; `stale` after [`VerifyError::Stale`].
    pub fn challenge(
        &self,
        rng: &mut dyn RandomSource,
        realm: &str,
        algorithm: Algorithm,
        stale: bool,
        now: u64,
    ) -> Challenge {
        Challenge {
            realm: realm.to_owned(),
            nonce: self.nonce(rng, realm, algorithm, now),
            opaque: None,
            algorithm,
            qop: vec![Qop::Auth],
            stale,
            domain: None,
        }
    }

    /// Checks an answer to one of our challenges for `realm`, on a request `method uri` (the
    /// Request-URI exactly as received), against the user's `password`, at `now`.
    ///
    /// On success, the nonce-count is recorded, so the same answer is refused next time.
    pub fn verify(
        &mut self,
        creds: &Credentials,
        realm: &str,
        method: &str,
        uri: &str,
        password: &str,
        now: u64,
    ) -> Result<(), VerifyError> {
        if creds.realm != realm {
            return Err(VerifyError::RealmMismatch);
        }
        if creds.uri != uri {
            return Err(VerifyError::UriMismatch);
        }
        let (Some(Qop::Auth), Some(nc), Some(_)) = (creds.qop, creds.nc, &creds.cnonce) else {
            return Err(VerifyError::QopRequired);
        };
        let nonce = self
            .open(&creds.nonce, realm, creds.algorithm)
            .ok_or(VerifyError::BadNonce)?;
        let expected = creds
            .expected_response(method, password)
            .ok_or(VerifyError::QopRequired)?;
        if !ct_eq(expected.as_bytes(), creds.response.as_bytes()) {
            return Err(VerifyError::WrongResponse);
        }
        // A nonce from the future (clock stepped back, or a peer node ahead) counts as new.
        if now.saturating_sub(nonce.issued) >= self.lifetime {
            return Err(VerifyError::Stale);
        }
        self.counts
            .record(nonce.id, nonce.issued, nc, now, self.lifetime)
    }

    fn mac(&self, body: &[u8], realm: &str, algorithm: Algorithm) -> Hmac<Sha256> {
        // Invariant: HMAC takes keys of any length, so a 32-byte key cannot be refused.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key");
        mac.update(b"masterz digest nonce v1\0");
        mac.update(body);
        mac.update(algorithm.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(realm.as_bytes());
        mac
    }

    /// Decodes a nonce and checks its MAC; `None` if we did not issue it for this realm.
    fn open(&self, nonce: &str, realm: &str, algorithm: Algorithm) -> Option<Opened> {
        let raw: [u8; 8 + Self::RANDOM_BYTES + Self::TAG_BYTES] = unhex(nonce)?;
        let (body, tag) = raw.split_at(8 + Self::RANDOM_BYTES);
        self.mac(body, realm, algorithm)
            .verify_truncated_left(tag)
            .ok()?;
        let id = u128::from_be_bytes(body.try_into().ok()?);
        Some(Opened {
            issued: u64::try_from(id >> 64).ok()?,
            id,
        })
    }
}

/// The highest nonce-count accepted per nonce, bounded (see [`NonceIssuer`]).
struct Counts {
    capacity: usize,
    map: HashMap<u128, Seen>,
    /// Nonce ids in first-use order, for eviction.
    order: VecDeque<u128>,
    /// Latest issue time of an evicted, unexpired nonce: unknown nonces up to it are stale.
    floor: Option<u64>,
}

struct Seen {
    nc: u32,
    issued: u64,
}

impl Counts {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
            floor: None,
        }
    }

    fn record(
        &mut self,
        id: u128,
        issued: u64,
        nc: u32,
        now: u64,
        lifetime: u64,
    ) -> Result<(), VerifyError> {
        if let Some(seen) = self.map.get_mut(&id) {
            if nc <= seen.nc {
                return Err(VerifyError::Replay);
            }
            seen.nc = nc;
            return Ok(());
        }
        if nc == 0 {
            return Err(VerifyError::Replay);
        }
        if self.floor.is_some_and(|floor| issued <= floor) {
            return Err(VerifyError::Stale);
        }
        let expired = |seen: &Seen| now.saturating_sub(seen.issued) >= lifetime;
        while let Some(&oldest) = self.order.front() {
            let Some(seen) = self.map.get(&oldest) else {
                self.order.pop_front();
                continue;
            };
            let full = self.map.len() >= self.capacity;
            if !full && !expired(seen) {
                break;
            }
            if !expired(seen) {
                self.floor = Some(self.floor.map_or(seen.issued, |f| f.max(seen.issued)));
            }
            self.map.remove(&oldest);
            self.order.pop_front();
        }
        self.map.insert(id, Seen { nc, issued });
        self.order.push_back(id);
        Ok(())
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
