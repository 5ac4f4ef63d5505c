//! Prompts played by the relay, on the virtual clock: pacing, continuity of the stream before
//! and after, the end event, stopping, transcoding, suppression, hold and DTMF.

use std::sync::Arc;

use super::*;

/// `ms` of a recognisable µ-law (or any) recording: byte `i` is `i mod 251`.
fn prompt(ms: usize) -> Arc<[u8]> {
    (0..ms * 8).map(|i| (i % 251) as u8).collect()
}

/// The RTP packets sent to `side` among `sent`, parsed: (when, seq, ts, marker, pt, payload).
fn rtp_to(
    side: Side,
    sent: &[(Instant, Transmit, Vec<u8>)],
) -> Vec<(Instant, u16, u32, bool, u8, Vec<u8>)> {
    sent.iter()
        .filter(|(_, t, _)| t.side == side && t.port == Port::Rtp)
        .map(|(at, _, b)| {
            let p = RtpPacket::parse(b).unwrap();
            assert_eq!(p.ssrc(), r_ssrc(side));
            (
                *at,
                p.sequence(),
                p.timestamp(),
                p.marker(),
                p.payload_type(),
                p.payload().to_vec(),
            )
        })
        .collect()
}

fn r_ssrc(side: Side) -> u32 {
    match side {
        Side::A => 0xA0A0_A0A0,
        Side::B => 0xB0B0_B0B0,
    }
}

fn events(r: &mut Relay) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

/// Audio from A at `at`; returns the verdict and the (seq, ts) it was given toward B.
fn audio_from_a(r: &mut Relay, at: Instant, seq: u16) -> (Verdict, u16, u32) {
    let (mut buf, n) = packet(0, seq, 160 * u32::from(seq), 0x1111, &[0x42; 160]);
    let v = r.handle_rtp(at, Side::A, addr(PHONE_A), &mut buf, n);
    let p = RtpPacket::parse(&buf[..n]).unwrap();
    (v, p.sequence(), p.timestamp())
}

#[test]
fn a_second_at_20_ms_is_50_packets_continuing_the_stream() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    // Relayed audio first: B's stream is at seq 200, 201 and ts 2000, 2160.
    assert_eq!(audio_from_a(&mut r, t0, 0).1, 200);
    assert_eq!(audio_from_a(&mut r, t0 + ms(20), 1).1, 201);
    let audio = prompt(1000);
    let t1 = t0 + ms(40);
    r.play(t1, Side::B, audio.clone(), Codec::Pcmu).unwrap();
    assert!(r.is_playing(Side::B) && !r.is_playing(Side::A));
    // Halfway, A's audio toward B is suppressed (and not tapped).
    let mut sent = drive(&mut r, t1, t1 + ms(500));
    let (mut buf, n) = packet(0, 2, 320, 0x1111, &[0x42; 160]);
    let mut tapped = 0;
    let v = r.handle_rtp_tapped(
        t1 + ms(510),
        Side::A,
        addr(PHONE_A),
        &mut buf,
        n,
        &mut |_| tapped += 1,
    );
    assert_eq!((v, tapped), (Verdict::Drop(DropReason::Suppressed), 0));
    sent.extend(drive(&mut r, t1 + ms(510), t1 + ms(999)));
    assert!(
        events(&mut r).is_empty(),
        "not before the last packet has played"
    );
    sent.extend(drive(&mut r, t1 + ms(999), t1 + ms(3000)));
    let got = rtp_to(Side::B, &sent);
    assert_eq!(got.len(), 50);
    for (k, (at, seq, ts, marker, pt, payload)) in got.iter().enumerate() {
        assert_eq!(*at, t1 + ms(20 * k as u64), "packet {k}");
        assert_eq!(*seq, 202 + k as u16);
        // 20 ms after the last relayed packet, then 160 samples a packet.
        assert_eq!(*ts, 2160 + 160 + 160 * k as u32);
        assert_eq!(*marker, k == 0);
        assert_eq!(*pt, 0);
        assert_eq!(&payload[..], &audio[160 * k..160 * (k + 1)]);
    }
    assert!(rtp_to(Side::A, &sent).is_empty());
    // Once, when the last packet has played: t1 + 1 s.
    assert_eq!(events(&mut r), [Event::PlaybackDone { side: Side::B }]);
    assert!(!r.is_playing(Side::B));
    assert_eq!(r.counters(Side::B).prompt_packets, 50);
    assert_eq!(r.counters(Side::B).packets_out, 52);
    assert_eq!(r.counters(Side::A).dropped(DropReason::Suppressed), 1);
    // Relayed audio resumes, continuing the stream: 40 ms after the last prompt packet.
    let (v, seq, ts) = audio_from_a(&mut r, t1 + ms(1020), 3);
    assert!(matches!(v, Verdict::Forward { .. }));
    assert_eq!((seq, ts), (252, 2320 + 160 * 49 + 320));
    // The relay let go of the recording: nothing kept, nothing cloned per packet.
    assert_eq!(Arc::strong_count(&audio), 1);
    assert!(events(&mut r).is_empty());
}

