//! Files as a killed writer leaves them, cut anywhere, and garbage.

use super::*;
use crate::wav::{HEADER_BYTES, StereoWav};
use proptest::prelude::*;
use std::io::Cursor;

fn audio(frames: usize) -> Vec<i16> {
    (0..2 * frames)
        .map(|i| ((i * 7919) % 60000) as i16 ^ 0x55)
        .collect()
}

/// A recording of `frames` frames checkpointed every `every` frames, its writer killed at the
/// end (never finished): what is on disk.
fn killed(frames: usize, every: usize) -> (Vec<u8>, Vec<i16>) {
    let samples = audio(frames);
    let mut buf = Cursor::new(Vec::new());
    let mut w = StereoWav::new(&mut buf).expect("new");
    for (i, chunk) in samples.chunks(2 * 160).enumerate() {
        w.append(chunk).expect("append");
        if every > 0 && (i + 1) * 160 % every == 0 {
            w.checkpoint().expect("checkpoint");
        }
    }
    // No Drop, no finish: the process died.
    std::mem::forget(w);
    (buf.into_inner(), samples)
}

/// Repairs, truncates as the driver would, and reads the result back with hound.
fn repair_and_read(mut bytes: Vec<u8>) -> (Repaired, Vec<i16>, hound::WavSpec) {
    let len = bytes.len() as u64;
    let mut c = Cursor::new(&mut bytes);
    let r = repair(&mut c, len).expect("repairable");
    assert!(r.valid_len <= len);
    bytes.truncate(r.valid_len as usize);
    let mut reader = hound::WavReader::new(Cursor::new(&bytes)).expect("hound opens it");
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("samples");
    let spec = reader.spec();
    assert_eq!(u64::from(reader.duration()), r.frames);
    (r, samples, spec)
}

#[test]
fn a_file_cut_after_the_header_repairs_to_zero_frames() {
    let (bytes, _) = killed(1600, 0);
    let (r, samples, _) = repair_and_read(bytes[..HEADER_BYTES as usize].to_vec());
    assert_eq!((r.frames, r.valid_len, r.changed), (0, 44, true));
    assert!(samples.is_empty());
}

#[test]
fn a_never_checkpointed_file_recovers_everything() {
    let (bytes, samples) = killed(8000, 0);
    assert_eq!(
        &bytes[40..44],
        &[0, 0, 0, 0],
        "hound's header still says 0 bytes"
    );
    let (r, got, spec) = repair_and_read(bytes);
    assert_eq!(r.frames, 8000);
    assert_eq!(r.duration_ms, 1000);
    assert!(r.changed);
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
    assert_eq!(got, samples);
}

#[test]
fn a_cut_mid_frame_drops_the_partial_frame() {
    let (bytes, samples) = killed(3200, 800);
    for extra in 1..4 {
        let cut = 44 + 4 * 1000 + extra;
        let (r, got, _) = repair_and_read(bytes[..cut].to_vec());
        assert_eq!(r.frames, 1000);
        assert_eq!(r.valid_len, 44 + 4000);
        assert_eq!(got, &samples[..2000]);
    }
}

#[test]
fn a_cut_between_checkpoints_recovers_up_to_the_cut() {
    // Checkpointed at 1600 and 3200 frames; killed at 4000.
    let (bytes, samples) = killed(4000, 1600);
    let (r, got, _) = repair_and_read(bytes);
    assert_eq!(r.frames, 4000);
    assert_eq!(got, samples);
}

#[test]
fn a_header_claiming_more_than_present_is_shrunk() {
    let mut bytes = Vec::new();
    {
        let mut w = StereoWav::new(Cursor::new(&mut bytes)).expect("new");
        w.append(&audio(2000)).expect("append");
        w.finish().expect("finish");
    }
    // The file lost its tail (a copy cut short), so the header claims 2000 frames.
    bytes.truncate(44 + 4 * 1500 + 2);
    let (r, got, _) = repair_and_read(bytes);
    assert_eq!(r.frames, 1500);
    assert_eq!(got, &audio(2000)[..3000]);
}

