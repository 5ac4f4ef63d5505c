//! Figures read from SIPp's screens (`-trace_screen`, or written while it runs on SIGUSR2).

/// The number of RTP packets SIPp echoed (`-rtp_echo`, first stream) according to `screen`,
/// screens written while it ran ([`SippProcess::screen_now`]): the largest figure (the
/// counter only grows).
pub fn rtp_echoed(screen: &str) -> Option<u64> {
    screen
        .lines()
        .filter_map(|l| l.trim().strip_suffix_any("Total echo RTP pckts 1st stream"))
        .max()
}

trait LeadingCount {
    /// `"<n> <label> …"` → n.
    fn strip_suffix_any(&self, label: &str) -> Option<u64>;
}

impl LeadingCount for str {
    fn strip_suffix_any(&self, label: &str) -> Option<u64> {
        let (n, rest) = self.split_once(' ')?;
        rest.trim_start()
            .starts_with(label)
            .then(|| n.parse().ok())?
    }
}
