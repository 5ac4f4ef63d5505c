//! Tests of [`NonceIssuer`]: expiry, forgery, replay and the bounded count table.

use super::*;
use crate::auth::test_rng::Seeded;

const KEY: [u8; 32] = [7; 32];
const T0: u64 = 1_700_000_000;
const URI: &str = "sip:masterz.example";

struct Setup {
    issuer: NonceIssuer,
    rng: Seeded,
}

impl Setup {
    fn new() -> Self {
        Self {
            issuer: NonceIssuer::new(KEY),
            rng: Seeded(42),
        }
    }

    fn challenge(&mut self, algorithm: Algorithm, now: u64) -> Challenge {
        self.issuer
            .challenge(&mut self.rng, "masterz", algorithm, false, now)
    }
}

fn answer(c: &Challenge, password: &str, nc: u32) -> Credentials {
    Credentials::answer(c, "REGISTER", URI, "alice", password, "cn0nce", nc)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn verify(issuer: &mut NonceIssuer, creds: &Credentials, now: u64) -> Result<(), VerifyError> {
    issuer.verify(creds, "masterz", "REGISTER", URI, "secret", now)
}

#[test]
fn issued_challenges_are_well_formed_and_deterministic() {
    let mut s = Setup::new();
    let c = s
        .issuer
        .challenge(&mut s.rng, "masterz", Algorithm::Sha256, true, T0);
    assert_eq!(c.nonce.len(), 64);
    assert!(c.nonce.starts_with(&hex(&T0.to_be_bytes())));
    assert_eq!(
        c.to_string(),
        format!(
            "Digest realm=\"masterz\", nonce=\"{}\", algorithm=SHA-256, qop=\"auth\", stale=true",
            c.nonce
        )
    );
    assert_eq!(Challenge::parse(&c.to_string()), Ok(c.clone()));
    let again = Setup::new().challenge(Algorithm::Sha256, T0);
    assert_eq!(again.nonce, c.nonce);
    assert_ne!(s.challenge(Algorithm::Sha256, T0).nonce, c.nonce);
    let debug = format!("{:?}", s.issuer);
    assert!(
        debug.contains("[redacted]") && !debug.contains("7, 7"),
        "{debug}"
    );
}

#[test]
fn right_answers_pass_for_every_algorithm_and_wrong_ones_do_not() {
    for algorithm in [
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
    ] {
        let mut s = Setup::new();
        let c = s.challenge(algorithm, T0);
        assert_eq!(
            verify(&mut s.issuer, &answer(&c, "secret", 1), T0 + 1),
            Ok(())
        );
        assert_eq!(
            verify(&mut s.issuer, &answer(&c, "Secret", 2), T0 + 1),
            Err(VerifyError::WrongResponse)
        );
    }
}

#[test]
fn stale_exactly_at_the_lifetime_and_only_when_otherwise_right() {
    let mut s = Setup::new();
    let c = s.challenge(Algorithm::Md5, T0);
    let lifetime = NonceIssuer::DEFAULT_LIFETIME;
    assert_eq!(
        verify(&mut s.issuer, &answer(&c, "secret", 1), T0 + lifetime - 1),
        Ok(())
    );
    assert_eq!(
        verify(&mut s.issuer, &answer(&c, "secret", 2), T0 + lifetime),
        Err(VerifyError::Stale)
    );
    assert_eq!(
        verify(&mut s.issuer, &answer(&c, "wrong", 2), T0 + lifetime),
        Err(VerifyError::WrongResponse)
    );
    // A nonce from the future (a node whose clock is ahead) is fresh.
    let future = s.challenge(Algorithm::Md5, T0 + 100);
    assert_eq!(
        verify(&mut s.issuer, &answer(&future, "secret", 1), T0),
        Ok(())
    );
    let mut short = NonceIssuer::new(KEY).with_lifetime(5);
    let c = short.challenge(&mut Seeded(1), "masterz", Algorithm::Md5, false, T0);
    assert_eq!(verify(&mut short, &answer(&c, "secret", 1), T0 + 4), Ok(()));
    assert_eq!(
        verify(&mut short, &answer(&c, "secret", 2), T0 + 5),
        Err(VerifyError::Stale)
    );
}

#[test]
fn nonce_counts_must_increase() {
    let mut s = Setup::new();
    let c = s.challenge(Algorithm::Sha256, T0);
    let first = answer(&c, "secret", 1);
    assert_eq!(verify(&mut s.issuer, &first, T0), Ok(()));
    assert_eq!(verify(&mut s.issuer, &first, T0), Err(VerifyError::Replay));
    assert_eq!(verify(&mut s.issuer, &answer(&c, "secret", 2), T0), Ok(()));
    assert_eq!(verify(&mut s.issuer, &answer(&c, "secret", 5), T0), Ok(()));
    assert_eq!(
        verify(&mut s.issuer, &answer(&c, "secret", 3), T0),
        Err(VerifyError::Replay)
    );
    let fresh = s.challenge(Algorithm::Sha256, T0);
    assert_eq!(
        verify(&mut s.issuer, &answer(&fresh, "secret", 0), T0),
        Err(VerifyError::Replay)
    );
    // A wrong answer does not consume a count.
    assert_eq!(
        verify(&mut s.issuer, &answer(&fresh, "wrong", 1), T0),
        Err(VerifyError::WrongResponse)
    );
    assert_eq!(
        verify(&mut s.issuer, &answer(&fresh, "secret", 1), T0),
        Ok(())
    );
}

#[test]
fn forged_or_foreign_nonces_are_refused() {
    let mut s = Setup::new();
    let c = s.challenge(Algorithm::Md5, T0);
    // Flip one hex digit in the time, the random part and the tag; the client's hash is right
    // for the forged nonce, so only the MAC can catch it.
    for i in [0, 15, 20, 40, 63] {
        let mut forged = c.clone();
        let mut bytes = forged.nonce.into_bytes();
        if let Some(b) = bytes.get_mut(i) {
            *b = if *b == b'0' { b'1' } else { b'0' };
        }
        forged.nonce = String::from_utf8(bytes).unwrap_or_default();
        assert_eq!(
            verify(&mut s.issuer, &answer(&forged, "secret", 1), T0),
            Err(VerifyError::BadNonce),
            "digit {i}"
        );
    }
    let mut garbage = c.clone();
    for nonce in [
        "",
        "abc",
        "é",
        &"z".repeat(64),
        &c.nonce.to_ascii_uppercase()[..62],
    ] {
        garbage.nonce = nonce.to_owned();
        assert_eq!(
            verify(&mut s.issuer, &answer(&garbage, "secret", 1), T0),
            Err(VerifyError::BadNonce),
            "{nonce:?}"
        );
    }
    // Another key, another algorithm, another realm: not ours.
    let mut other = NonceIssuer::new([8; 32]);
    assert_eq!(
        verify(&mut other, &answer(&c, "secret", 1), T0),
        Err(VerifyError::BadNonce)
    );
    let mut downgraded = s.challenge(Algorithm::Sha256, T0);
    downgraded.algorithm = Algorithm::Md5;
    assert_eq!(
        verify(&mut s.issuer, &answer(&downgraded, "secret", 1), T0),
        Err(VerifyError::BadNonce)
    );
    let elsewhere = s
        .issuer
        .challenge(&mut s.rng, "other", Algorithm::Md5, false, T0);
    let creds = Credentials::answer(&elsewhere, "REGISTER", URI, "alice", "secret", "c", 1);
    let mut creds = creds.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        verify(&mut s.issuer, &creds, T0),
        Err(VerifyError::RealmMismatch)
    );
    creds.realm = "masterz".into();
    assert_eq!(
        verify(&mut s.issuer, &creds, T0),
        Err(VerifyError::BadNonce)
    );
    // Upper-case hex of our own nonce is the same nonce.
    let mut upper = c.clone();
    upper.nonce = c.nonce.to_ascii_uppercase();
    assert_eq!(
        verify(&mut s.issuer, &answer(&upper, "secret", 1), T0),
        Ok(())
    );
}

