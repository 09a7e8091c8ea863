//! Branch-free f32 math that the compiler vectorizes (libm's scalar calls stop it); loops
//! using it are compiled for the widest vectors the CPU has with [`simd_kernel!`].

pub(super) use crate::simd::simd_kernel;

/// e^v for v in [-87, 0]: 2^n e^r with n the integer nearest v / ln 2, so |r| <= ln2/2, and e^r
/// by its Taylor series to r^7 (relative error < 1e-8 there).
#[inline(always)]
pub(super) fn exp_neg(v: f32) -> f32 {
    // ln 2 in two parts (Cody-Waite): n * LN2_HI is exact, so r keeps its precision for large n.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // For y <= 0, truncating y - 0.5 toward zero is ceil(y - 0.5): the nearest integer. A cast
    // rather than f32::round, which has no SSE2 instruction and would stop vectorization.
    let n = (v * std::f32::consts::LOG2_E - 0.5) as i32;
    let r = (v - n as f32 * LN2_HI) - n as f32 * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n built from its exponent bits; n >= -126 for v >= -87, so 2^n stays normal.
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// e^v for any v <= 0 (a softmax's x - max): [`exp_neg`] where the result is a normal f32,
/// exactly 0 below that (e^-87 is 1.6e-38; a masked key at -1e4 gets no weight at all).
#[inline(always)]
pub(super) fn exp_le0(v: f32) -> f32 {
    const LOWEST: f32 = -87.0;
    let e = exp_neg(v.max(LOWEST));
    if v < LOWEST { 0.0 } else { e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_f64_over_its_range() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let v = -(i as f32) * 1e-4; // 0 .. -87
            let want = (v as f64).exp();
            worst = worst.max(((exp_le0(v) as f64) - want).abs() / want);
        }
        assert!(worst < 2e-7, "worst relative error {worst:e}");
        assert_eq!(exp_le0(-100.0), 0.0);
        assert_eq!(exp_le0(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_le0(0.0), 1.0);
    }
}