#[test]
fn stopping_ends_the_prompt_without_the_event() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let audio = prompt(1000);
    r.play(t0, Side::A, audio.clone(), Codec::Pcmu).unwrap();
    let sent = drive(&mut r, t0, t0 + ms(200));
    assert_eq!(rtp_to(Side::A, &sent).len(), 11);
    // While it plays, the relay holds one reference, whatever the number of packets sent.
    assert_eq!(Arc::strong_count(&audio), 2);
    r.stop_playing(Side::A);
    r.stop_playing(Side::A);
    assert!(!r.is_playing(Side::A));
    assert_eq!(Arc::strong_count(&audio), 1);
    let sent = drive(&mut r, t0 + ms(200), t0 + ms(3000));
    assert!(rtp_to(Side::A, &sent).is_empty());
    assert!(events(&mut r).is_empty());
    // B's audio reaches A again.
    let (mut buf, n) = packet(0, 1, 0, 2, &[0; 160]);
    assert!(matches!(
        r.handle_rtp(t0 + ms(3000), Side::B, addr(PHONE_B), &mut buf, n),
        Verdict::Forward { .. }
    ));
}

#[test]
fn a_pcmu_prompt_to_a_pcma_leg_is_transcoded_per_packet() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcma);
    // 30 ms packets and a last, short one: 1000 samples = 4 × 240 + 40.
    let mut b = leg(PHONE_B, Codec::Pcma, Some(96));
    b.ptime_ms = 30;
    r.configure(t0, Side::B, b);
    let audio: Arc<[u8]> = (0..1000).map(|i| (i % 256) as u8).collect();
    r.play(t0, Side::B, audio.clone(), Codec::Pcmu).unwrap();
    let got = rtp_to(Side::B, &drive(&mut r, t0, t0 + ms(149)));
    assert_eq!(got.len(), 5);
    let mut offset = 0;
    for (k, (at, seq, ts, _, pt, payload)) in got.iter().enumerate() {
        assert_eq!(
            (*at, *seq, *ts, *pt),
            (
                t0 + ms(30 * k as u64),
                200 + k as u16,
                2000 + 240 * k as u32,
                8
            )
        );
        let want: Vec<u8> = audio[offset..(offset + 240).min(1000)]
            .iter()
            .map(|&u| transcode::ulaw_byte_to_alaw(u))
            .collect();
        assert_eq!(payload, &want);
        offset += payload.len();
    }
    assert_eq!(offset, 1000);
    // The end: five packets of 30 ms.
    assert!(events(&mut r).is_empty());
    drive(&mut r, t0 + ms(120), t0 + ms(150));
    assert_eq!(events(&mut r), [Event::PlaybackDone { side: Side::B }]);
    assert_eq!(r.counters(Side::B).payload_out, 1000);
}

#[test]
fn a_prompt_needs_a_configured_side_with_an_address() {
    let t0 = origin();
    let mut r = relay(t0);
    assert_eq!(
        r.play(t0, Side::A, prompt(100), Codec::Pcmu),
        Err(PlayError::NotConfigured)
    );
    let mut nowhere = leg(PHONE_A, Codec::Pcmu, None);
    nowhere.remote_rtp = None;
    r.configure(t0, Side::A, nowhere);
    assert_eq!(
        r.play(t0, Side::A, prompt(100), Codec::Pcmu),
        Err(PlayError::NotConfigured)
    );
    // Latched (it sent us RTP): that is an address.
    r.configure(t0, Side::B, leg(PHONE_B, Codec::Pcmu, None));
    let (mut buf, n) = packet(0, 1, 0, 1, &[0; 160]);
    r.handle_rtp(t0, Side::A, addr(NAT_A), &mut buf, n);
    assert_eq!(
        r.play(t0, Side::A, Arc::from([]), Codec::Pcmu),
        Err(PlayError::Empty)
    );
    r.play(t0, Side::A, prompt(100), Codec::Pcmu).unwrap();
    let got: Vec<_> = drive(&mut r, t0, t0 + ms(200))
        .into_iter()
        .filter(|(_, t, _)| t.port == Port::Rtp)
        .map(|(_, t, _)| t.to)
        .collect();
    assert_eq!(got, vec![addr(NAT_A); 5]);
    assert!(!PlayError::Empty.to_string().is_empty());
}

