//! Identifiers an element generates (RFC 3261 §8.1.1.4, §8.1.1.7, §19.3): Call-IDs, tags and
//! branches, made from randomness the caller passes in.

use std::fmt;

/// A source of randomness owned by the driver (seeded in tests).
pub trait RandomSource {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// `n` random characters from a 32-symbol alphabet (5 bits each): token-safe in every header.
fn random_token(rng: &mut dyn RandomSource, n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect()
}

macro_rules! ident {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The identifier as it goes on the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ident!(
    /// A Call-ID: globally unique for all time (§8.1.1.4).
    CallId
);
ident!(
    /// A From or To tag: at least 32 bits of randomness (§19.3).
    Tag
);
ident!(
    /// A Via branch: unique per transaction, starting with the magic cookie (§8.1.1.7).
    Branch
);

impl CallId {
    /// A new Call-ID: 128 random bits, `@host` appended as §8.1.1.4 recommends.
    pub fn generate(rng: &mut dyn RandomSource, host: &str) -> Self {
        Self(format!("{}@{host}", random_token(rng, 26)))
    }
}

impl Tag {
    /// A new tag with 80 random bits.
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        Self(random_token(rng, 16))
    }
}

impl Branch {
    /// A new branch with 100 random bits after the magic cookie.
    pub fn generate(rng: &mut dyn RandomSource) -> Self {
        Self(format!("{BRANCH_COOKIE}{}", random_token(rng, 20)))
    }

    /// Whether a received branch is RFC 3261-compliant (starts with the magic cookie), so that
    /// transaction matching may use it (§17.2.3); otherwise the RFC 2543 rules apply.
    pub fn is_rfc3261(branch: &str) -> bool {
        branch.starts_with(BRANCH_COOKIE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator for tests (xorshift64*).
    struct Seeded(u64);

    impl RandomSource for Seeded {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
            }
        }
    }

    #[test]
    fn identifiers_are_deterministic_for_a_seed_and_well_formed() {
        let a = Branch::generate(&mut Seeded(7));
        let b = Branch::generate(&mut Seeded(7));
        assert_eq!(a, b);
        assert!(Branch::is_rfc3261(a.as_str()));
        assert_eq!(a.as_str().len(), BRANCH_COOKIE.len() + 20);
        let mut rng = Seeded(1);
        let t1 = Tag::generate(&mut rng);
        let t2 = Tag::generate(&mut rng);
        assert_ne!(t1, t2);
        let id = CallId::generate(&mut rng, "pbx.example.com");
        assert!(id.as_str().ends_with("@pbx.example.com"));
        assert!(
            id.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'@' || c == b'.')
        );
        assert!(!Branch::is_rfc3261("1234"));
    }
}
