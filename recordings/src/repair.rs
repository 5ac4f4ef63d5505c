//! Crash recovery: a WAV file whose writer was killed has a header describing the audio as of
//! the last checkpoint (or none at all), followed by more audio. [`repair`] rewrites the RIFF
//! and `data` sizes to match the bytes actually present, and says where the last whole frame
//! ends so that the driver can truncate a partial one.
//!
//! It accepts any 16-bit PCM WAV (any channel count and rate), not only this crate's own, and it
//! never panics on garbage: every malformation is a [`RepairError`].

use std::io::{Read, Seek, SeekFrom, Write};

/// The result of [`repair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repaired {
    /// Whole frames (one sample per channel) in the repaired file.
    pub frames: u64,
    /// Their duration in milliseconds (rounded down), at the file's own sample rate.
    pub duration_ms: u64,
    /// The length the file must be truncated to: it drops a partial trailing frame (and what a
    /// WAV header cannot describe beyond 4 GiB). Equal to the input length when nothing is cut.
    pub valid_len: u64,
    /// Whether the header was rewritten or the file must be truncated.
    pub changed: bool,
}

/// Why a file could not be repaired.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// Reading or writing the file failed (also: the file is shorter than `file_len` said).
    #[error("repairing the recording failed: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with a RIFF/WAVE header.
    #[error("not a WAV file")]
    NotWav,
    /// The file ends before a `data` chunk starts (the writer died while writing the header, or
    /// the file has no audio): there is no audio to recover.
    #[error("the WAV file ends at {len} bytes without a data chunk")]
    Truncated {
        /// The file's length.
        len: u64,
    },
    /// No `fmt ` chunk before the `data` chunk.
    #[error("the WAV file has no fmt chunk before its data")]
    MissingFmt,
    /// The `fmt ` chunk is malformed.
    #[error("malformed fmt chunk: {0}")]
    BadFmt(&'static str),
    /// Not 16-bit integer PCM.
    #[error("unsupported WAV format {format_tag:#06x} with {bits_per_sample} bits per sample")]
    Unsupported {
        /// The format tag (1 = PCM, 0xFFFE = extensible).
        format_tag: u16,
        /// Bits per sample.
        bits_per_sample: u16,
    },
}

const WAVE_FORMAT_PCM: u16 = 1;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// How many chunks after `data` are walked before the tail is taken for audio.
const MAX_TRAILING_CHUNKS: usize = 64;

#[derive(Clone, Copy, Debug)]
struct Fmt {
    channels: u16,
    sample_rate: u32,
}

impl Fmt {
    fn block_align(self) -> u64 {
        2 * u64::from(self.channels)
    }
}

