//! Announcement prompts (the recording-consent message a business uploads): any WAV, MP3, FLAC
//! or Ogg Vorbis file decoded to what the media engine plays into a call — mono 16-bit PCM at
//! 8 kHz.
//!
//! The file is untrusted input: every failure is a [`PromptError`], the duration is capped at
//! [`MAX_PROMPT_SECS`] while decoding (a small file cannot expand into gigabytes), and a panic
//! inside the decoders is caught and reported as [`PromptError::Corrupt`].

use std::io::Cursor;

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Resampler, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::SAMPLE_RATE;

/// The longest prompt accepted, in seconds.
pub const MAX_PROMPT_SECS: u32 = 120;

/// The highest input sample rate accepted (it bounds the memory a long prompt takes while it is
/// decoded: 120 s at 192 kHz is 92 MB of `f32`).
pub const MAX_INPUT_RATE: u32 = 192_000;

/// Packets that fail to decode before the file is taken for corrupt (a few bad frames in an MP3
/// are common and skipped).
const MAX_BAD_PACKETS: u32 = 32;

/// Why an uploaded prompt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// Not a WAV, MP3, FLAC or Ogg Vorbis file, or a variant of one that is not supported.
    #[error("unsupported audio file: {0}")]
    Unsupported(String),
    /// The file is damaged or cut short.
    #[error("corrupt audio file: {0}")]
    Corrupt(String),
    /// Longer than [`MAX_PROMPT_SECS`].
    #[error("the prompt is longer than {MAX_PROMPT_SECS} seconds")]
    TooLong,
    /// No audio at all.
    #[error("the prompt contains no audio")]
    Empty,
}

/// Decodes an uploaded prompt to mono 16-bit PCM at 8 kHz.
///
/// The format is probed from the content (`extension_hint`, e.g. `Some("mp3")`, only breaks
/// ties); the first audio track is decoded, its channels averaged, resampled to 8 kHz with a sinc
/// resampler (8 kHz input passes through untouched) and clamped to 16 bits.
pub fn decode_prompt(bytes: &[u8], extension_hint: Option<&str>) -> Result<Vec<i16>, PromptError> {
    // The decoders are large and parse untrusted input; a bug in one must not take down the
    // caller. The closure only reads its inputs, so nothing is left half-updated by a panic.
    std::panic::catch_unwind(|| decode_unguarded(bytes, extension_hint))
        .unwrap_or_else(|_| Err(PromptError::Corrupt("the decoder failed".into())))
}

fn decode_unguarded(bytes: &[u8], extension_hint: Option<&str>) -> Result<Vec<i16>, PromptError> {
    let (mono, rate) = decode_mono(bytes, extension_hint)?;
    if mono.is_empty() {
        return Err(PromptError::Empty);
    }
    let mut out: Vec<i16> = if rate == SAMPLE_RATE {
        mono.iter().map(|&x| to_i16(x)).collect()
    } else {
        resample(&mono, rate)?.iter().map(|&x| to_i16(x)).collect()
    };
    // The input was within the limit; rounding in the resampler may add a sample or two.
    out.truncate((MAX_PROMPT_SECS * SAMPLE_RATE) as usize);
    if out.is_empty() {
        return Err(PromptError::Empty);
    }
    Ok(out)
}

/// Decodes the first audio track to mono `f32` at its own rate.
fn decode_mono(bytes: &[u8], extension_hint: Option<&str>) -> Result<(Vec<f32>, u32), PromptError> {
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension_hint {
        hint.with_extension(ext.trim_start_matches('.'));
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(classify)?;
    let track = format
        .default_track(TrackType::Audio)
        .or_else(|| {
            format
                .tracks()
                .iter()
                .find(|t| t.codec_params.as_ref().and_then(|p| p.audio()).is_some())
        })
        .ok_or_else(|| PromptError::Unsupported("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| PromptError::Unsupported("no audio track".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(classify)?;

    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    let mut rate: Option<u32> = None;
    let mut bad_packets = 0;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A chained Ogg stream: the first one is the prompt.
            Err(SymphoniaError::ResetRequired) => break,
            // A file cut inside its last packet keeps what was decoded before.
            Err(SymphoniaError::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof && !mono.is_empty() =>
            {
                break;
            }
            Err(e) => return Err(classify(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(audio) => audio,
            Err(SymphoniaError::DecodeError(what)) => {
                bad_packets += 1;
                if bad_packets > MAX_BAD_PACKETS {
                    return Err(PromptError::Corrupt(what.into()));
                }
                continue;
            }
            Err(e) => return Err(classify(e)),
        };
        let packet_rate = audio.spec().rate();
        let channels = audio.spec().channels().count();
        if packet_rate == 0 || packet_rate > MAX_INPUT_RATE {
            return Err(PromptError::Unsupported(format!(
                "sample rate {packet_rate} Hz"
            )));
        }
        if channels == 0 || audio.frames() == 0 {
            continue;
        }
        match rate {
            None => rate = Some(packet_rate),
            Some(r) if r != packet_rate => {
                return Err(PromptError::Unsupported(
                    "the sample rate changes within the file".into(),
                ));
            }
            Some(_) => {}
        }
        let limit = u64::from(MAX_PROMPT_SECS) * u64::from(packet_rate);
        if (mono.len() + audio.frames()) as u64 > limit {
            return Err(PromptError::TooLong);
        }
        audio.copy_to_vec_interleaved(&mut interleaved);
        let scale = 1.0 / channels as f32;
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
    }
    match rate {
        Some(rate) => Ok((mono, rate)),
        None if bad_packets > 0 => Err(PromptError::Corrupt("no packet decoded".into())),
        None => Err(PromptError::Empty),
    }
}

fn classify(e: SymphoniaError) -> PromptError {
    match e {
        SymphoniaError::Unsupported(what) => PromptError::Unsupported(what.into()),
        // The input is in memory: a read error means the file ended early.
        SymphoniaError::IoError(e) => PromptError::Corrupt(e.to_string()),
        e => PromptError::Corrupt(e.to_string()),
    }
}

/// Resamples mono audio from `rate` to 8 kHz with rubato's sinc resampler, trimmed to the input
/// (no leading delay, no tail).
fn resample(mono: &[f32], rate: u32) -> Result<Vec<f32>, PromptError> {
    let params = SincInterpolationParameters {
        sinc_len: 128,
        f_cutoff: None,
        interpolation: SincInterpolationType::Linear,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    let ratio = f64::from(SAMPLE_RATE) / f64::from(rate);
    let failed = |e: &dyn std::fmt::Display| PromptError::Unsupported(format!("resampling: {e}"));
    let mut resampler = Async::<f32>::new_sinc(ratio, 1.0, &params, 1024, 1, FixedAsync::Input)
        .map_err(|e| failed(&e))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| failed(&e))?;
    let out = resampler
        .process_all(&input, mono.len(), None)
        .map_err(|e| failed(&e))?;
    Ok(out.take_data())
}

/// Full scale is ±1.0 (symphonia's convention): scaled by 32768, rounded and clamped, which
/// gives 16-bit input back unchanged.
fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests;
