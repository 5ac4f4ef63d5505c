//! Uploaded announcement prompts (`masterz_recordings::decode_prompt`): byte 0 picks the
//! extension hint (none, wav, mp3, flac, ogg), the rest is the file. Any bytes are an error or
//! 8 kHz mono PCM that is not empty and not longer than `MAX_PROMPT_SECS`; never a panic.
//!
//! `decode_prompt` catches panics of the decoders (the unguarded function is private), but
//! libfuzzer-sys installs a panic hook that aborts before unwinding, so a panic inside symphonia
//! or rubato is still reported as a crash here. Hangs show as libFuzzer timeouts and unbounded
//! allocations as its `-rss_limit_mb` / `-malloc_limit_mb` crashes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use masterz_recordings::{MAX_PROMPT_SECS, SAMPLE_RATE, decode_prompt};

const HINTS: [Option<&str>; 5] = [None, Some("wav"), Some("mp3"), Some("flac"), Some("ogg")];

fuzz_target!(|data: &[u8]| {
    let (hint, file) = match data.split_first() {
        Some((&b, rest)) => (HINTS[usize::from(b) % HINTS.len()], rest),
        None => (None, data),
    };
    if let Ok(pcm) = decode_prompt(file, hint) {
        assert!(!pcm.is_empty(), "an empty prompt was accepted");
        let max = MAX_PROMPT_SECS as usize * SAMPLE_RATE as usize;
        assert!(pcm.len() <= max, "{} samples > {max}", pcm.len());
    }
});
