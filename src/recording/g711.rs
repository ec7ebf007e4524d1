//! G.711 companding (ITU-T Recommendation G.711): µ-law and A-law to and from 16-bit
//! linear PCM.
//!
//! Phones send telephony audio as 8-bit G.711 codes; recordings are stored as 16-bit linear
//! PCM so that any player (and the QA pages) can open them without a codec. The decoders are
//! 256-entry tables, but the tables are computed at compile time from the segment formulas
//! of the Recommendation rather than typed in by hand: a hand-typed table is where a wrong
//! digit hides, whereas the formula is checked below against the Recommendation's reference
//! values and against the encoders over all 256 codes.
//!
//! Both laws work on sign-magnitude values split into eight segments (chords), each holding
//! 16 steps (a 4-bit mantissa) whose size doubles from one segment to the next. µ-law
//! (North America, Japan; RTP payload type 0) adds a bias of 33 (in 14-bit units) before
//! finding the segment and transmits all bits inverted; A-law (Europe, China, most of the
//! world; payload type 8) has a linear first segment and inverts every other bit (XOR 0x55).
//! Linear values here are 16-bit: µ-law's 14-bit domain shifted left by 2 and A-law's 13-bit
//! domain shifted left by 3, which is what the reference values are quoted in.

/// µ-law bias (33 in the 14-bit domain, shifted into 16 bits): adding it makes every segment
/// boundary a power of two, so the segment is just the position of the highest set bit.
const ULAW_BIAS: i32 = 0x84;

/// Largest magnitude µ-law can represent before adding the bias (32124 is the top decoded
/// value; anything above this clips to the top code instead of overflowing the segment).
const ULAW_CLIP: i32 = 32635;

/// A-law's even-bit inversion, applied on the wire so that silence is not a run of zeros.
const ALAW_XOR: u8 = 0x55;

/// Every µ-law code decoded, built once at compile time.
static ULAW_TO_LINEAR: [i16; 256] = build_table(Law::Mu);

/// Every A-law code decoded, built once at compile time.
static ALAW_TO_LINEAR: [i16; 256] = build_table(Law::A);

/// Which companding law a table is for.
#[derive(Clone, Copy)]
enum Law {
    Mu,
    A,
}

/// Fills a decoding table from the law's formula (in a `const fn`, so at compile time).
const fn build_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut code = 0usize;
    while code < 256 {
        table[code] = match law {
            Law::Mu => ulaw_formula(code as u8),
            Law::A => alaw_formula(code as u8),
        };
        code += 1;
    }
    table
}

/// µ-law decoding per G.711: invert the code, then value = ((mantissa · 8 + bias) shifted
/// left by the segment) − bias, negative when the (inverted) sign bit is set.
const fn ulaw_formula(code: u8) -> i16 {
    let bits = !code;
    let segment = ((bits >> 4) & 0x07) as i32;
    let mantissa = (bits & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    if bits & 0x80 != 0 {
        (-magnitude) as i16
    } else {
        magnitude as i16
    }
}

/// A-law decoding per G.711: undo the even-bit inversion; segment 0 is linear (steps of 16,
/// reconstructed at the middle of the step), higher segments add the implicit leading one
/// (0x100) and double per segment. A set sign bit means positive in A-law.
const fn alaw_formula(code: u8) -> i16 {
    let bits = code ^ ALAW_XOR;
    let segment = ((bits >> 4) & 0x07) as i32;
    let mantissa = (bits & 0x0f) as i32;
    let magnitude = if segment == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (segment - 1)
    };
    if bits & 0x80 != 0 {
        magnitude as i16
    } else {
        (-magnitude) as i16
    }
}

/// Decodes one µ-law code to 16-bit linear PCM (range ±32124).
pub fn ulaw_to_linear(u: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(u)]
}

/// Decodes one A-law code to 16-bit linear PCM (range ±32256).
pub fn alaw_to_linear(a: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(a)]
}

/// Encodes a 16-bit linear sample as µ-law. Values beyond the µ-law range clip to the top
/// code. Used for prompts and for tests: the recorder itself only decodes.
pub fn linear_to_ulaw(s: i16) -> u8 {
    let value = i32::from(s);
    let (sign, magnitude) = if value < 0 {
        (0x80u8, -value)
    } else {
        (0x00u8, value)
    };
    // 132..=32767: the highest set bit is bit 7 (segment 0) up to bit 14 (segment 7).
    let biased = magnitude.min(ULAW_CLIP) + ULAW_BIAS;
    let highest_bit = 31 - biased.leading_zeros();
    let segment = highest_bit.saturating_sub(7).min(7);
    let mantissa = (biased >> (segment + 3)) & 0x0f;
    !(sign | (segment as u8) << 4 | mantissa as u8)
}