#[test]
fn a_streaming_header_of_all_ones_is_rewritten() {
    let (mut bytes, samples) = killed(800, 0);
    bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
    let (r, got, _) = repair_and_read(bytes);
    assert_eq!(r.frames, 800);
    assert_eq!(got, samples);
}

#[test]
fn a_valid_file_is_left_alone() {
    let mut bytes = Vec::new();
    {
        let mut w = StereoWav::new(Cursor::new(&mut bytes)).expect("new");
        w.append(&audio(500)).expect("append");
        w.finish().expect("finish");
    }
    let before = bytes.clone();
    let (r, _, _) = repair_and_read(bytes.clone());
    assert_eq!((r.frames, r.changed, r.valid_len), (500, false, 44 + 2000));
    let len = bytes.len() as u64;
    repair(&mut Cursor::new(&mut bytes), len).expect("repair");
    assert_eq!(bytes, before);
}

/// Builds a WAV by hand: `fmt ` (16-bit PCM), optional chunks around `data`.
fn handmade(channels: u16, rate: u32, before: &[u8], data: &[u8], after: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(b"WAVE");
    b.extend_from_slice(b"fmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    b.extend_from_slice(&(2 * channels).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(before);
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b.extend_from_slice(after);
    let riff = (b.len() - 8) as u32;
    b[4..8].copy_from_slice(&riff.to_le_bytes());
    b
}

/// A LIST chunk; an odd `size` is followed by its pad byte.
fn list_chunk(size: u32) -> Vec<u8> {
    let mut c = b"LIST".to_vec();
    c.extend_from_slice(&size.to_le_bytes());
    c.extend((0..size + (size & 1)).map(|i| b"INFO"[i as usize % 4]));
    c
}

#[test]
fn other_channel_counts_rates_and_chunks_are_understood() {
    // Mono 16 kHz with a LIST chunk before the data, cut mid-sample.
    let data: Vec<u8> = (0..3201u32).map(|i| i as u8).collect();
    let mut bytes = handmade(1, 16000, &list_chunk(4), &data, &[]);
    let data_size_at = bytes.len() - data.len() - 4;
    bytes[data_size_at..data_size_at + 4].copy_from_slice(&0u32.to_le_bytes());
    let (r, got, spec) = repair_and_read(bytes);
    assert_eq!((spec.channels, spec.sample_rate), (1, 16000));
    assert_eq!((r.frames, r.duration_ms), (1600, 100));
    assert_eq!(got.len(), 1600);
}

#[test]
fn metadata_after_the_data_of_a_finished_file_is_kept() {
    let data = vec![7u8; 400];
    let bytes = handmade(2, 8000, &[], &data, &list_chunk(4));
    let (r, _, _) = repair_and_read(bytes.clone());
    assert_eq!(
        (r.frames, r.changed, r.valid_len),
        (100, false, bytes.len() as u64)
    );
}

/// Chunks of odd size are followed by a pad byte (hound does not read those; checked by hand).
#[test]
fn odd_sized_chunks_are_padded() {
    let data = vec![1u8; 40];
    let mut bytes = handmade(2, 8000, &list_chunk(5), &data, &list_chunk(3));
    let len = bytes.len();
    let r = repair(&mut Cursor::new(&mut bytes), len as u64).expect("repair");
    assert_eq!((r.frames, r.changed, r.valid_len), (10, false, len as u64));
    // The same without the trailing chunk's pad byte.
    bytes.pop();
    let r = repair_bytes(bytes).expect("repair");
    assert_eq!((r.frames, r.changed), (10, true));
}

fn repair_bytes(mut bytes: Vec<u8>) -> Result<Repaired, RepairError> {
    let len = bytes.len() as u64;
    repair(&mut Cursor::new(&mut bytes), len)
}

#[test]
fn what_cannot_be_repaired_is_a_typed_error() {
    assert!(matches!(
        repair_bytes(Vec::new()),
        Err(RepairError::Truncated { len: 0 })
    ));
    assert!(matches!(
        repair_bytes(b"RIFF\0\0".to_vec()),
        Err(RepairError::Truncated { .. })
    ));
    assert!(matches!(
        repair_bytes(b"ID3\x04 hello".to_vec()),
        Err(RepairError::NotWav)
    ));
    assert!(matches!(
        repair_bytes(b"RIFF\0\0\0\0AVI LIST".to_vec()),
        Err(RepairError::NotWav)
    ));
    let (bytes, _) = killed(10, 0);
    for cut in 12..44 {
        let e = repair_bytes(bytes[..cut].to_vec()).expect_err("header cut");
        assert!(matches!(e, RepairError::Truncated { .. }), "cut {cut}: {e}");
    }
    // No data chunk; no fmt chunk.
    let no_data = handmade(2, 8000, &list_chunk(2), &[], &[])[..46].to_vec();
    assert!(matches!(
        repair_bytes(no_data),
        Err(RepairError::Truncated { len: 46 })
    ));
    let mut no_fmt = b"RIFF\0\0\0\0WAVEdata\0\0\0\0".to_vec();
    no_fmt.extend_from_slice(&[0; 64]);
    assert!(matches!(repair_bytes(no_fmt), Err(RepairError::MissingFmt)));
    // 8-bit and float.
    let mut eight = handmade(1, 8000, &[], &[0; 10], &[]);
    eight[34] = 8;
    assert!(matches!(
        repair_bytes(eight),
        Err(RepairError::Unsupported {
            bits_per_sample: 8,
            ..
        })
    ));
    let mut float = handmade(1, 8000, &[], &[0; 10], &[]);
    float[20] = 3;
    assert!(matches!(
        repair_bytes(float),
        Err(RepairError::Unsupported { format_tag: 3, .. })
    ));
    let mut zero_channels = handmade(1, 8000, &[], &[0; 10], &[]);
    zero_channels[22] = 0;
    assert!(matches!(
        repair_bytes(zero_channels),
        Err(RepairError::BadFmt(_))
    ));
}

proptest! {
    /// Cut anywhere: either the header is incomplete (a typed error) or the file repairs to
    /// exactly the whole frames before the cut, and hound reads them.
    #[test]
    fn any_cut_point_repairs_to_the_frames_before_it(cut in 0usize..(44 + 4 * 2400 + 1), every in 0usize..4) {
        let (bytes, samples) = killed(2400, every * 480);
        let bytes = bytes[..cut].to_vec();
        if cut < 44 {
            prop_assert!(repair_bytes(bytes).is_err());
        } else {
            let (r, got, _) = repair_and_read(bytes);
            let frames = (cut - 44) / 4;
            prop_assert_eq!(r.frames, frames as u64);
            prop_assert_eq!(&got[..], &samples[..2 * frames]);
        }
    }

    /// Garbage never panics, with or without a plausible RIFF/WAVE/fmt start.
    #[test]
    fn garbage_never_panics(tail in prop::collection::vec(any::<u8>(), 0..300), prefix in 0usize..4) {
        let mut bytes = match prefix {
            0 => Vec::new(),
            1 => b"RIFF\xff\xff\xff\xffWAVE".to_vec(),
            2 => handmade(2, 8000, &[], &[], &[])[..36].to_vec(),
            _ => handmade(1, 8000, &[], &[], &[])[..44].to_vec(),
        };
        bytes.extend_from_slice(&tail);
        let len = bytes.len() as u64;
        if let Ok(r) = repair_bytes(bytes) {
            prop_assert!(r.valid_len <= len);
        }
    }
}
