//! Prompts from every supported format, made in the test (WAV, with hound) or from the small
//! fixtures in `tests/fixtures/` (FLAC, MP3, Ogg Vorbis; see the README there).

use super::*;
use proptest::prelude::*;
use std::io::Cursor;

const FLAC: &[u8] = include_bytes!("../../tests/fixtures/tone600.flac");
const MP3: &[u8] = include_bytes!("../../tests/fixtures/tone600.mp3");
const OGG: &[u8] = include_bytes!("../../tests/fixtures/tone600.ogg");

/// The power of `freq` in `x` (sampled at `rate`), by the Goertzel recurrence.
fn goertzel(x: &[i16], freq: f64, rate: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// One second of 600 Hz at 8 kHz: the length within 2 %, 600 Hz dominating its neighbours, and
/// not faint (ffmpeg's fixtures have amplitude 1/8, the others 1/2).
fn assert_tone_600(pcm: &[i16], what: &str) {
    let len = pcm.len();
    assert!((7840..=8160).contains(&len), "{what}: {len} samples");
    let p600 = goertzel(pcm, 600.0, 8000.0);
    for other in [300.0, 1000.0, 2400.0] {
        let p = goertzel(pcm, other, 8000.0);
        assert!(
            p600 > 100.0 * p,
            "{what}: 600 Hz {p600:e} vs {other} Hz {p:e}"
        );
    }
    let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    assert!(peak > 2000, "{what}: peak {peak}");
}

/// A WAV of one second of 600 Hz (amplitude 0.5) at `rate` with `channels` identical channels.
fn tone_wav(rate: u32, channels: u16, secs: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut buf = Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut buf, spec).expect("writer");
    let n = (f64::from(rate) * secs).round() as usize;
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let v = (0.5 * 32767.0 * (2.0 * std::f64::consts::PI * 600.0 * t).sin()) as i16;
        for _ in 0..channels {
            w.write_sample(v).expect("sample");
        }
    }
    w.finalize().expect("finalize");
    buf.into_inner()
}

#[test]
fn a_44k1_stereo_wav_is_resampled_to_8k_mono() {
    let pcm = decode_prompt(&tone_wav(44100, 2, 1.0), Some("wav")).expect("decodes");
    assert_tone_600(&pcm, "wav 44.1 kHz stereo");
}

#[test]
fn wavs_at_other_rates_are_resampled() {
    for rate in [11025, 16000, 22050, 32000, 48000] {
        let pcm = decode_prompt(&tone_wav(rate, 1, 1.0), None).expect("decodes");
        assert_tone_600(&pcm, &format!("wav {rate} Hz"));
    }
}

#[test]
fn an_8k_mono_wav_passes_through_untouched() {
    let wav = tone_wav(8000, 1, 1.0);
    let mut reader = hound::WavReader::new(Cursor::new(&wav)).expect("reader");
    let original: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let pcm = decode_prompt(&wav, Some("wav")).expect("decodes");
    assert_eq!(pcm, original);
    assert_tone_600(&pcm, "wav 8 kHz");
}

#[test]
fn flac_is_decoded() {
    assert_tone_600(&decode_prompt(FLAC, Some("flac")).expect("decodes"), "flac");
}

#[test]
fn mp3_with_an_id3_tag_is_decoded() {
    assert_eq!(&MP3[..3], b"ID3", "ffmpeg's mp3 starts with an ID3v2 tag");
    assert_tone_600(&decode_prompt(MP3, Some("mp3")).expect("decodes"), "mp3");
}

#[test]
fn ogg_vorbis_is_decoded() {
    assert_tone_600(&decode_prompt(OGG, Some("ogg")).expect("decodes"), "ogg");
}

#[test]
fn the_content_decides_not_the_extension() {
    assert_tone_600(
        &decode_prompt(FLAC, Some("mp3")).expect("decodes"),
        "flac as mp3",
    );
    assert_tone_600(
        &decode_prompt(OGG, Some(".wav")).expect("decodes"),
        "ogg as wav",
    );
    assert_tone_600(
        &decode_prompt(MP3, None).expect("decodes"),
        "mp3 without a hint",
    );
}

