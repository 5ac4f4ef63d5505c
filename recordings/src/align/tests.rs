//! The aligner on a virtual clock: every test chooses `arrival` and `now` itself.

use super::*;
use proptest::prelude::*;

const F: usize = 160;

/// A frame whose samples encode where they came from: `base + i` (non-zero so that silence is
/// told apart from audio).
fn samples(base: i16) -> Vec<i16> {
    (0..F as i16).map(|i| base.wrapping_add(i) | 1).collect()
}

fn push(a: &mut Aligner, channel: Channel, ssrc: u32, ts: u32, arrival: u64, s: &[i16]) {
    a.push(Frame {
        channel,
        ssrc,
        timestamp: ts,
        arrival,
        samples: s,
    });
}

fn left(out: &[i16]) -> Vec<i16> {
    out.iter().step_by(2).copied().collect()
}

fn right(out: &[i16]) -> Vec<i16> {
    out.iter().skip(1).step_by(2).copied().collect()
}

/// One channel, frames `k` (ts = `ts0 + 160 k`, arrival = 160 k) in the order given, draining
/// after each push at that frame's arrival plus `lag`; finished at `end`.
fn run_customer(order: &[(u32, u64)], ts0: u32, end: u64) -> (Vec<i16>, Aligner) {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    for &(k, arrival) in order {
        let s = samples(k as i16 * 7);
        push(
            &mut a,
            Channel::Customer,
            1,
            ts0.wrapping_add(k * F as u32),
            arrival,
            &s,
        );
        a.drain(arrival, &mut out);
    }
    a.finish(end, &mut out);
    (out, a)
}

fn expect_frame(l: &[i16], at: usize, k: u32) {
    assert_eq!(
        &l[at..at + F],
        &samples(k as i16 * 7)[..],
        "frame {k} at {at}"
    );
}

#[test]
fn in_order_stream_is_placed_at_its_arrival() {
    let order: Vec<(u32, u64)> = (0..50).map(|k| (k, u64::from(k) * 160)).collect();
    let (out, a) = run_customer(&order, 12345, 50 * 160);
    assert_eq!(a.written(), 8000);
    assert_eq!(out.len(), 16000);
    let l = left(&out);
    for k in 0..50 {
        expect_frame(&l, k as usize * F, k);
    }
    assert!(right(&out).iter().all(|&s| s == 0));
    let st = a.stats();
    assert_eq!(st.customer.frames, 50);
    assert_eq!(st.customer.silence_samples, 0);
    assert_eq!(st.agent.silence_samples, 8000);
    assert_eq!(st.customer.late_frames + st.customer.resyncs, 0);
}

#[test]
fn lost_frames_and_idle_time_become_silence() {
    // Frames 0..10, then frame 3 and 4 lost, then nothing for 2 s, then frames 120..125 (the
    // sender's clock ran on during the pause).
    let order: Vec<(u32, u64)> = (0..10)
        .filter(|k| *k != 3 && *k != 4)
        .chain(120..125)
        .map(|k| (k, u64::from(k) * 160))
        .collect();
    let (out, a) = run_customer(&order, 0, 125 * 160);
    let l = left(&out);
    assert_eq!(l.len(), 125 * F);
    assert!(l[3 * F..5 * F].iter().all(|&s| s == 0));
    assert!(l[10 * F..120 * F].iter().all(|&s| s == 0));
    expect_frame(&l, 9 * F, 9);
    expect_frame(&l, 120 * F, 120);
    expect_frame(&l, 124 * F, 124);
    assert_eq!(a.stats().customer.silence_samples, 112 * F as u64);
    assert_eq!(a.stats().customer.resyncs, 0);
}

#[test]
fn reordered_frames_within_the_window_go_in_their_place() {
    // 2 arrives before 1; 5 arrives 40 ms after 6 (within the 60 ms window).
    let order = [
        (0, 0),
        (2, 320),
        (1, 330),
        (3, 480),
        (4, 640),
        (6, 960),
        (5, 1280),
        (7, 1290),
    ];
    let (out, a) = run_customer(&order, 99, 8 * 160);
    let l = left(&out);
    for k in 0..8 {
        expect_frame(&l, k as usize * F, k);
    }
    assert_eq!(a.stats().customer.late_frames, 0);
    assert_eq!(a.stats().customer.silence_samples, 0);
}

