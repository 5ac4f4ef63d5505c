//! The user-agent side: remember challenges per realm and answer every request with them
//! (RFC 3261 §22.2, §22.3).

use std::fmt;

use super::{Challenge, Credentials, DigestError, Qop, hex};
use crate::ident::RandomSource;

/// Which header carried a challenge, and so which header carries the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// `WWW-Authenticate` in a 401 from the registrar or UAS; answered in `Authorization`.
    Www,
    /// `Proxy-Authenticate` in a 407 from a proxy; answered in `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The name of the header that carries the answer.
    pub fn answer_header(self) -> &'static str {
        match self {
            Self::Www => "Authorization",
            Self::Proxy => "Proxy-Authorization",
        }
    }
}

/// One account's digest state in a UA: the last usable challenge of each realm, with its nonce
/// count and cnonce, so a 401/407 can be answered and later requests pre-authorised.
///
/// The driver feeds every 401/407 to [`handle_challenges`](Self::handle_challenges), then
/// resends the request with the headers from [`authorize`](Self::authorize); it calls
/// `authorize` for each new request too (a CANCEL or an ACK for a non-2xx must instead copy the
/// INVITE's headers, RFC 3261 §22.1).
pub struct ClientAuth {
    username: String,
    password: String,
    realms: Vec<Realm>,
}

struct Realm {
    kind: ChallengeKind,
    challenge: Challenge,
    /// Requests answered with this nonce so far; the next one carries `nc = uses + 1`.
    uses: u32,
    /// Generated on first use and kept for the nonce's life, so a `-sess` key stays valid.
    cnonce: Option<String>,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let realms: Vec<&str> = self
            .realms
            .iter()
            .map(|r| r.challenge.realm.as_str())
            .collect();
        f.debug_struct("ClientAuth")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("realms", &realms)
            .finish()
    }
}

impl ClientAuth {
    /// Bytes of randomness in a cnonce: 96 bits, printed as 24 hex digits.
    const CNONCE_BYTES: usize = 12;

