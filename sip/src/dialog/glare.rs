//! Re-INVITE glare (§14.1): after a 491, when to try again.
//!
//! Both UAs sent a re-INVITE at once and both got 491 Request Pending. To break the tie, the
//! owner of the Call-ID (the UA that generated it: the original caller) waits longer than the
//! other, each by a random amount in units of 10 ms:
//!
//! | we…                    | wait (§14.1)        |
//! |------------------------|---------------------|
//! | generated the Call-ID  | 2.1 s to 4 s        |
//! | did not                | 0 s to 2 s          |
//!
//! The ranges do not overlap, so the non-owner's retry arrives first and is answered before the
//! owner's, unless the network takes longer than the gap.

use std::time::Duration;

use super::Dialog;
use crate::ident::RandomSource;

/// The 10 ms unit of §14.1.
const TICK: Duration = Duration::from_millis(10);

/// A uniform integer in `0..=max` from the driver's randomness (the modulo bias of 32 random
/// bits over at most a few hundred values is below 10^-7).
pub(super) fn uniform(rng: &mut dyn RandomSource, max: u32) -> u32 {
    let mut b = [0u8; 4];
    rng.fill(&mut b);
    u32::from_le_bytes(b) % (max + 1)
}

impl Dialog {
    /// How long to wait before retrying a re-INVITE (or UPDATE) that got 491 (§14.1): 2.1–4 s
    /// if we own the Call-ID ([`Dialog::owns_call_id`]), 0–2 s otherwise, in 10 ms units.
    pub fn retry_after(&self, rng: &mut dyn RandomSource) -> Duration {
        let ticks = if self.owns_call_id {
            210 + uniform(rng, 190)
        } else {
            uniform(rng, 200)
        };
        TICK * ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::test_util::{Seeded, invite, response_to};

    #[test]
    fn owner_waits_2_1_to_4_s_and_the_other_0_to_2_s_in_10_ms_steps() {
        let inv = invite();
        let ok = response_to(&inv, 200, Some("bobtag"));
        let alice = crate::dialog::Dialog::uac(&inv, &ok).unwrap();
        let bob = crate::dialog::Dialog::uas(&inv, &ok).unwrap();
        let mut rng = Seeded(42);
        let (mut owner, mut other) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            owner.push(alice.retry_after(&mut rng));
            other.push(bob.retry_after(&mut rng));
        }
        for d in owner.iter().chain(&other) {
            assert_eq!(d.as_millis() % 10, 0, "{d:?}");
        }
        let range = |v: &[Duration]| {
            let ms = v.iter().map(Duration::as_millis);
            (ms.clone().min().unwrap(), ms.max().unwrap())
        };
        // 2000 draws over ~200 values reach both ends.
        assert_eq!(range(&owner), (2100, 4000));
        assert_eq!(range(&other), (0, 2000));
    }

    #[test]
    fn a_b2bua_may_claim_or_disclaim_the_call_id() {
        let inv = invite();
        let ok = response_to(&inv, 200, Some("bobtag"));
        let mut bob = crate::dialog::Dialog::uas(&inv, &ok).unwrap();
        bob.set_owns_call_id(true);
        assert!(bob.retry_after(&mut Seeded(1)) >= Duration::from_millis(2100));
    }
}
