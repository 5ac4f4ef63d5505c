//! The recording file: 8 kHz stereo 16-bit PCM WAV (left: customer, right: agent), written as
//! the aligner emits it, with a header made valid at every checkpoint so that a crash loses at
//! most the audio since the last one ([`crate::repair()`] recovers that too).
//!
//! `StereoWav` is generic over the writer. hound does no buffering of its own, so an unbuffered
//! file costs one `write` system call per [`StereoWav::append`]: the driver passes a
//! `BufWriter<Arc<File>>` (`Arc<File>` is `Write + Seek`) and keeps a clone of the `Arc` to
//! `sync_all` after [`StereoWav::finish`], which flushes but cannot hand the writer back.

use std::io::{Seek, Write};

use crate::SAMPLE_RATE;

/// Bytes of the header hound writes for 16-bit stereo PCM: RIFF, a 16-byte `fmt ` chunk and the
/// `data` chunk header.
pub const HEADER_BYTES: u64 = 44;

/// Bytes per stereo frame (two 16-bit samples).
const FRAME_BYTES: u64 = 4;

/// The most stereo frames a WAV file can hold: its sizes are 32-bit (about 37 hours at 8 kHz).
pub const MAX_FRAMES: u64 = (u32::MAX as u64 - (HEADER_BYTES - 8)) / FRAME_BYTES;

/// Why the recording file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The writer failed.
    #[error("writing the recording failed: {0}")]
    Io(#[from] std::io::Error),
    /// hound refused (it cannot for the fixed format used here; kept for completeness).
    #[error("writing the WAV file failed: {0}")]
    Wav(hound::Error),
    /// An odd number of samples was appended: the input must be interleaved L/R pairs.
    #[error("append of {samples} samples: not whole stereo frames")]
    NotInterleaved {
        /// The number of samples passed.
        samples: usize,
    },
    /// The file would exceed the 4 GiB a WAV header can describe ([`MAX_FRAMES`]).
    #[error("the recording is full: {frames} frames is the most a WAV file can hold")]
    Full {
        /// The frames written so far.
        frames: u64,
    },
}

impl From<hound::Error> for RecordingError {
    fn from(e: hound::Error) -> Self {
        match e {
            hound::Error::IoError(e) => RecordingError::Io(e),
            e => RecordingError::Wav(e),
        }
    }
}

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavSummary {
    /// Stereo frames (sample positions) written.
    pub frames: u64,
    /// Their duration in milliseconds (rounded down).
    pub duration_ms: u64,
    /// The size of the file in bytes, header included.
    pub bytes: u64,
}

impl WavSummary {
    fn of(frames: u64) -> Self {
        WavSummary {
            frames,
            duration_ms: frames * 1000 / u64::from(SAMPLE_RATE),
            bytes: HEADER_BYTES + frames * FRAME_BYTES,
        }
    }
}

/// An 8 kHz stereo 16-bit PCM WAV file being written.
pub struct StereoWav<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    frames: u64,
}