#[test]
fn too_long_and_empty_prompts_are_refused() {
    let long = tone_wav(8000, 1, f64::from(MAX_PROMPT_SECS) + 0.5);
    assert_eq!(decode_prompt(&long, None), Err(PromptError::TooLong));
    let long = tone_wav(22050, 2, f64::from(MAX_PROMPT_SECS) + 0.5);
    assert_eq!(decode_prompt(&long, None), Err(PromptError::TooLong));
    let max = tone_wav(8000, 1, f64::from(MAX_PROMPT_SECS));
    assert_eq!(decode_prompt(&max, None).map(|p| p.len()), Ok(960_000));
    assert_eq!(
        decode_prompt(&tone_wav(8000, 1, 0.0), None),
        Err(PromptError::Empty)
    );
}

#[test]
fn samples_are_clamped_to_16_bits() {
    assert_eq!(to_i16(1.5), 32767);
    assert_eq!(to_i16(-2.0), -32768);
    assert_eq!(to_i16(-1.0), -32768);
    assert_eq!(to_i16(0.5), 16384);
}

#[test]
fn not_audio_is_unsupported() {
    for junk in [
        &b""[..],
        b"hello world",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
    ] {
        let e = decode_prompt(junk, Some("wav")).expect_err("not audio");
        assert!(matches!(e, PromptError::Unsupported(_)), "{e:?}");
    }
}

/// Every fixture cut at many points: decodes to something shorter, or a typed error; never a
/// panic (the unguarded decoder is called, so a panic fails the test).
#[test]
fn truncated_files_never_panic() {
    let wav = tone_wav(16000, 2, 0.25);
    for file in [FLAC, MP3, OGG, &wav[..]] {
        let step = (file.len() / 31).max(1);
        for cut in (0..file.len()).step_by(step) {
            if let Ok(pcm) = decode_unguarded(&file[..cut], None) {
                assert!(pcm.len() <= 8160);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random bytes, alone or after a real file's first bytes: never a panic.
    #[test]
    fn garbage_never_panics(
        junk in prop::collection::vec(any::<u8>(), 0..3000),
        head in 0usize..5,
        keep in 0usize..200,
    ) {
        let mut bytes = match head {
            0 => Vec::new(),
            1 => FLAC[..keep.min(FLAC.len())].to_vec(),
            2 => MP3[..keep.min(MP3.len())].to_vec(),
            3 => OGG[..keep.min(OGG.len())].to_vec(),
            _ => tone_wav(8000, 1, 0.01)[..44].to_vec(),
        };
        bytes.extend_from_slice(&junk);
        let _ = decode_unguarded(&bytes, None);
    }

    /// Random bytes written over the middle of a real file: never a panic.
    #[test]
    fn corrupted_files_never_panic(
        which in 0usize..3,
        at in 0usize..4000,
        junk in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut bytes = [FLAC, MP3, OGG][which].to_vec();
        let at = at % bytes.len();
        let end = (at + junk.len()).min(bytes.len());
        bytes[at..end].copy_from_slice(&junk[..end - at]);
        let _ = decode_unguarded(&bytes, None);
    }
}

/// An ID3v2 tag of 1.5 MB (cover art, say) full of bytes that look like MPEG sync words: the
/// probe must skip the tag as a whole (symphonia's `id3v2` feature), not scan through it.
#[test]
fn mp3_behind_a_large_id3_tag_is_decoded() {
    let data: Vec<u8> = (0..1_500_000u32)
        .map(|i| [0xFF, 0xFB, 0x90, 0x64][i as usize % 4])
        .collect();
    let mut frame = b"PRIV".to_vec();
    frame.extend_from_slice(&(data.len() as u32 + 6).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(b"cover\0");
    frame.extend_from_slice(&data);
    let size = frame.len() as u32;
    // ID3v2.3 header: the tag size in four 7-bit ("syncsafe") bytes.
    let mut mp3 = b"ID3\x03\x00\x00".to_vec();
    mp3.extend((0..4).rev().map(|i| ((size >> (7 * i)) & 0x7F) as u8));
    mp3.extend_from_slice(&frame);
    mp3.extend_from_slice(MP3);
    assert_tone_600(
        &decode_prompt(&mp3, Some("mp3")).expect("decodes"),
        "mp3 behind a big tag",
    );
}
