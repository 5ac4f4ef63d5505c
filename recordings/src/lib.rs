//! `masterz-recordings`: the call recorder — timestamped frames to stereo WAV, crash recovery,
//! and the storage layout.
//!
//! # Contract
//!
//! This crate is **pure**: it never opens a file or a socket, reads a clock or draws random
//! numbers. The recorder thread in `src/` owns the files and feeds this crate decoded 8 kHz frames
//! (left: customer, right: agent) with their RTP timestamps; what to write comes back out. Dates and
//! times are passed in.
//!
//! `clippy.toml` in this crate forbids `Instant::now`, `SystemTime::now` and thread RNGs.
//!
//! What exists today: the storage layout ([`layout`]). The recorder and crash recovery follow in the
//! recording work.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod align;
pub mod layout;
pub mod prompt;
pub mod repair;
pub mod wav;

pub use align::{AlignConfig, AlignStats, Aligner, Channel, ChannelStats, Frame};
pub use prompt::{MAX_PROMPT_SECS, PromptError, decode_prompt};
pub use repair::{RepairError, Repaired, repair};
pub use wav::{RecordingError, StereoWav, WavSummary};

/// The sample rate of everything this crate records (narrowband telephony).
pub const SAMPLE_RATE: u32 = 8000;
