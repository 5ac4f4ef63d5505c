//! The transaction timers of RFC 3261 §17 (Table 4) and RFC 6026, derived from T1, T2 and T4.

use std::time::{Duration, Instant};

/// T1, T2 and T4 (§17.1.1.1), from which every other timer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// The round-trip estimate: 500 ms by default.
    pub t1: Duration,
    /// The longest retransmission interval of non-INVITE requests and INVITE responses: 4 s.
    pub t2: Duration,
    /// How long a message may stay in the network: 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D: "at least 32 s" on an unreliable transport, zero on a reliable one (§17.1.1.2).
    /// 64*T1 when that is longer, so that a larger T1 keeps absorbing retransmissions.
    pub fn d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.timeout().max(Duration::from_secs(32))
        }
    }

    /// Timer I: T4 on an unreliable transport, zero on a reliable one (§17.2.1).
    pub fn i(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: 64*T1 on an unreliable transport, zero on a reliable one (§17.2.2).
    pub fn j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.timeout()
        }
    }

    /// Timer K: T4 on an unreliable transport, zero on a reliable one (§17.1.2.2).
    pub fn k(&self, reliable: bool) -> Duration {
        self.i(reliable)
    }
}

/// A retransmission timer (A, E or G): when it fires next and the interval it was set with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Retransmit {
    /// When the message goes out again.
    pub(crate) at: Instant,
    /// The interval that led to `at`; the next one doubles it (capped for E and G).
    pub(crate) interval: Duration,
}

impl Retransmit {
    /// The first retransmission, T1 after the first transmission; none on a reliable transport.
    pub(crate) fn first(now: Instant, timers: &Timers, reliable: bool) -> Option<Self> {
        (!reliable).then(|| Self {
            at: now + timers.t1,
            interval: timers.t1,
        })
    }

    /// The timer after it fired at `now`: the interval doubles, up to `cap` when there is one
    /// (T2 for Timers E and G; Timer A is capped only by Timer B).
    pub(crate) fn next(self, now: Instant, cap: Option<Duration>) -> Self {
        let doubled = self.interval.saturating_mul(2);
        let interval = cap.map_or(doubled, |c| doubled.min(c));
        Self {
            at: now + interval,
            interval,
        }
    }
}

/// The earliest of some optional deadlines.
pub(crate) fn earliest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}