#[test]
fn mismatches_and_missing_qop() {
    let mut s = Setup::new();
    let c = s.challenge(Algorithm::Md5, T0);
    let creds = answer(&c, "secret", 1);
    let check = |issuer: &mut NonceIssuer, realm: &str, uri: &str| {
        issuer.verify(&creds, realm, "REGISTER", uri, "secret", T0)
    };
    assert_eq!(
        check(&mut s.issuer, "Masterz", URI),
        Err(VerifyError::RealmMismatch)
    );
    assert_eq!(
        check(&mut s.issuer, "masterz", "sip:other"),
        Err(VerifyError::UriMismatch)
    );
    let mut no_qop = c.clone();
    no_qop.qop.clear();
    assert_eq!(
        verify(&mut s.issuer, &answer(&no_qop, "secret", 1), T0),
        Err(VerifyError::QopRequired)
    );
    let mut auth_int = creds.clone();
    auth_int.qop = Some(Qop::AuthInt);
    assert_eq!(
        verify(&mut s.issuer, &auth_int, T0),
        Err(VerifyError::QopRequired)
    );
    assert_eq!(verify(&mut s.issuer, &creds, T0), Ok(()));
}

#[test]
fn eviction_keeps_the_table_bounded_and_never_allows_a_replay() {
    let mut issuer = NonceIssuer::new(KEY).with_capacity(2).with_lifetime(100);
    let mut rng = Seeded(9);
    let issue = |issuer: &NonceIssuer, rng: &mut Seeded, now| {
        issuer.challenge(rng, "masterz", Algorithm::Md5, false, now)
    };
    let a = issue(&issuer, &mut rng, T0);
    let b = issue(&issuer, &mut rng, T0 + 1);
    let c = issue(&issuer, &mut rng, T0 + 2);
    assert_eq!(
        verify(&mut issuer, &answer(&a, "secret", 1), T0 + 3),
        Ok(())
    );
    assert_eq!(
        verify(&mut issuer, &answer(&b, "secret", 1), T0 + 3),
        Ok(())
    );
    assert_eq!(issuer.counts.floor, None);
    assert_eq!(
        verify(&mut issuer, &answer(&c, "secret", 1), T0 + 3),
        Ok(())
    );
    assert_eq!(issuer.counts.map.len(), 2);
    assert_eq!(issuer.counts.floor, Some(T0));
    // A's history is gone: even a higher count is refused, as stale, so a replay of A's first
    // answer cannot pass either.
    for nc in [2, 1] {
        assert_eq!(
            verify(&mut issuer, &answer(&a, "secret", nc), T0 + 3),
            Err(VerifyError::Stale)
        );
    }
    assert_eq!(
        verify(&mut issuer, &answer(&b, "secret", 2), T0 + 3),
        Ok(())
    );
    assert_eq!(
        verify(&mut issuer, &answer(&c, "secret", 1), T0 + 3),
        Err(VerifyError::Replay)
    );
    // Expired entries are dropped first, without raising the floor.
    let d = issue(&issuer, &mut rng, T0 + 200);
    assert_eq!(
        verify(&mut issuer, &answer(&d, "secret", 1), T0 + 200),
        Ok(())
    );
    assert_eq!(issuer.counts.map.len(), 1);
    assert_eq!(issuer.counts.order.len(), 1);
    assert_eq!(issuer.counts.floor, Some(T0));
    let e = issue(&issuer, &mut rng, T0 + 201);
    let f = issue(&issuer, &mut rng, T0 + 202);
    assert_eq!(
        verify(&mut issuer, &answer(&e, "secret", 1), T0 + 202),
        Ok(())
    );
    assert_eq!(
        verify(&mut issuer, &answer(&f, "secret", 1), T0 + 202),
        Ok(())
    );
    assert_eq!(issuer.counts.map.len(), 2);
    assert_eq!(issuer.counts.floor, Some(T0 + 200));
    assert_eq!(NonceIssuer::new(KEY).with_capacity(0).counts.capacity, 1);
}