#[test]
fn on_hold_the_prompt_runs_its_course_unheard_and_resumes_without_a_gap() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let mut held = leg(PHONE_B, Codec::Pcmu, Some(96));
    held.direction = Direction::SendOnly;
    r.configure(t0, Side::B, held);
    r.play(t0, Side::B, prompt(200), Codec::Pcmu).unwrap();
    let sent = drive(&mut r, t0, t0 + ms(1000));
    assert!(rtp_to(Side::B, &sent).is_empty());
    assert_eq!(events(&mut r), [Event::PlaybackDone { side: Side::B }]);
    // Put on hold in the middle of a prompt: packets 0–4 heard, 5–9 not, 10–14 heard again,
    // with the sequence continuing and the timestamp following the clock.
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    r.play(t0, Side::B, prompt(300), Codec::Pcmu).unwrap();
    let mut sent = drive(&mut r, t0, t0 + ms(80));
    r.configure(t0 + ms(90), Side::B, held);
    sent.extend(drive(&mut r, t0 + ms(90), t0 + ms(180)));
    r.configure(t0 + ms(190), Side::B, leg(PHONE_B, Codec::Pcmu, Some(96)));
    sent.extend(drive(&mut r, t0 + ms(190), t0 + ms(1000)));
    let got = rtp_to(Side::B, &sent);
    let summary: Vec<_> = got
        .iter()
        .map(|(_, seq, ts, m, _, p)| (*seq, *ts, *m, p[0]))
        .collect();
    let byte = |k: usize| ((160 * k) % 251) as u8;
    assert_eq!(
        summary,
        vec![
            (200, 2000, true, byte(0)),
            (201, 2160, false, byte(1)),
            (202, 2320, false, byte(2)),
            (203, 2480, false, byte(3)),
            (204, 2640, false, byte(4)),
            (205, 2000 + 160 * 10, true, byte(10)),
            (206, 2000 + 160 * 11, false, byte(11)),
            (207, 2000 + 160 * 12, false, byte(12)),
            (208, 2000 + 160 * 13, false, byte(13)),
            (209, 2000 + 160 * 14, false, byte(14)),
        ]
    );
    assert_eq!(events(&mut r), [Event::PlaybackDone { side: Side::B }]);
}

#[test]
fn prompts_and_generated_dtmf_take_turns() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    // A digit asked for during a prompt waits for its end.
    r.play(t0, Side::B, prompt(100), Codec::Pcmu).unwrap();
    let mut sent = drive(&mut r, t0, t0);
    r.send_dtmf(t0 + ms(10), Side::B, '3', 100).unwrap();
    sent.extend(drive(&mut r, t0 + ms(10), t0 + ms(1000)));
    let got = rtp_to(Side::B, &sent);
    let kinds: Vec<_> = got
        .iter()
        .map(|(at, seq, _, m, pt, _)| ((*at - t0).as_millis(), *seq, *m, *pt))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (0, 200, true, 0),
            (20, 201, false, 0),
            (40, 202, false, 0),
            (60, 203, false, 0),
            (80, 204, false, 0),
            // The prompt ends at 100 ms; the digit follows at once, same stream.
            (100, 205, true, 96),
            (150, 206, false, 96),
            (170, 207, false, 96),
            (190, 208, false, 96),
        ]
    );
    // The digit's timestamp follows the prompt's last packet by the time between them.
    assert_eq!(got[5].2, got[4].2 + 160);
    assert_eq!(events(&mut r), [Event::PlaybackDone { side: Side::B }]);
    // A prompt asked for during a digit's train starts when the train is complete, before
    // a digit queued behind it.
    let t1 = t0 + ms(2000);
    r.send_dtmf(t1, Side::B, '4', 100).unwrap();
    r.send_dtmf(t1, Side::B, '5', 100).unwrap();
    assert_eq!(drive(&mut r, t1, t1).len(), 1);
    r.play(t1 + ms(10), Side::B, prompt(40), Codec::Pcmu)
        .unwrap();
    let sent = drive(&mut r, t1 + ms(10), t1 + ms(1000));
    let got = rtp_to(Side::B, &sent);
    let kinds: Vec<_> = got
        .iter()
        .map(|(at, _, _, m, pt, _)| ((*at - t1).as_millis(), *m, *pt))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (50, false, 96),
            (70, false, 96),
            (90, false, 96),
            // The train is complete with its third end packet, at 90 ms: the prompt starts.
            (90, true, 0),
            (110, false, 0),
            // It ends at 130 ms; the second digit keeps its pause of 50 ms after the first.
            (140, true, 96),
            (190, false, 96),
            (210, false, 96),
            (230, false, 96),
        ]
    );
}