/// Encodes a 16-bit linear sample as A-law (the 13 most significant bits are used, as in
/// the Recommendation). Values beyond the A-law range clip to the top code.
pub fn linear_to_alaw(s: i16) -> u8 {
    let value = i32::from(s);
    let (sign, magnitude) = if value >= 0 {
        (0x80u8, value)
    } else {
        (0x00u8, -value)
    };
    // 12-bit magnitude of the 13-bit sign-magnitude domain.
    let m = (magnitude >> 3).min(0x0fff);
    let (segment, mantissa) = if m < 32 {
        (0u32, m >> 1)
    } else {
        // m in 32..=4095: highest bit 5..=11 gives segments 1..=7.
        let segment = (31 - m.leading_zeros()).saturating_sub(4).min(7);
        (segment, (m >> segment) & 0x0f)
    };
    (sign | (segment as u8) << 4 | mantissa as u8) ^ ALAW_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_values() {
        // G.711 Table 2a extremes and zero, as 16-bit values.
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0); // "negative zero"
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        // Segment 0 steps are 2 in the 14-bit domain (8 in 16 bits): 0xFE → 8, 0x7E → -8.
        assert_eq!(ulaw_to_linear(0xfe), 8);
        assert_eq!(ulaw_to_linear(0x7e), -8);
        // Segment boundaries (16-bit): first value of each positive segment.
        let firsts = [0, 132, 396, 924, 1980, 4092, 8316, 16764];
        for (segment, &expected) in firsts.iter().enumerate() {
            let code = !((segment as u8) << 4);
            assert_eq!(ulaw_to_linear(code), expected, "segment {segment}");
        }
    }

    #[test]
    fn alaw_reference_values() {
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        // The largest positive code has the sign bit set before the even-bit inversion:
        // 1111_1111 ^ 0x55 = 0xAA. 0x2A is therefore the largest negative value.
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        // First value of each positive segment (16-bit).
        let firsts = [8, 264, 528, 1056, 2112, 4224, 8448, 16896];
        for (segment, &expected) in firsts.iter().enumerate() {
            let code = (0x80 | (segment as u8) << 4) ^ 0x55;
            assert_eq!(alaw_to_linear(code), expected, "segment {segment}");
        }
    }

    #[test]
    fn decoders_are_odd_symmetric() {
        for code in 0u8..=0x7f {
            assert_eq!(ulaw_to_linear(code), -ulaw_to_linear(code | 0x80));
            assert_eq!(alaw_to_linear(code), -alaw_to_linear(code | 0x80));
        }
    }

    #[test]
    fn ulaw_round_trips_all_codes() {
        for code in 0u8..=255 {
            let back = linear_to_ulaw(ulaw_to_linear(code));
            if code == 0x7f {
                // Negative zero decodes to 0, which encodes as positive zero.
                assert_eq!(back, 0xff);
            } else {
                assert_eq!(back, code, "code {code:#04x}");
            }
        }
    }

    #[test]
    fn alaw_round_trips_all_codes() {
        for code in 0u8..=255 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "code {code:#04x}"
            );
        }
    }

    #[test]
    fn encoders_clip_and_quantize_within_one_step() {
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_alaw(0), 0xd5);
        for s in i16::MIN..=i16::MAX {
            let v = i32::from(s);
            // Reconstruction is at the middle of each step, so the error is at most half a
            // step: a sixteenth of the value's magnitude is above that in every segment.
            // Beyond the top reconstruction level the error is the clipping itself.
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(s)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(s)));
            let tolerance = |x: i32| (x.abs() / 16).max(16) + 700 * i32::from(x.abs() > 32000);
            assert!((u - v).abs() <= tolerance(v), "µ-law {s} -> {u}");
            assert!((a - v).abs() <= tolerance(v), "A-law {s} -> {a}");
        }
    }

    #[test]
    fn encoders_are_monotonic() {
        let mut previous_u = i16::MIN;
        let mut previous_a = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(s));
            let a = alaw_to_linear(linear_to_alaw(s));
            assert!(u >= previous_u && a >= previous_a, "at {s}");
            previous_u = u;
            previous_a = a;
        }
    }
}
