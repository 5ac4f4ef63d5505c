//! Receive statistics of one RTP source: the sequence number bookkeeping of RFC 3550 Appendix
//! A.1 (extended highest sequence number, cycles, probation, `bad_seq`), the interarrival jitter
//! of A.8, and the expected / lost / fraction-lost figures of A.3 for RTCP report blocks.

/// Packets in sequence before a new source is valid.
const MIN_SEQUENTIAL: u32 = 2;
/// Largest forward jump accepted as loss rather than a restart.
const MAX_DROPOUT: u16 = 3000;
/// Largest backward jump accepted as reordering.
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// Statistics of one received RTP source (one SSRC).
#[derive(Clone, Debug, Default)]
pub struct ReceiveStats {
    max_seq: u16,
    /// Shifted count of sequence number cycles (multiples of 2^16).
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet (A.8), in timestamp units.
    transit: Option<u32>,
    /// Jitter scaled by 16, in timestamp units (A.8, integer form).
    jitter_q4: u32,
    started: bool,
}

impl ReceiveStats {
    /// Statistics for a source whose first packet carries `seq` (A.1 `init_seq` + probation).
    pub fn new(seq: u16) -> Self {
        let mut s = Self {
            started: true,
            ..Self::default()
        };
        s.init_seq(seq);
        // The first packet counts towards probation: max_seq is one less so that it is in order.
        s.max_seq = seq.wrapping_sub(1);
        s.probation = MIN_SEQUENTIAL;
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Whether [`ReceiveStats::new`] has been called (the default value is empty).
    pub fn started(&self) -> bool {
        self.started
    }

    /// Records a packet with sequence number `seq` (A.1 `update_seq`). Returns whether the
    /// packet is valid: `false` while the source is on probation or for a packet far out of
    /// order, which a receiver might treat as a restart.
    pub fn update_seq(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: if the next packet follows it, the sender restarted.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // else: a duplicate or reordered packet, counted.
        self.received += 1;
        true
    }

    /// Updates the interarrival jitter (A.8) with a packet of RTP timestamp `rtp_ts` that arrived
    /// at `arrival`, the receiver's clock in the same units (samples) as the timestamps.
    pub fn update_jitter(&mut self, arrival: u32, rtp_ts: u32) {
        let transit = arrival.wrapping_sub(rtp_ts);
        if let Some(prev) = self.transit {
            let d = transit.wrapping_sub(prev) as i32;
            let d = d.unsigned_abs();
            // J += (|D| - J) / 16, with J kept scaled by 16.
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// The interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// The extended highest sequence number received (cycles in the high 16 bits).
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected: extended highest minus base, plus one.
    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Valid packets received (duplicates included, as RFC 3550 counts them).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Cumulative packets lost; negative when duplicates outnumber losses.
    pub fn lost(&self) -> i64 {
        if self.probation > 0 {
            return 0;
        }
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// The cumulative loss clamped to the signed 24-bit field of a report block.
    pub fn lost_24bit(&self) -> i32 {
        self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32
    }

    /// The fraction lost since the previous call, in 1/256 (A.3), and starts a new interval.
    pub fn take_fraction_lost(&mut self) -> u8 {
        if self.probation > 0 {
            return 0;
        }
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u16]) -> ReceiveStats {
        let mut s = ReceiveStats::new(seqs[0]);
        for &q in seqs {
            s.update_seq(q);
        }
        s
    }

    #[test]
    fn in_order_stream_has_no_loss() {
        let seqs: Vec<u16> = (100..200).collect();
        let mut s = run(&seqs);
        assert_eq!(s.extended_max(), 199);
        // Probation consumes the first packet: counting starts at the second one.
        assert_eq!(s.expected(), 99);
        assert_eq!(s.received(), 99);
        assert_eq!(s.lost(), 0);
        assert_eq!(s.take_fraction_lost(), 0);
    }

    #[test]
    fn loss_and_fraction_by_hand() {
        // 1..=10 then 13..=20: 11 and 12 missing. Base is 2 (after probation), max 20:
        // expected 19, received 17, lost 2; fraction 2/19*256 = 26.9 -> 26.
        let mut seqs: Vec<u16> = (1..=10).collect();
        seqs.extend(13..=20);
        let mut s = run(&seqs);
        assert_eq!(s.expected(), 19);
        assert_eq!(s.received(), 17);
        assert_eq!(s.lost(), 2);
        assert_eq!(s.take_fraction_lost(), 26);
        // Next interval: 21..=24 all present.
        for q in 21..=24 {
            s.update_seq(q);
        }
        assert_eq!(s.take_fraction_lost(), 0);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn wraps_into_a_new_cycle() {
        let seqs: Vec<u16> = (65530..=65535).chain(0..5).collect();
        let s = run(&seqs);
        assert_eq!(s.extended_max(), 65536 + 4);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn a_restart_is_accepted_after_two_packets() {
        let mut s = run(&[10, 11, 12]);
        assert!(!s.update_seq(40000));
        assert!(s.update_seq(40001));
        assert_eq!(s.extended_max(), 40001);
    }

    #[test]
    fn duplicates_give_negative_loss() {
        let s = run(&[1, 2, 3, 3, 3]);
        assert_eq!(s.lost(), -2);
        assert_eq!(s.lost_24bit(), -2);
    }

    #[test]
    fn jitter_by_hand() {
        // Transit times 0, 80, 0, 80 …: |D| = 80 each step after the first.
        // J1 = 80/16 = 5; J2 = 5 + (80-5)/16 = 9.6875; in the scaled integer form:
        // q4: 0 + 80 - 0 = 80 -> 5; then 80 + 80 - 5 = 155 -> 9.
        let mut s = ReceiveStats::new(0);
        s.update_jitter(1000, 1000);
        s.update_jitter(1240, 1160);
        assert_eq!(s.jitter(), 5);
        s.update_jitter(1320, 1320);
        assert_eq!(s.jitter(), 9);
        // A perfectly paced stream decays towards zero.
        let mut s = ReceiveStats::new(0);
        for i in 0..100u32 {
            s.update_jitter(5000 + i * 160, i * 160);
        }
        assert_eq!(s.jitter(), 0);
    }
}