impl<W: Write + Seek> std::fmt::Debug for StereoWav<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StereoWav")
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Seek> StereoWav<W> {
    /// Writes the header (with no data yet) at the writer's position, which must be 0.
    pub fn new(w: W) -> Result<Self, RecordingError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(StereoWav {
            writer: hound::WavWriter::new(w, spec)?,
            frames: 0,
        })
    }

    /// Appends interleaved L/R samples (as [`crate::Aligner::drain`] produces them) in one write.
    pub fn append(&mut self, interleaved: &[i16]) -> Result<(), RecordingError> {
        if !interleaved.len().is_multiple_of(2) {
            return Err(RecordingError::NotInterleaved {
                samples: interleaved.len(),
            });
        }
        if interleaved.is_empty() {
            return Ok(());
        }
        let frames = (interleaved.len() / 2) as u64;
        if self.frames + frames > MAX_FRAMES {
            return Err(RecordingError::Full {
                frames: self.frames,
            });
        }
        // Fits: the total is below 2^32 bytes, checked just above.
        let count = interleaved.len() as u32;
        // hound's 16-bit writer fills a recycled buffer and writes it with one `write_all`; it
        // panics only if fewer or more samples than `count` are written, and we write exactly
        // `count`.
        let mut samples = self.writer.get_i16_writer(count);
        for &s in interleaved {
            samples.write_sample(s);
        }
        samples.flush()?;
        self.frames += frames;
        Ok(())
    }

    /// Makes the header valid for everything appended so far and flushes the writer: after a
    /// crash the file reads back at least up to here. Call it about once a second.
    pub fn checkpoint(&mut self) -> Result<(), RecordingError> {
        self.writer.flush()?;
        Ok(())
    }

    /// Stereo frames appended so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Writes the final header and flushes.
    pub fn finish(self) -> Result<WavSummary, RecordingError> {
        let frames = self.frames;
        self.writer.finalize()?;
        Ok(WavSummary::of(frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tone(frames: usize, phase: usize) -> Vec<i16> {
        (0..frames)
            .flat_map(|i| {
                let v = (((i + phase) * 37) % 20000) as i16 - 10000;
                [v, -v / 2]
            })
            .collect()
    }

    fn read_back(bytes: &[u8]) -> (hound::WavSpec, Vec<i16>) {
        let mut r = hound::WavReader::new(Cursor::new(bytes)).expect("valid wav");
        let spec = r.spec();
        let samples = r
            .samples::<i16>()
            .collect::<Result<Vec<_>, _>>()
            .expect("samples");
        (spec, samples)
    }

    #[test]
    fn written_audio_reads_back_with_hound() {
        let mut buf = Cursor::new(Vec::new());
        let mut w = StereoWav::new(&mut buf).expect("new");
        let mut all = Vec::new();
        for k in 0..50 {
            let chunk = tone(160, k * 160);
            w.append(&chunk).expect("append");
            all.extend_from_slice(&chunk);
            if k % 10 == 9 {
                w.checkpoint().expect("checkpoint");
            }
        }
        assert_eq!(w.frames(), 8000);
        let summary = w.finish().expect("finish");
        assert_eq!(
            summary,
            WavSummary {
                frames: 8000,
                duration_ms: 1000,
                bytes: 44 + 32000
            }
        );
        let (spec, samples) = read_back(buf.get_ref());
        assert_eq!(spec.channels, 2);
        assert_eq!(samples, all);
    }

    #[test]
    fn finish_returns_the_summary_and_a_valid_file() {
        let mut buf = Cursor::new(Vec::new());
        let mut w = StereoWav::new(&mut buf).expect("new");
        let a = tone(4000, 0);
        w.append(&a).expect("append");
        w.append(&[]).expect("empty append");
        let summary = w.finish().expect("finish");
        assert_eq!(summary.frames, 4000);
        assert_eq!(summary.duration_ms, 500);
        assert_eq!(summary.bytes, buf.get_ref().len() as u64);
        let (spec, samples) = read_back(buf.get_ref());
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (2, 8000, 16)
        );
        assert_eq!(samples, a);
    }

    #[test]
    fn a_checkpointed_header_reads_back_exactly_the_frames_before_it() {
        let mut buf = Cursor::new(Vec::new());
        let mut w = StereoWav::new(&mut buf).expect("new");
        let before = tone(1200, 3);
        w.append(&before).expect("append");
        w.checkpoint().expect("checkpoint");
        // More audio after the checkpoint, then the writer dies without finishing.
        w.append(&tone(700, 9)).expect("append");
        std::mem::forget(w);
        let mut bytes = buf.into_inner();
        // What hound leaves on disk when killed: the header as of the checkpoint.
        let (_, samples) = read_back(&bytes[..HEADER_BYTES as usize + before.len() * 2]);
        assert_eq!(samples, before);
        // Read through the whole file: the header still claims only the checkpointed frames.
        let (_, samples) = read_back(&bytes);
        assert_eq!(samples, before);
        bytes.truncate(10);
        assert!(hound::WavReader::new(Cursor::new(&bytes)).is_err());
    }

    #[test]
    fn the_drivers_writer_type_fits() {
        fn writer<W: Write + Seek>() {}
        writer::<std::io::BufWriter<std::sync::Arc<std::fs::File>>>();
    }

    #[test]
    fn odd_appends_are_refused() {
        let mut w = StereoWav::new(Cursor::new(Vec::new())).expect("new");
        assert!(matches!(
            w.append(&[1, 2, 3]),
            Err(RecordingError::NotInterleaved { samples: 3 })
        ));
        assert_eq!(w.frames(), 0);
    }
}
