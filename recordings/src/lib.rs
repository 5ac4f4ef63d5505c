//! `masterz-recordings`: the call recorder — timestamped frames to a stereo WAV file, crash
//! recovery of that file, announcement prompts decoded for playback, and the storage layout.
//!
//! # Contract
//!
//! This crate is **pure**: it never opens a file or a socket, reads a clock or draws random
//! numbers. The recorder thread in `src/` owns the files (passed in as `Read`/`Write`/`Seek`)
//! and the clock (passed in as sample counts), and feeds this crate decoded 8 kHz frames with
//! their RTP timestamps. `clippy.toml` in this crate forbids `Instant::now`, `SystemTime::now`
//! and thread RNGs.
//!
//! # What is here
//!
//! * [`align`] — the [`Aligner`]: customer and agent frames (left and right) placed by RTP
//!   timestamp on one timeline, reordering within a window, silence for what nobody sent, so
//!   the output is exactly as long as the call. Its module docs give the placement rules.
//! * [`wav`] — [`StereoWav`]: 8 kHz stereo 16-bit PCM, one write per append, checkpoints that
//!   make the header valid for everything so far.
//! * [`repair`](mod@repair) — [`repair()`]: a file whose writer was killed gets its sizes rewritten to the
//!   audio actually present.
//! * [`prompt`] — [`decode_prompt`]: an uploaded WAV, MP3, FLAC or Ogg Vorbis announcement to
//!   8 kHz mono PCM.
//! * [`layout`] — where a recording lives under the data directory.
//!
//! # Drive loop (one call)
//!
//! ```text
//! start:      file = Arc::new(create(layout::recording_path(..)))
//!             wav = StereoWav::new(BufWriter::new(file.clone()))?
//!             aligner = Aligner::new(AlignConfig::default()); t0 = the driver's clock
//! each frame: aligner.push(Frame { channel, ssrc, timestamp, arrival: samples since t0, samples })
//! each tick:  aligner.drain(now, &mut buf); wav.append(&buf)?; buf.clear()   (every 20–100 ms)
//! each 1 s:   wav.checkpoint()?                                              (a crash loses ≤ 1 s)
//! hang-up:    aligner.finish(now, &mut buf); wav.append(&buf)?; wav.finish()? -> WavSummary
//!             file.sync_all()
//! on restart: for each unfinished file: repair(&mut file, len)?; file.set_len(valid_len)
//! ```
//!
//! Costs, measured by `benches/recorder.rs` on the project's 2-core machine: about 1.3 µs of
//! aligner work and 0.5 µs of WAV append (into memory) per 20 ms of a call, so about 0.01 % of
//! one core per recorded call, before file I/O.

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
