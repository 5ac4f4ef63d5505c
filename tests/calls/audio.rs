//! Audio that a person would hear: a 1 kHz tone from the trunk caller reaches baresip, an
//! independent SIP and RTP stack that decodes it, at 1 kHz.

use std::time::Duration;

use crate::pbx::{CALLER, DID, Pbx, tone_3s};
use crate::peers::{
    self,
    baresip::{Baresip, event},
    free_port,
    sipp::Sipp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tone_from_the_trunk_reaches_baresip_at_one_kilohertz() {
    if !peers::require(peers::SIPP) || !peers::require(peers::BARESIP) {
        return;
    }
    let pbx = Pbx::start(|_| {}).await;
    let agent = pbx.agent("bare").await;
    let mut phone = Baresip::builder(&agent.sip_user, pbx.sip)
        .password(&agent.password)
        .account_param("audio_codecs=pcmu")
        .record()
        .lifetime(Duration::from_secs(60))
        .start();
    phone
        .wait_for_event_async(event::REGISTER_OK, Duration::from_secs(15))
        .await;
    let trunk_port = free_port();
    pbx.trunk(
        ([127, 0, 0, 1], trunk_port).into(),
        &["127.0.0.1/32"],
        &[DID],
        None,
    )
    .await;
    let caller = Sipp::scenario("call_trunk_uac")
        .target(pbx.sip)
        .service(DID)
        .key("caller", CALLER)
        .key("pcap", &tone_3s())
        .key("talk_ms", "4000")
        .key("session_expires", "1800")
        .calls(1)
        .timeout(Duration::from_secs(20))
        .run_async()
        .await;
    caller.assert_success();
    phone
        .wait_for_event_async(event::CALL_CLOSED, Duration::from_secs(10))
        .await;
    let report = phone.report();
    let recordings = phone.recordings();
    let received = recordings
        .iter()
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip wrote no received audio: {recordings:?}\n{report}"));
    let (rate, samples) = read_wav(received);
    let received = received.clone();
    phone.stop(Duration::from_secs(3)); // removes its directory
    // The tone's middle second: clear of the start (jitter buffer) and the end.
    let loud: Vec<f64> = samples
        .iter()
        .map(|&s| f64::from(s))
        .skip_while(|s| s.abs() < 1000.0)
        .collect();
    assert!(
        loud.len() >= rate as usize * 2,
        "under 2 s of audio in {} ({} samples at {rate} Hz)\n{report}",
        received.display(),
        samples.len()
    );
    let window = &loud[rate as usize / 2..rate as usize * 3 / 2];
    let rms = (window.iter().map(|s| s * s).sum::<f64>() / window.len() as f64).sqrt();
    assert!(rms > 3000.0, "the tone is too quiet: RMS {rms:.0}");
    let f = dominant_frequency(window, rate);
    assert!(
        (f - 1000.0).abs() <= 20.0,
        "dominant frequency {f:.1} Hz, expected 1000 Hz ± 2%"
    );
}

/// The samples of a 16-bit PCM WAV file (first channel) and its sample rate.
fn read_wav(path: &std::path::Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).expect("read the WAV file");
    assert!(
        bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE",
        "not a WAV file: {}",
        path.display()
    );
    let (mut rate, mut channels, mut bits) = (0u32, 1usize, 16u16);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            channels = usize::from(u16::from_le_bytes([body[2], body[3]]));
            rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
            bits = u16::from_le_bytes([body[14], body[15]]);
        } else if id == b"data" {
            assert_eq!(bits, 16, "16-bit PCM expected in {}", path.display());
            let samples = body
                .chunks_exact(2 * channels)
                .map(|c| i16::from_le_bytes([c[0], c[1]]))
                .collect();
            return (rate, samples);
        }
        at += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// The frequency with the most energy (Goertzel), searched from 100 Hz to just under Nyquist
/// in 10 Hz steps, then refined in 1 Hz steps around the best.
fn dominant_frequency(x: &[f64], rate: u32) -> f64 {
    let power = |f: f64| goertzel(x, rate, f);
    let best = |from: f64, to: f64, step: f64| {
        let mut f = from;
        let (mut best_f, mut best_p) = (from, f64::MIN);
        while f <= to {
            let p = power(f);
            if p > best_p {
                (best_f, best_p) = (f, p);
            }
            f += step;
        }
        best_f
    };
    // A tone that fits the window a whole number of times has zero power at the other whole
    // numbers of cycles (the rectangular window's nulls): the coarse steps must not be finer
    // than the main lobe, so they search a window of 1/10 s (10 Hz bins) first.
    let coarse = {
        let short = &x[..(rate as usize / 10).min(x.len())];
        let power_short = |f: f64| goertzel(short, rate, f);
        let mut f = 100.0;
        let (mut best_f, mut best_p) = (f, f64::MIN);
        while f <= f64::from(rate) / 2.0 - 100.0 {
            let p = power_short(f);
            if p > best_p {
                (best_f, best_p) = (f, p);
            }
            f += 10.0;
        }
        best_f
    };
    best(coarse - 15.0, coarse + 15.0, 1.0)
}

/// The power of `x` at `f` Hz (the Goertzel algorithm).
pub(crate) fn goertzel(x: &[f64], rate: u32, f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / f64::from(rate);
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + c * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

#[test]
fn the_frequency_measurement_finds_a_known_tone() {
    let rate = 8000;
    for hz in [440.0, 1000.0, 1633.0] {
        let x: Vec<f64> = (0..8000)
            .map(|n| (2.0 * std::f64::consts::PI * hz * f64::from(n) / f64::from(rate)).sin())
            .collect();
        let f = dominant_frequency(&x, rate);
        assert!((f - hz).abs() <= 1.0, "{hz} Hz measured as {f}");
    }
}
