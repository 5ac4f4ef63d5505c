//! G.711 (ITU-T): µ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8) to and from 16-bit
//! linear PCM. Decoding is a 256-entry table built at compile time; encoding is a few shifts.
//!
//! Linear samples are on the common 16-bit scale: µ-law works on the top 14 bits (peak ±32124),
//! A-law on the top 13 (peak ±32256); the bits below are dropped on encoding and zero on
//! decoding, and samples past the peak clip to the largest code.

use crate::codec::Codec;

/// Decodes one µ-law byte.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Decodes one A-law byte.
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
}

/// Decodes `payload` (bytes of `codec`) into `out`, one sample per byte; as many samples as the
/// shorter of the two holds.
pub fn decode(codec: Codec, payload: &[u8], out: &mut [i16]) {
    let table = match codec {
        Codec::Pcmu => &ULAW_TABLE,
        Codec::Pcma => &ALAW_TABLE,
    };
    for (sample, &code) in out.iter_mut().zip(payload) {
        *sample = table[usize::from(code)];
    }
}

/// Encodes `pcm` into `out` as `codec`, one byte per sample; as many samples as the shorter of
/// the two holds.
pub fn encode(codec: Codec, pcm: &[i16], out: &mut [u8]) {
    // One loop per law, so that each is a straight loop without a branch on the codec.
    match codec {
        Codec::Pcmu => {
            for (code, &sample) in out.iter_mut().zip(pcm) {
                *code = linear_to_ulaw(sample);
            }
        }
        Codec::Pcma => {
            for (code, &sample) in out.iter_mut().zip(pcm) {
                *code = linear_to_alaw(sample);
            }
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;

/// Encodes one sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    // Work on 14 bits, as G.711 µ-law does.
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    pcm = pcm.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let segment = segment_of(pcm, 6);
    let code = if segment >= 8 {
        0x7F
    } else {
        ((segment << 4) as u8) | ((pcm >> (segment + 1)) & 0x0F) as u8
    };
    code ^ mask
}

/// Encodes one sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // Work on 13 bits, as G.711 A-law does.
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let segment = segment_of(pcm, 5);
    let code = if segment >= 8 {
        0x7F
    } else if segment < 2 {
        ((segment << 4) as u8) | ((pcm >> 1) & 0x0F) as u8
    } else {
        ((segment << 4) as u8) | ((pcm >> segment) & 0x0F) as u8
    };
    code ^ mask
}

/// The segment (0–7, or 8 and more past the last) of a non-negative `value`, where segment 0
/// holds values of up to `first_bits` bits and each further segment one bit more.
fn segment_of(value: i32, first_bits: u32) -> i32 {
    let bits = 32 - value.leading_zeros();
    bits.saturating_sub(first_bits) as i32
}

const fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let t = (((u & 0x0F) as i32) << 3) + ULAW_BIAS;
    let t = t << ((u & 0x70) >> 4);
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_decode(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    t = match segment {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (segment - 1),
    };
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

macro_rules! table {
    ($decode:ident) => {{
        let mut out = [0i16; 256];
        let mut i = 0;
        while i < 256 {
            out[i] = $decode(i as u8);
            i += 1;
        }
        out
    }};
}

// Evaluated at compile time. `static`, not `const`: one copy in read-only memory rather than one
// materialised wherever a table is indexed.
static ULAW_TABLE: [i16; 256] = table!(ulaw_decode);
static ALAW_TABLE: [i16; 256] = table!(alaw_decode);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_points() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        // µ-law has a second zero; A-law's extremes; clipping at both ends.
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        // The smallest steps: µ-law ±8 is one step from zero, A-law's first level is ±8.
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
            // µ-law has two zeros (0x7F and 0xFF); both decode to 0, which encodes as 0xFF.
            let want = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                want,
                "µ-law {code:#04x}"
            );
        }
    }

    /// The quantisation step (distance between neighbouring decoded values) around a code.
    fn ulaw_step(code: u8) -> i32 {
        8 << ((!code & 0x70) >> 4)
    }

    fn alaw_step(code: u8) -> i32 {
        let segment = ((code ^ 0x55) & 0x70) >> 4;
        16 << segment.saturating_sub(1)
    }

    #[test]
    fn every_sample_is_within_half_a_step() {
        for sample in i16::MIN..=i16::MAX {
            let s = i32::from(sample);
            // Past the peak the signal clips: the error is the overshoot.
            let u = linear_to_ulaw(sample);
            let err = (i32::from(ulaw_to_linear(u)) - s).abs();
            // µ-law drops the 2 bits under its 14: up to 3 more.
            let bound = ulaw_step(u) / 2 + 3 + (s.abs() - 32124).max(0);
            assert!(err <= bound, "µ-law {sample} -> {u:#04x}: {err} > {bound}");
            let a = linear_to_alaw(sample);
            let err = (i32::from(alaw_to_linear(a)) - s).abs();
            let bound = alaw_step(a) / 2 + (s.abs() - 32256 - 8).max(0);
            assert!(err <= bound, "A-law {sample} -> {a:#04x}: {err} > {bound}");
        }
    }

    #[test]
    fn slices_match_the_sample_functions() {
        let codes: Vec<u8> = (0..=255).collect();
        let mut pcm = [0i16; 256];
        decode(Codec::Pcmu, &codes, &mut pcm);
        assert!(codes.iter().zip(pcm).all(|(&c, s)| s == ulaw_to_linear(c)));
        let mut back = [0u8; 256];
        encode(Codec::Pcmu, &pcm, &mut back);
        assert!(pcm.iter().zip(back).all(|(&s, c)| c == linear_to_ulaw(s)));
        decode(Codec::Pcma, &codes, &mut pcm);
        assert!(codes.iter().zip(pcm).all(|(&c, s)| s == alaw_to_linear(c)));
        encode(Codec::Pcma, &pcm, &mut back);
        assert_eq!(&back[..], &codes[..]);
        // Lengths differ: the shorter one decides, the rest is untouched.
        let mut out = [7i16; 4];
        decode(Codec::Pcmu, &[0xFF, 0xFF], &mut out);
        assert_eq!(out, [0, 0, 7, 7]);
        let mut out = [1u8; 2];
        encode(Codec::Pcma, &[0, 0, 0], &mut out);
        assert_eq!(out, [0xD5, 0xD5]);
    }

    /// ITU-T G.711 Table 3 (µ → A) and Table 4 (A → µ), as the widely used Sun Microsystems
    /// `g711.c` reproduces them (with its two published corrections): indexed by the µ-law
    /// (resp. A-law) magnitude 0–127 counted from the smallest, giving the other law's
    /// magnitude plus one (resp. exactly).
    #[rustfmt::skip]
    const G711_TABLE_3: [u8; 128] = [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 29, 31, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
        43, 44, 46, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 64, 65, 66, 67,
        68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 82, 83, 84, 85, 86, 87, 88, 89, 90,
        91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109,
        110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
        128,
    ];
    #[rustfmt::skip]
    const G711_TABLE_4: [u8; 128] = [
        1, 3, 5, 7, 9, 11, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
        31, 32, 32, 33, 33, 34, 34, 35, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48,
        48, 49, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 64, 65, 66, 67,
        68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 80, 81, 82, 83, 84, 85, 86, 87, 88,
        89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108,
        109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126,
        127,
    ];

    fn g711_ulaw_to_alaw(u: u8) -> u8 {
        if u & 0x80 != 0 {
            0xD5 ^ (G711_TABLE_3[usize::from(0xFF ^ u)] - 1)
        } else {
            0x55 ^ (G711_TABLE_3[usize::from(0x7F ^ u)] - 1)
        }
    }

    fn g711_alaw_to_ulaw(a: u8) -> u8 {
        if a & 0x80 != 0 {
            0xFF ^ G711_TABLE_4[usize::from(a ^ 0xD5)]
        } else {
            0x7F ^ G711_TABLE_4[usize::from(a ^ 0x55)]
        }
    }

    /// Sign and magnitude (0 = smallest) of a code, comparable across the two laws.
    fn ulaw_magnitude(u: u8) -> (bool, u8) {
        (u & 0x80 != 0, !u & 0x7F)
    }

    fn alaw_magnitude(a: u8) -> (bool, u8) {
        (a & 0x80 != 0, (a ^ 0x55) & 0x7F)
    }

    /// The in-place transcoder (`crate::transcode`) maps a code through the linear value (its
    /// tables equal decode-then-encode entry by entry: `transcode::tests::tables_match_g711`).
    /// G.711's own conversion tables (3 and 4) differ in 44 µ → A and 32 A → µ entries, each by
    /// one quantisation step, because they convert by *level*: the µ-law scale is 8159 units
    /// to overload, the A-law scale 4096, a ratio of about 0.502, not the exact 0.5 of a common
    /// 16-bit scale. Where a µ-law value falls close to an A-law decision level (µ-law ±4348 to
    /// ±7932, ±924 to ±1980, and −16 to −112; the A-law codes around ±4000–8000 the other way)
    /// the two round to neighbouring levels; µ-law "−0" (0x7F) becomes A-law −8 in the
    /// standard, +8 through linear. Tables 3/4 are the normative code conversion; the linear
    /// path is within one step of them, inaudible, and agrees with what a linear tap or mixer
    /// hears, so the transcoder keeps it. (Checked against G.711 as published by Sun; the
    /// difference was measured, not assumed: a change to either table fails this test.)
    #[test]
    fn transcoding_is_within_one_step_of_g711_tables_3_and_4() {
        use crate::transcode::{alaw_byte_to_ulaw, ulaw_byte_to_alaw};
        let mut differ = (0, 0);
        for code in 0..=255u8 {
            let (ours, standard) = (ulaw_byte_to_alaw(code), g711_ulaw_to_alaw(code));
            assert_eq!(ours, linear_to_alaw(ulaw_to_linear(code)));
            if ours != standard {
                differ.0 += 1;
                let ((s1, m1), (s2, m2)) = (alaw_magnitude(ours), alaw_magnitude(standard));
                if code == 0x7F {
                    assert_eq!((ours, standard), (0xD5, 0x55));
                } else {
                    assert!(s1 == s2 && m1.abs_diff(m2) == 1, "µ {code:#04x}");
                }
            }
            let (ours, standard) = (alaw_byte_to_ulaw(code), g711_alaw_to_ulaw(code));
            assert_eq!(ours, linear_to_ulaw(alaw_to_linear(code)));
            if ours != standard {
                differ.1 += 1;
                let ((s1, m1), (s2, m2)) = (ulaw_magnitude(ours), ulaw_magnitude(standard));
                assert!(s1 == s2 && m1.abs_diff(m2) == 1, "A {code:#04x}");
            }
        }
        assert_eq!(differ, (44, 32));
    }
}