#[test]
fn a_frame_later_than_the_window_loses_its_late_part() {
    // Frame 1 (positions 160..320) arrives at 900, after a drain at 860 wrote positions up to
    // 860 − 480 = 380.
    let order = [(0, 0), (2, 320), (3, 480), (4, 640), (5, 860), (1, 900)];
    let (out, a) = run_customer(&order, 0, 6 * 160);
    let l = left(&out);
    assert!(l[F..2 * F].iter().all(|&s| s == 0));
    expect_frame(&l, 2 * F, 2);
    expect_frame(&l, 5 * F, 5);
    let st = a.stats().customer;
    assert_eq!((st.late_frames, st.late_samples), (1, 160));
    assert_eq!(st.resyncs, 0);
}

#[test]
fn duplicates_never_double_the_audio() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut once = Aligner::new(AlignConfig::default());
    let (mut out, mut out_once) = (Vec::new(), Vec::new());
    for k in 0..20u32 {
        let s = samples(k as i16 * 3);
        let t = u64::from(k) * 160;
        for _ in 0..2 {
            push(&mut a, Channel::Agent, 7, k * 160, t, &s);
        }
        push(&mut once, Channel::Agent, 7, k * 160, t, &s);
        // A copy of an earlier frame replayed later, still within the window.
        if k >= 2 {
            let old = samples((k - 2) as i16 * 3);
            push(&mut a, Channel::Agent, 7, (k - 2) * 160, t + 10, &old);
        }
        a.drain(t + 10, &mut out);
        once.drain(t + 10, &mut out_once);
    }
    a.finish(3200, &mut out);
    once.finish(3200, &mut out_once);
    assert_eq!(out, out_once);
    let st = a.stats().agent;
    assert_eq!(st.duplicate_samples, 20 * 160 + 18 * 160);
    assert_eq!(st.resyncs + st.ssrc_changes, 0);
}

#[test]
fn a_new_ssrc_mid_call_is_anchored_at_its_arrival() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    for k in 0..10u32 {
        let t = u64::from(k) * 160;
        push(&mut a, Channel::Agent, 1, 5000 + k * 160, t, &samples(1));
        a.drain(t, &mut out);
    }
    // The transfer: 300 ms of nothing, then the new agent with an unrelated timestamp base.
    for k in 0..10u32 {
        let t = 1600 + 2400 + u64::from(k) * 160;
        push(
            &mut a,
            Channel::Agent,
            2,
            4_000_000_000 + k * 160,
            t,
            &samples(501),
        );
        a.drain(t, &mut out);
    }
    a.finish(5600, &mut out);
    let r = right(&out);
    assert_eq!(r.len(), 5600);
    assert_eq!(&r[1440..1600], &samples(1)[..]);
    assert!(r[1600..4000].iter().all(|&s| s == 0));
    assert_eq!(&r[4000..4160], &samples(501)[..]);
    assert_eq!(&r[5440..5600], &samples(501)[..]);
    let st = a.stats().agent;
    assert_eq!((st.ssrc_changes, st.resyncs, st.late_frames), (1, 0, 0));
}

#[test]
fn timestamps_wrap_around_seamlessly() {
    // Starts 3 frames before the wrap; frames 4 and 3 are swapped across it.
    let ts0 = u32::MAX - 3 * 160 + 1;
    let order = [
        (0, 0),
        (1, 160),
        (2, 320),
        (4, 640),
        (3, 650),
        (5, 800),
        (6, 960),
    ];
    let (out, a) = run_customer(&order, ts0, 7 * 160);
    let l = left(&out);
    for k in 0..7 {
        expect_frame(&l, k as usize * F, k);
    }
    assert_eq!(
        a.stats().customer.resyncs + a.stats().customer.late_frames,
        0
    );
}

#[test]
fn a_huge_forward_jump_is_re_anchored_not_buffered() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    push(&mut a, Channel::Customer, 1, 0, 0, &samples(1));
    // The timestamp leaps a minute ahead while only 20 ms passed.
    push(&mut a, Channel::Customer, 1, 480_000, 160, &samples(2));
    push(&mut a, Channel::Customer, 1, 480_160, 320, &samples(3));
    assert!(a.held(Channel::Customer) <= 480 + 8000 + 960);
    a.finish(480, &mut out);
    let l = left(&out);
    assert_eq!(&l[..160], &samples(1)[..]);
    assert_eq!(&l[160..320], &samples(2)[..]);
    assert_eq!(&l[320..480], &samples(3)[..]);
    assert_eq!(a.stats().customer.resyncs, 1);
}

