//! The exact (erf) GELU, vectorized, for f32 on the CPU.
//!
//! Why: candle's CPU `gelu_erf` calls libm's scalar `erff` per element, which took about a fifth
//! of an all-MiniLM forward. Here erf is Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7) with an
//! inline exp, written branch-free so the compiler vectorizes the loop, and the elements are
//! split across the current rayon pool. Other dtypes and devices use candle's op. (The bias
//! before it is already added inside the linear layer's matmul: see linear.rs.)

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::fastmath::{exp_neg, simd_kernel};

/// `gelu_erf(x)`, elementwise. Takes `x` by value: on the CPU in f32 its buffer is reused for
/// the result (the caller's only handle to a fresh matmul output), which saves allocating and
/// writing a second [tokens, intermediate] buffer.
pub fn gelu_erf(x: Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.is_contiguous() {
        x.inplace_op1(&GeluErf)?;
        Ok(x)
    } else {
        x.gelu_erf()
    }
}

struct GeluErf;

/// Elements per parallel task: large enough to amortize scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

impl InplaceOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "oxinfer-gelu-erf"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let CpuStorage::F32(x) = s else { candle_core::bail!("{}: f32 input expected", self.name()) };
        let Some((x0, x1)) = l.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous input expected", self.name())
        };
        x[x0..x1].par_chunks_mut(CHUNK).for_each(gelu_slice);
        Ok(())
    }
}

simd_kernel! {
    /// `x[i] = gelu(x[i])`.
    fn gelu_slice(x: &mut [f32]) {
        for x in x.iter_mut() {
            *x = gelu(*x);
        }
    }
}

/// x * Φ(x) = x/2 * (1 + erf(x / √2)).
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

    #[test]
    fn op_equals_candles_gelu_erf() -> Result<()> {
        let x = Tensor::arange(0f32, 3.0 * 16_411.0, &Device::Cpu)?.affine(0.0003, -7.0)?.reshape((3, 16_411))?;
        let candle = x.gelu_erf()?.flatten_all()?.to_vec1::<f32>()?;
        let ours = gelu_erf(x.copy()?)?.flatten_all()?.to_vec1::<f32>()?;
        let worst = ours.iter().zip(&candle).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 2e-6, "worst |ours - candle| = {worst:e}");
        Ok(())
    }
}