#[test]
fn a_new_prompt_replaces_the_one_playing() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcmu, Codec::Pcmu);
    let first = prompt(1000);
    r.play(t0, Side::B, first.clone(), Codec::Pcmu).unwrap();
    let mut sent = drive(&mut r, t0, t0 + ms(40));
    r.play(t0 + ms(50), Side::B, prompt(40), Codec::Pcmu)
        .unwrap();
    assert_eq!(Arc::strong_count(&first), 1);
    sent.extend(drive(&mut r, t0 + ms(50), t0 + ms(1000)));
    let got = rtp_to(Side::B, &sent);
    let summary: Vec<_> = got
        .iter()
        .map(|(at, seq, ts, m, _, _)| ((*at - t0).as_millis(), *seq, *ts, *m))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 200, 2000, true),
            (20, 201, 2160, false),
            (40, 202, 2320, false),
            (50, 203, 2400, true),
            (70, 204, 2560, false),
        ]
    );
    assert_eq!(events(&mut r), [Event::PlaybackDone { side: Side::B }]);
}

/// Nothing is allocated per prompt packet. A counting global allocator would need an `unsafe
/// impl GlobalAlloc`, which the workspace forbids (`unsafe_code = "forbid"`), so this checks
/// the structure instead: every packet is written into the caller's buffer from the one shared
/// recording, which is never cloned (its reference count stays at the relay's one), and the
/// relay lets go of it at the end.
#[test]
fn the_per_packet_path_shares_the_recording() {
    let t0 = origin();
    let mut r = configured(t0, Codec::Pcma, Codec::Pcmu);
    let audio = prompt(400);
    r.play(t0, Side::A, audio.clone(), Codec::Pcmu).unwrap();
    let mut buf = [0u8; 1500];
    let mut packets = 0;
    for k in 0..=20u64 {
        r.handle_timeout(t0 + ms(20 * k));
        while let Some(t) = r.poll_transmit(&mut buf) {
            assert_eq!(t.len, HEADER_LEN + 160);
            assert_eq!(Arc::strong_count(&audio), 2);
            packets += 1;
        }
    }
    assert_eq!(packets, 20);
    assert_eq!(Arc::strong_count(&audio), 1);
}

proptest! {
    /// Whatever the recording's length, the leg's ptime (even a broken one), the codecs, a
    /// hold in the middle and a late timer: every sample goes out once, in order, the end is
    /// reported once, and nothing panics.
    #[test]
    fn every_sample_goes_out_once(
        len in 1usize..4000,
        ptime_ms in 0u32..300,
        leg_pcma in any::<bool>(),
        prompt_pcma in any::<bool>(),
        late_ms in 0u64..70,
        hold in proptest::option::of((0u64..600, 0u64..600)),
    ) {
        let t0 = origin();
        let codec = |pcma| if pcma { Codec::Pcma } else { Codec::Pcmu };
        let mut r = configured(t0, Codec::Pcmu, codec(leg_pcma));
        let mut b = leg(PHONE_B, codec(leg_pcma), Some(96));
        b.ptime_ms = ptime_ms;
        r.configure(t0, Side::B, b);
        let audio: Arc<[u8]> = (0..len).map(|i| (i % 256) as u8).collect();
        r.play(t0, Side::B, audio.clone(), codec(prompt_pcma)).unwrap();
        let mut sent = Vec::new();
        let mut now = t0;
        let mut buf = [0u8; 1500];
        let mut unheard = false;
        let mut done = 0;
        while now < t0 + ms(5000) {
            if let Some((from, to)) = hold {
                let held = now >= t0 + ms(from) && now < t0 + ms(from + to);
                if held != unheard {
                    let mut l = b;
                    if held {
                        l.direction = Direction::Inactive;
                    }
                    r.configure(now, Side::B, l);
                    unheard = held;
                }
            }
            r.handle_timeout(now);
            while let Some(t) = r.poll_transmit(&mut buf) {
                if t.side == Side::B && t.port == Port::Rtp {
                    prop_assert!(!unheard);
                    sent.push(RtpPacket::parse(&buf[..t.len]).unwrap().payload().to_vec());
                }
            }
            while let Some(e) = r.poll_event() {
                prop_assert_eq!(e, Event::PlaybackDone { side: Side::B });
                done += 1;
            }
            // The driver wakes at the deadline, or later.
            let next = r.poll_timeout().map_or(now, |t| t.max(now));
            now = next + ms(late_ms).max(Duration::from_micros(1));
        }
        prop_assert_eq!(done, 1);
        prop_assert!(!r.is_playing(Side::B));
        let samples = (if (10..=120).contains(&ptime_ms) { ptime_ms } else { 20 } * 8) as usize;
        prop_assert!(sent.iter().all(|p| p.len() <= samples));
        if hold.is_none() {
            // Every sample, once, in order (transcoded if the codecs differ).
            let got: Vec<u8> = sent.concat();
            let mut want = audio.to_vec();
            transcode::transcode(codec(prompt_pcma), codec(leg_pcma), &mut want);
            prop_assert_eq!(got, want);
        }
    }
}