#[test]
fn a_backward_jump_is_re_anchored_not_dropped() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    for k in 0..100u32 {
        // The sender restarts its timestamps at frame 50.
        let ts = if k < 50 {
            1_000_000 + k * 160
        } else {
            (k - 50) * 160
        };
        let t = u64::from(k) * 160;
        push(&mut a, Channel::Customer, 9, ts, t, &samples(k as i16));
        a.drain(t, &mut out);
    }
    a.finish(16000, &mut out);
    let l = left(&out);
    assert_eq!(&l[50 * F..51 * F], &samples(50)[..]);
    assert_eq!(&l[99 * F..], &samples(99)[..]);
    let st = a.stats().customer;
    assert_eq!((st.resyncs, st.late_frames, st.silence_samples), (1, 0, 0));
}

#[test]
fn both_channels_are_independent() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    for k in 0..30u32 {
        let t = u64::from(k) * 160;
        push(
            &mut a,
            Channel::Customer,
            1,
            777 + k * 160,
            t,
            &samples(100),
        );
        // The agent starts 50 ms late, with its own base and a mid-call SSRC change.
        if k >= 3 {
            let (ssrc, base) = if k < 15 { (2, 3_000_000) } else { (3, 42) };
            push(
                &mut a,
                Channel::Agent,
                ssrc,
                base + k * 160,
                t + 400,
                &samples(-100),
            );
        }
        a.drain(t + 5, &mut out);
    }
    a.finish(30 * 160 + 400, &mut out);
    let (l, r) = (left(&out), right(&out));
    assert_eq!(l.len(), 30 * F + 400);
    for k in 0..30 {
        assert_eq!(&l[k * F..(k + 1) * F], &samples(100)[..]);
    }
    assert!(r[..3 * F + 400].iter().all(|&s| s == 0));
    for k in 3..30 {
        let at = k * F + 400;
        assert_eq!(&r[at..at + F], &samples(-100)[..], "agent frame {k}");
    }
    let st = a.stats();
    assert_eq!(st.customer.ssrc_changes + st.customer.resyncs, 0);
    assert_eq!((st.agent.ssrc_changes, st.agent.resyncs), (1, 0));
}

/// A sender whose clock runs 0.6 % slow (a frame of 160 timestamp units every 161 samples of
/// ours) would slide behind the written output; the stream re-anchors instead of losing audio.
#[test]
fn a_slow_sender_clock_loses_no_audio() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    for k in 0..3000u32 {
        let t = u64::from(k) * 161;
        push(&mut a, Channel::Customer, 1, k * 160, t, &samples(5));
        a.drain(t, &mut out);
    }
    a.finish(3000 * 161, &mut out);
    let st = a.stats().customer;
    assert_eq!(st.late_frames, 0);
    assert!(st.resyncs >= 1 && st.resyncs <= 40, "{st:?}");
    let sent = left(&out).iter().filter(|&&s| s != 0).count();
    assert!(sent >= 2999 * F, "{sent}");
}

/// A sender whose clock runs 3 % fast produces more audio than time passes; the excess is
/// dropped and the held-back buffer stays bounded.
#[test]
fn a_fast_sender_clock_stays_bounded() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    let mut max_held = 0;
    for k in 0..6000u32 {
        let t = u64::from(k) * 155;
        push(&mut a, Channel::Customer, 1, k * 160, t, &samples(5));
        a.drain(t, &mut out);
        max_held = max_held.max(a.held(Channel::Customer));
    }
    assert!(max_held <= 480 + 8000 + 2 * 160, "{max_held}");
    a.finish(6000 * 155, &mut out);
    assert_eq!(out.len(), 2 * 6000 * 155);
    let st = a.stats().customer;
    assert!(st.resyncs >= 1, "{st:?}");
    assert_eq!(st.overflow_samples, 0);
}

/// Some senders stop their timestamps while they suppress silence (RFC 3550 says not to).
#[test]
fn a_paused_sender_clock_is_re_anchored() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    let mut ts = 0u32;
    let mut t = 0u64;
    for k in 0..40u32 {
        if k == 20 {
            t += 4000; // 500 ms of silence, timestamps frozen
        }
        push(&mut a, Channel::Customer, 1, ts, t, &samples(k as i16));
        a.drain(t, &mut out);
        ts += 160;
        t += 160;
    }
    a.finish(t, &mut out);
    let l = left(&out);
    assert_eq!(&l[20 * F + 4000..21 * F + 4000], &samples(20)[..]);
    assert_eq!(&l[39 * F + 4000..], &samples(39)[..]);
    let st = a.stats().customer;
    assert_eq!((st.resyncs, st.late_frames), (1, 0));
}

