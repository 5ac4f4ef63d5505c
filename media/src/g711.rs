//! G.711 (ITU-T): µ-law (PCMU, payload type 0) and A-law (PCMA, payload type 8) to and from 16-bit
//! linear PCM. Decoding is a 256-entry table built at compile time; encoding is a few shifts.

/// Decodes one µ-law byte.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[code as usize]
}

/// Decodes one A-law byte.
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[code as usize]
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

    #[test]
    fn quantisation_error_is_bounded() {
        for sample in (i16::MIN..=i16::MAX).step_by(7) {
            let s = i32::from(sample);
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(sample)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(sample)));
            // Logarithmic companding: the error grows with the magnitude, to about 1/32 of it.
            let bound = s.abs() / 16 + 40;
            assert!((u - s).abs() <= bound, "µ-law {sample} -> {u}");
            assert!((a - s).abs() <= bound, "A-law {sample} -> {a}");
        }
    }
}
