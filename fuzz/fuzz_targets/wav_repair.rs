//! Recordings a crash left behind (`masterz_recordings::repair`): any bytes are an error or a
//! repair, never a panic. A repair rewrites only the RIFF and `data` sizes; the file cut to
//! `valid_len` holds the `frames` whole frames it reports, hound reads it with exactly that
//! duration, and repairing it again changes nothing.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use masterz_recordings::repair;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let mut file = Cursor::new(data.to_vec());
    let Ok(repaired) = repair(&mut file, len) else {
        return;
    };
    let bytes = file.into_inner();
    assert_eq!(bytes.len(), data.len(), "repair changed the length");
    assert!(repaired.valid_len <= len, "{repaired:?} of {len} bytes");
    let valid_len = usize::try_from(repaired.valid_len).unwrap();
    let out = &bytes[..valid_len];

    // The layout, walked independently (RIFF chunks, padded to even sizes, up to `data`).
    let layout = walk(out).unwrap_or_else(|| panic!("repaired file has no fmt/data: {repaired:?}"));
    let block = 2 * u64::from(layout.channels);
    let data_start = layout.data_start as u64;
    assert!(
        data_start + repaired.frames * block <= repaired.valid_len,
        "{repaired:?}: {} frames of {block} bytes do not fit after {data_start}",
        repaired.frames
    );
    if repaired.valid_len != len {
        assert_eq!(
            repaired.valid_len,
            data_start + repaired.frames * block,
            "a cut file ends with its last whole frame"
        );
    }
    assert_eq!(
        le32(out, 4),
        Some(repaired.valid_len as u32 - 8),
        "RIFF size of {repaired:?}"
    );
    assert_eq!(
        le32(out, layout.data_start - 4),
        Some((repaired.frames * block) as u32),
        "data size of {repaired:?}"
    );
    // Nothing but the two sizes was written.
    for (i, (a, b)) in data.iter().zip(&bytes).enumerate() {
        let size_field =
            (4..8).contains(&i) || (layout.data_start - 4..layout.data_start).contains(&i);
        assert!(
            a == b || size_field,
            "byte {i} rewritten: {a:#04x} -> {b:#04x}"
        );
    }
    assert_eq!(
        repaired.changed,
        bytes != data || repaired.valid_len != len,
        "{repaired:?}"
    );

    // hound walks chunks the same way only when none before `data` has an odd size (it skips no
    // pad byte), `fact` chunks are 4 bytes (it reads 4) and `fmt ` chunks 16, 18 or 40 (what it
    // consumes); and it is stricter about `fmt ` (byte rate, WAVEFORMATEXTENSIBLE's cbSize and
    // GUID). When it accepts the header with the data size zeroed, the data size repair wrote
    // must be one it accepts too, with the same frame count.
    if layout.hound_walk {
        let mut header_only = out[..layout.data_start].to_vec();
        header_only[layout.data_start - 4..].fill(0);
        if hound::WavReader::new(Cursor::new(&header_only)).is_ok() {
            let reader = hound::WavReader::new(Cursor::new(out))
                .unwrap_or_else(|e| panic!("hound refuses the repaired file ({repaired:?}): {e}"));
            assert_eq!(
                u64::from(reader.duration()),
                repaired.frames,
                "{repaired:?}"
            );
            assert_eq!(reader.spec().channels, layout.channels);
        }
    }

    // A repaired file is a fixed point.
    let mut again = Cursor::new(out.to_vec());
    let second = repair(&mut again, repaired.valid_len)
        .unwrap_or_else(|e| panic!("the repaired file ({repaired:?}) does not repair: {e}"));
    assert!(!second.changed, "{repaired:?} then {second:?}");
    assert_eq!(
        second.frames, repaired.frames,
        "{repaired:?} then {second:?}"
    );
    assert_eq!(
        second.valid_len, repaired.valid_len,
        "{repaired:?} then {second:?}"
    );
    assert_eq!(again.into_inner(), out);
});

struct Layout {
    /// The first byte of the `data` chunk's body.
    data_start: usize,
    /// From the last `fmt ` chunk before it.
    channels: u16,
    /// Whether hound's chunk walk finds the same chunks.
    hound_walk: bool,
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn walk(b: &[u8]) -> Option<Layout> {
    let mut off = 12usize;
    let mut channels = None;
    let mut hound_walk = true;
    loop {
        let id = b.get(off..off + 4)?;
        let size = le32(b, off + 4)?;
        let body = off + 8;
        if id == b"data" {
            return Some(Layout {
                data_start: body,
                channels: channels?,
                hound_walk,
            });
        }
        if id == b"fmt " {
            channels = Some(u16::from_le_bytes(
                b.get(body + 2..body + 4)?.try_into().ok()?,
            ));
            hound_walk &= matches!(size, 16 | 18 | 40);
        }
        if id == b"fact" {
            hound_walk &= size == 4;
        }
        hound_walk &= size % 2 == 0;
        off = body
            .checked_add(size as usize)?
            .checked_add(size as usize & 1)?;
    }
}
