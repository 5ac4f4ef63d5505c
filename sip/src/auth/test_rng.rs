//! A deterministic [`RandomSource`] for the tests of this module.

use crate::ident::RandomSource;

/// xorshift64*, as in the `ident` tests: the same seed gives the same bytes.
pub(super) struct Seeded(pub(super) u64);

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