    /// State for one account, with no challenge yet.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            realms: Vec::new(),
        }
    }

    /// Takes the `kind` header values of one 401/407 response, in order.
    ///
    /// Per realm, the topmost challenge we can answer wins (RFC 7616 §3.7: servers list their
    /// preferred algorithm first); the others are skipped. Fails with the first parse error when
    /// no challenge is usable, and with [`DigestError::Rejected`] when a realm we already
    /// answered challenges again without `stale=true`: the password is wrong, and retrying
    /// would loop (RFC 3261 §22.2). The rejected realm is forgotten.
    pub fn handle_challenges<'a>(
        &mut self,
        kind: ChallengeKind,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), DigestError> {
        let mut chosen: Vec<Challenge> = Vec::new();
        let mut first_error = None;
        for value in values {
            let usable = Challenge::parse(value).and_then(|c| {
                if c.qop.is_empty() || c.qop.contains(&Qop::Auth) {
                    Ok(c)
                } else {
                    Err(DigestError::UnsupportedQop(Qop::AuthInt.as_str().into()))
                }
            });
            match usable {
                Ok(c) if chosen.iter().all(|k| k.realm != c.realm) => chosen.push(c),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if chosen.is_empty() {
            return Err(first_error.unwrap_or(DigestError::NotDigest));
        }
        let mut rejected = None;
        for challenge in chosen {
            let old = self
                .realms
                .iter()
                .position(|r| r.kind == kind && r.challenge.realm == challenge.realm);
            if let Some(i) = old {
                let was_answered = self.realms.get(i).is_some_and(|r| r.uses > 0);
                self.realms.remove(i);
                if was_answered && !challenge.stale {
                    rejected.get_or_insert(DigestError::Rejected(challenge.realm));
                    continue;
                }
            }
            self.realms.push(Realm {
                kind,
                challenge,
                uses: 0,
                cnonce: None,
            });
        }
        rejected.map_or(Ok(()), Err)
    }

    /// Credentials for a request `method uri`, one per remembered realm, each with the header
    /// it goes in. Empty before the first challenge.
    ///
    /// Each call counts one use of each nonce: call it once per request sent.
    pub fn authorize(
        &mut self,
        rng: &mut dyn RandomSource,
        method: &str,
        uri: &str,
    ) -> Vec<(ChallengeKind, Credentials)> {
        let mut out = Vec::with_capacity(self.realms.len());
        for realm in &mut self.realms {
            // Four billion requests on one nonce: stop answering it, the server will re-challenge.
            let Some(nc) = realm.uses.checked_add(1) else {
                continue;
            };
            let cnonce = realm.cnonce.get_or_insert_with(|| {
                let mut bytes = [0u8; Self::CNONCE_BYTES];
                rng.fill(&mut bytes);
                hex(&bytes)
            });
            let answer = Credentials::answer(
                &realm.challenge,
                method,
                uri,
                &self.username,
                &self.password,
                cnonce,
                nc,
            );
            // Only usable challenges are stored, so this cannot fail; skip rather than panic.
            if let Ok(creds) = answer {
                realm.uses = nc;
                out.push((realm.kind, creds));
            }
        }
        out
    }

    /// Forgets every challenge, e.g. when the account's password changes.
    pub fn clear(&mut self) {
        self.realms.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_rng::Seeded;

    const WWW: &str = "Digest realm=\"masterz\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"";

    #[test]
    fn answers_and_counts_per_nonce() {
        let mut rng = Seeded(3);
        let mut ua = ClientAuth::new("alice", "secret");
        assert!(ua.authorize(&mut rng, "REGISTER", "sip:masterz").is_empty());
        assert_eq!(ua.handle_challenges(ChallengeKind::Www, [WWW]), Ok(()));
        let first = ua.authorize(&mut rng, "REGISTER", "sip:masterz");
        let [(kind, c1)] = first.as_slice() else {
            panic!("one answer expected: {first:?}");
        };
        assert_eq!(*kind, ChallengeKind::Www);
        assert_eq!(kind.answer_header(), "Authorization");
        assert_eq!((c1.nc, c1.qop), (Some(1), Some(Qop::Auth)));
        assert_eq!(c1.cnonce.as_ref().map(String::len), Some(24));
        assert_eq!(
            c1.expected_response("REGISTER", "secret"),
            Some(c1.response.clone())
        );
        let second = ua.authorize(&mut rng, "INVITE", "sip:bob@masterz");
        let [(_, c2)] = second.as_slice() else {
            panic!("one answer expected: {second:?}");
        };
        assert_eq!(c2.nc, Some(2));
        assert_eq!(c2.cnonce, c1.cnonce);
        assert!(format!("{ua:?}").contains("[redacted]"));
        assert!(!format!("{ua:?}").contains("secret"));
    }

    #[test]
    fn a_non_stale_rechallenge_after_an_answer_is_a_rejection() {
        let mut rng = Seeded(4);
        let mut ua = ClientAuth::new("alice", "wrong");
        assert_eq!(ua.handle_challenges(ChallengeKind::Proxy, [WWW]), Ok(()));
        assert_eq!(ua.authorize(&mut rng, "INVITE", "sip:b@x").len(), 1);
        let stale = "Digest realm=\"masterz\", nonce=\"n2\", qop=\"auth\", stale=TRUE";
        assert_eq!(ua.handle_challenges(ChallengeKind::Proxy, [stale]), Ok(()));
        let again = ua.authorize(&mut rng, "INVITE", "sip:b@x");
        assert_eq!(
            again.first().map(|(_, c)| (c.nonce.as_str(), c.nc)),
            Some(("n2", Some(1)))
        );
        assert_eq!(
            ua.handle_challenges(ChallengeKind::Proxy, [WWW]),
            Err(DigestError::Rejected("masterz".into()))
        );
        assert!(ua.authorize(&mut rng, "INVITE", "sip:b@x").is_empty());
        ua.clear();
    }

    #[test]
    fn topmost_usable_challenge_per_realm_wins() {
        let mut rng = Seeded(5);
        let mut ua = ClientAuth::new("alice", "pw");
        let values = [
            "Basic realm=\"x\"",
            "Digest realm=\"r\", nonce=\"a\", algorithm=SHA-512-256, qop=\"auth\"",
            "Digest realm=\"r\", nonce=\"b\", qop=\"auth-int\"",
            "Digest realm=\"r\", nonce=\"c\", algorithm=SHA-256, qop=\"auth\"",
            "Digest realm=\"r\", nonce=\"d\", algorithm=MD5, qop=\"auth\"",
            "Digest realm=\"other\", nonce=\"e\"",
        ];
        assert_eq!(ua.handle_challenges(ChallengeKind::Www, values), Ok(()));
        let answers = ua.authorize(&mut rng, "REGISTER", "sip:r");
        let nonces: Vec<(&str, Option<u32>)> = answers
            .iter()
            .map(|(_, c)| (c.nonce.as_str(), c.nc))
            .collect();
        assert_eq!(nonces, [("c", Some(1)), ("e", None)]);
        assert_eq!(
            ua.handle_challenges(ChallengeKind::Www, ["Basic realm=\"x\"", "Digest realm=y"]),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            ua.handle_challenges(ChallengeKind::Www, []),
            Err(DigestError::NotDigest)
        );
    }
}
