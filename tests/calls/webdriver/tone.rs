//! The fake microphone's sound: a WAV of a pure tone that Chromium plays as its capture
//! device (`--use-file-for-fake-audio-capture`).

use std::path::Path;

/// A 48 kHz mono WAV of `hz` for the fake microphone: 10 s, which Chromium loops. 1 kHz fits
/// 48 kHz a whole number of times, so the loop has no click.
pub(super) fn write_tone(path: &Path, hz: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("write the tone WAV");
    for n in 0..48_000 * 10 {
        let v = (2.0 * std::f64::consts::PI * hz * f64::from(n) / 48_000.0).sin();
        w.write_sample((v * 16_000.0) as i16)
            .expect("write a sample");
    }
    w.finalize().expect("finish the tone WAV");
}