/// Repairs the header of the WAV file `file` of `file_len` bytes in place (see the
/// [module docs](self)); the caller then truncates it to [`Repaired::valid_len`].
///
/// The `data` chunk is taken to run to the end of the file — the writer appends audio last —
/// unless its declared size is right and well-formed chunks follow it up to the end exactly
/// (a finished file with metadata after the audio), which is then left as it is.
pub fn repair<F: Read + Write + Seek>(
    file: &mut F,
    file_len: u64,
) -> Result<Repaired, RepairError> {
    let mut magic = [0u8; 12];
    let head = file_len.min(12) as usize;
    read_at(file, 0, &mut magic[..head])?;
    if magic[..head.min(4)] != b"RIFF"[..head.min(4)]
        || (head > 8 && magic[8..head] != b"WAVE"[..head - 8])
    {
        return Err(RepairError::NotWav);
    }
    if file_len < 12 {
        return Err(RepairError::Truncated { len: file_len });
    }

    let mut fmt = None;
    let mut off = 12u64;
    let (data_start, declared) = loop {
        // At the end, past it (the previous chunk was cut) or inside a chunk header.
        if off + 8 > file_len {
            return Err(RepairError::Truncated { len: file_len });
        }
        let mut header = [0u8; 8];
        read_at(file, off, &mut header)?;
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body = off + 8;
        match &header[..4] {
            b"data" => break (body, size),
            b"fmt " => {
                let len = usize::try_from(size.min(40)).unwrap_or(40);
                if size < 16 {
                    return Err(RepairError::BadFmt("shorter than 16 bytes"));
                }
                if body + len as u64 > file_len {
                    return Err(RepairError::Truncated { len: file_len });
                }
                let mut buf = [0u8; 40];
                read_at(file, body, &mut buf[..len])?;
                fmt = Some(parse_fmt(&buf[..len])?);
            }
            _ => {}
        }
        off = body + u64::from(size) + u64::from(size & 1);
    };
    let fmt = fmt.ok_or(RepairError::MissingFmt)?;
    let block = fmt.block_align();
    let avail = file_len - data_start;

    let keeps_trailing_chunks = declared != 0
        && file_len - 8 <= u64::from(u32::MAX)
        && u64::from(declared) < avail
        && u64::from(declared) % block == 0
        && chunks_end_at(file, data_start + padded(declared), file_len)?;
    let (frames, valid_len) = if keeps_trailing_chunks {
        (u64::from(declared) / block, file_len)
    } else {
        // The RIFF size counts everything after its own field; it must fit in 32 bits.
        let max_data = u64::from(u32::MAX) - (data_start - 8);
        let frames = avail.min(max_data) / block;
        (frames, data_start + frames * block)
    };
    // Both fit by construction: `valid_len − 8` is at most `(data_start − 8) + max_data`, which
    // is `u32::MAX`, or `file_len − 8`, checked above.
    let riff_size = u32::try_from(valid_len - 8).unwrap_or(u32::MAX);
    let data_size = u32::try_from(frames * block).unwrap_or(u32::MAX);

    let old_riff = u32::from_le_bytes([magic[4], magic[5], magic[6], magic[7]]);
    let mut rewrote = false;
    if old_riff != riff_size {
        write_at(file, 4, &riff_size.to_le_bytes())?;
        rewrote = true;
    }
    if declared != data_size {
        write_at(file, data_start - 4, &data_size.to_le_bytes())?;
        rewrote = true;
    }
    if rewrote {
        file.flush()?;
    }
    Ok(Repaired {
        frames,
        duration_ms: frames * 1000 / u64::from(fmt.sample_rate),
        valid_len,
        changed: rewrote || valid_len != file_len,
    })
}

fn parse_fmt(b: &[u8]) -> Result<Fmt, RepairError> {
    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let format_tag = u16_at(0);
    let channels = u16_at(2);
    let sample_rate = u32_at(4);
    let block_align = u16_at(12);
    let bits_per_sample = u16_at(14);
    let pcm = match format_tag {
        WAVE_FORMAT_PCM => true,
        // WAVEFORMATEXTENSIBLE: cbSize, valid bits, channel mask, then the sub-format GUID,
        // whose first two bytes are the plain format tag.
        WAVE_FORMAT_EXTENSIBLE => b.len() >= 40 && u16_at(24) == WAVE_FORMAT_PCM,
        _ => false,
    };
    if !pcm || bits_per_sample != 16 {
        return Err(RepairError::Unsupported {
            format_tag,
            bits_per_sample,
        });
    }
    if channels == 0 {
        return Err(RepairError::BadFmt("no channels"));
    }
    if sample_rate == 0 {
        return Err(RepairError::BadFmt("sample rate 0"));
    }
    if u32::from(block_align) != 2 * u32::from(channels) {
        return Err(RepairError::BadFmt(
            "block align is not 2 bytes per channel",
        ));
    }
    Ok(Fmt {
        channels,
        sample_rate,
    })
}

fn padded(size: u32) -> u64 {
    u64::from(size) + u64::from(size & 1)
}

/// Whether well-formed chunks (printable four-character ids) run from `off` to exactly `end`.
fn chunks_end_at<F: Read + Seek>(file: &mut F, mut off: u64, end: u64) -> std::io::Result<bool> {
    for _ in 0..MAX_TRAILING_CHUNKS {
        if off + 8 > end {
            return Ok(false);
        }
        let mut header = [0u8; 8];
        read_at(file, off, &mut header)?;
        if !header[..4]
            .iter()
            .all(|c| c.is_ascii_graphic() || *c == b' ')
        {
            return Ok(false);
        }
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let body_end = off + 8 + u64::from(size);
        // The pad byte of the last chunk is sometimes missing.
        if body_end == end || body_end + u64::from(size & 1) == end {
            return Ok(true);
        }
        off = body_end + u64::from(size & 1);
    }
    Ok(false)
}

fn read_at<F: Read + Seek>(file: &mut F, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

fn write_at<F: Write + Seek>(file: &mut F, at: u64, buf: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(buf)
}

#[cfg(test)]
mod tests;
