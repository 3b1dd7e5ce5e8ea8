//! Half-precision floats made from f64 values, rounded once to the nearest as numpy rounds
//! them. The `half` crate's `from_f64` rounds twice: through f32 where the CPU converts halves
//! (F16C), and in software from the f64's upper 32 bits only, so the bits below those are
//! lost. 1 + 2^-11 + 2^-40, just above a tie, became 1.0 where numpy gives 1.001.

use half::f16;

/// `x` as the nearest half (ties to even), infinities past its range, NaN kept a NaN.
pub(crate) fn f16_from_f64(x: f64) -> f16 {
    // Rounding to f32 by round-to-odd keeps what the second rounding needs: f32 holds 13
    // more bits than a half, and a result made odd where inexact can sit on no tie of the
    // half's grid that x is not on. Then f32 to half rounds once, correctly.
    let mut single = x as f32;
    let back = f64::from(single);
    if back != x && x.is_finite() {
        // Inexact: the f32 neighbour toward zero, with its last bit set.
        if back.abs() > x.abs() {
            single = f32::from_bits(single.to_bits() - 1);
        }
        single = f32::from_bits(single.to_bits() | 1);
    }
    f16::from_f32(single)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_once_to_the_nearest_half() {
        // numpy: np.array(x).astype("f2").view("u2").
        let cases = [
            (1.0 + 2f64.powi(-11) + 2f64.powi(-40), 0x3c01),
            (1.0 + 2f64.powi(-11), 0x3c00), // a tie: to even
            (1.0 + 3.0 * 2f64.powi(-11), 0x3c02),
            (-0.17791747913638098, 0xb1b1),
            (3502.9999059102206, 0x6ad7),
            (65504.0, 0x7bff),
            (65519.99, 0x7bff),
            (65520.0, 0x7c00), // rounds past the largest half: infinity
            (1e300, 0x7c00),
            (-1e300, 0xfc00),
            (f64::INFINITY, 0x7c00),
            (2f64.powi(-25), 0x0000), // half the smallest subnormal: a tie, to even
            (2f64.powi(-25) + 2f64.powi(-60), 0x0001),
            (1e-300, 0x0000),
            (-0.0, 0x8000),
        ];
        for (x, bits) in cases {
            assert_eq!(f16_from_f64(x).to_bits(), bits, "{x:e}");
        }
        assert!(f16_from_f64(f64::NAN).is_nan());
    }
}