#[test]
fn finish_writes_exactly_the_elapsed_time() {
    let mut a = Aligner::new(AlignConfig::default());
    let mut out = Vec::new();
    push(&mut a, Channel::Customer, 1, 0, 0, &samples(1));
    a.drain(100, &mut out);
    assert!(out.is_empty(), "held back for the reorder window");
    // A frame placed beyond `now` (it arrived 'early' on the anchor's timeline).
    push(&mut a, Channel::Customer, 1, 320, 200, &samples(2));
    a.finish(400, &mut out);
    assert_eq!(a.written(), 400);
    assert_eq!(out.len(), 800);
    assert_eq!(a.stats().customer.truncated_samples, 80);
    a.finish(400, &mut out);
    assert_eq!(out.len(), 800);
}

#[test]
fn a_wrong_arrival_far_ahead_is_bounded() {
    let mut a = Aligner::new(AlignConfig::default());
    push(&mut a, Channel::Agent, 1, 0, 1 << 40, &samples(1));
    push(&mut a, Channel::Agent, 2, 0, u64::MAX, &samples(1));
    assert_eq!(a.held(Channel::Agent), 0);
    assert_eq!(a.stats().agent.overflow_samples, 320);
}

#[derive(Clone, Debug)]
enum Op {
    Push {
        agent: bool,
        ssrc: u32,
        ts: u32,
        arrival: u64,
        len: usize,
    },
    Drain(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            any::<bool>(),
            0u32..3,
            any::<u32>(),
            0u64..40_000,
            0usize..=960
        )
            .prop_map(|(agent, ssrc, ts, arrival, len)| Op::Push {
                agent,
                ssrc,
                ts,
                arrival,
                len,
            }),
        (0u64..2000).prop_map(Op::Drain),
    ]
}

proptest! {
    /// Whatever is pushed: the output is interleaved, as long as `written()` says, never ahead
    /// of `now`, exactly `now` after `finish`, and the held-back buffers stay bounded.
    #[test]
    fn any_pushes_and_drains_keep_the_invariants(ops in prop::collection::vec(op(), 0..120)) {
        let mut a = Aligner::new(AlignConfig::default());
        let mut out = Vec::new();
        let mut now = 0u64;
        let buf: Vec<i16> = (0..960).map(|i| i as i16 + 1).collect();
        let bound = 480 + 8000 + MAX_HOLD_SLACK as usize;
        for op in ops {
            match op {
                Op::Push { agent, ssrc, ts, arrival, len } => {
                    let channel = if agent { Channel::Agent } else { Channel::Customer };
                    push(&mut a, channel, ssrc, ts, arrival, &buf[..len]);
                }
                Op::Drain(step) => {
                    now += step;
                    a.drain(now, &mut out);
                }
            }
            prop_assert_eq!(out.len() % 2, 0);
            prop_assert_eq!(a.written(), out.len() as u64 / 2);
            prop_assert!(a.written() <= now);
            prop_assert!(a.held(Channel::Customer) <= bound);
            prop_assert!(a.held(Channel::Agent) <= bound);
        }
        a.finish(now, &mut out);
        prop_assert_eq!(a.written(), now);
        prop_assert_eq!(out.len() as u64, 2 * now);
    }

    /// Frames pushed in order with `arrival` equal to their position (and the timestamp a fixed
    /// offset from it, wrapping) appear exactly there, whatever the gaps, frame sizes and drain
    /// times.
    #[test]
    fn in_order_frames_appear_at_their_positions(
        ts0 in any::<u32>(),
        frames in prop::collection::vec((0u64..3000, 1usize..=960, 0u64..=480), 1..60),
    ) {
        let mut a = Aligner::new(AlignConfig::default());
        let mut out = Vec::new();
        let mut expected = Vec::new();
        let mut pos = 0u64;
        let mut now = 0u64;
        for (i, (gap, len, lag)) in frames.into_iter().enumerate() {
            pos += gap;
            let s: Vec<i16> = (0..len).map(|j| ((i * 1000 + j) % 30000) as i16 + 1).collect();
            let ts = ts0.wrapping_add(pos as u32);
            push(&mut a, Channel::Customer, 5, ts, pos, &s);
            expected.push((pos, s));
            pos += len as u64;
            now = now.max(pos - len as u64 + lag);
            a.drain(now, &mut out);
        }
        let end = now.max(pos);
        a.finish(end, &mut out);
        let l = left(&out);
        for (p, s) in &expected {
            let p = *p as usize;
            prop_assert_eq!(&l[p..p + s.len()], &s[..]);
        }
        let st = a.stats().customer;
        prop_assert_eq!(st.late_frames + st.resyncs + st.duplicate_samples, 0);
    }
}
