//! Branch-free f32 math that the compiler vectorizes (libm's scalar calls stop it), and the
//! row softmax both engines use (candle's attention, tract's `Softmax` fast path); loops using
//! it are compiled for the widest vectors the CPU has with [`simd_kernel!`].

pub(crate) use crate::simd::simd_kernel;

/// e^v for v in [-87, 0]: 2^n e^r with n the integer nearest v / ln 2, so |r| <= ln2/2, and e^r
/// by its Taylor series to r^7 (relative error < 1e-8 there).
#[inline(always)]
pub(crate) fn exp_neg(v: f32) -> f32 {
    // ln 2 in two parts (Cody-Waite): n * LN2_HI is exact, so r keeps its precision for large n.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // n by the 1.5 * 2^23 shift: adding it rounds y = v / ln 2 (|y| < 2^22) to the nearest
    // integer, whose bits are then the sum's low mantissa bits. Not a float-to-int cast, which
    // Rust saturates and which compiled to sixteen scalar conversions per vector; not
    // f32::round, which has no SSE2 instruction: this stays vector arithmetic on every target.
    const SHIFT: f32 = 12_582_912.0;
    let shifted = v * std::f32::consts::LOG2_E + SHIFT;
    let nf = shifted - SHIFT;
    let n = shifted.to_bits() as i32 - SHIFT.to_bits() as i32;
    let r = (v - nf * LN2_HI) - nf * LN2_LO;
    // Horner's rule with fused multiply-adds: half the dependent steps of a multiply then an
    // add (a softmax row waits on this chain). Every caller is compiled with FMA (simd_kernel's
    // AVX-512 and AVX2 + FMA bodies); only its baseline body, for CPUs without, calls libm's fmaf.
    let mut p = 1.0f32 / 5040.0;
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 1.0 / 2.0, 1.0, 1.0] {
        p = p.mul_add(r, c);
    }
    // 2^n built from its exponent bits; n >= -126 for v >= -87, so 2^n stays normal.
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// e^v for any v <= 0 (a softmax's x - max): [`exp_neg`] where the result is a normal f32,
/// exactly 0 below that (e^-87 is 1.6e-38; a masked key at -1e4 gets no weight at all), and
/// NaN for NaN (a row with a NaN, or with infinities, comes out NaN, as e^(x - max) does).
#[inline(always)]
pub(crate) fn exp_le0(v: f32) -> f32 {
    const LOWEST: f32 = -87.0;
    let e = exp_neg(v.max(LOWEST));
    if v >= LOWEST {
        e
    } else if v < LOWEST {
        0.0
    } else {
        v
    }
}

/// Lanes of the reductions below: enough independent accumulators for 16-wide vectors.
const LANES: usize = 16;

/// `lanes` folded by `f` in halves (16 -> 8 -> 4 -> 2 -> 1): four dependent steps, each one
/// vector operation, where a left fold is sixteen scalar ones (a softmax row waits on both).
#[inline(always)]
fn fold_lanes(mut lanes: [f32; LANES], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            lanes[i] = f(lanes[i], lanes[i + half]);
        }
        half /= 2;
    }
    lanes[0]
}

simd_kernel! {
    /// In place, each row of `s` values: x = softmax(x + mask), `mask` (s values) or empty.
    /// Masked keys (-1e4) come out as exact zeros.
    pub(crate) fn softmax_rows(scores: &mut [f32], s: usize, mask: &[f32]) {
        for x in scores.chunks_exact_mut(s) {
            if mask.len() == x.len() {
                for (x, m) in x.iter_mut().zip(mask) {
                    *x += m;
                }
            }
            // Reductions in LANES independent accumulators, so they vectorize (a single running
            // max or sum is a dependency chain the compiler must keep in order).
            let mut lanes = [f32::NEG_INFINITY; LANES];
            let mut chunks = x.chunks_exact(LANES);
            for c in &mut chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l = l.max(v);
                }
            }
            let max = chunks.remainder().iter().copied().fold(fold_lanes(lanes, f32::max), f32::max);
            for x in x.iter_mut() {
                *x = exp_le0(*x - max);
            }
            let mut lanes = [0f32; LANES];
            let mut chunks = x.chunks_exact(LANES);
            for c in &mut chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += v;
                }
            }
            let sum: f32 = chunks.remainder().iter().sum::<f32>() + fold_lanes(lanes, |a, b| a + b);
            let inv = 1.0 / sum;
            for x in x.iter_mut() {
                *x *= inv;
            }
        }
    }
}

simd_kernel! {
    /// `x[i] = gelu(x[i])`.
    pub(crate) fn gelu_slice(x: &mut [f32]) {
        for x in x.iter_mut() {
            *x = gelu(*x);
        }
    }
}

/// The exact GELU, x * Φ(x) = x/2 * (1 + erf(x / √2)).
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// Abramowitz & Stegun 7.1.26: erf(z) = 1 - (a1 t + .. + a5 t^5) e^(-z^2), t = 1 / (1 + p z), z >= 0.
#[inline(always)]
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
    // Beyond 4, erf is 1 in f32; clamping also keeps exp's argument in range.
    let z = x.abs().min(4.0);
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp_neg(-z * z);
    y.copysign(x)
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
        assert!(exp_le0(f32::NAN).is_nan());
    }

    fn gelu_f64(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn matches_the_exact_gelu() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4; // -20 .. 20
            let err = (gelu(x) as f64 - gelu_f64(x as f64)).abs() / (1.0 + (x as f64).abs());
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst error {worst:e}");
        assert!(gelu(f32::NAN).is_nan());
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
    }
}
