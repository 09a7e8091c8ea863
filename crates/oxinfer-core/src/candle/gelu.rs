//! `gelu(x + bias)` with the exact (erf) GELU, fused into one pass for f32 on the CPU.
//!
//! Why: candle's CPU `gelu_erf` calls libm's scalar `erff` per element, and the bias add before it
//! is a separate broadcast pass over the same [tokens, intermediate] matrix; together they took
//! about a fifth of an all-MiniLM forward. Here erf is Abramowitz & Stegun 7.1.26 (|error| <=
//! 1.5e-7) with an inline exp, written branch-free so the compiler vectorizes the loop, and the
//! rows are split across the current rayon pool. Other dtypes and devices use candle's ops.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `gelu_erf(x + bias)` for x [.., n] and bias [n].
pub fn bias_gelu_erf(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && bias.dtype() == DType::F32 {
        x.apply_op2_no_bwd(bias, &BiasGeluErf)
    } else {
        x.broadcast_add(bias)?.gelu_erf()
    }
}

struct BiasGeluErf;

/// Elements per parallel task: large enough to amortize scheduling, small enough to balance.
const CHUNK: usize = 16 * 1024;

impl CustomOp2 for BiasGeluErf {
    fn name(&self) -> &'static str {
        "oxinfer-bias-gelu-erf"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(bias)) = (s1, s2) else {
            candle_core::bail!("{}: f32 inputs expected", self.name())
        };
        let (Some((x0, x1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("{}: contiguous inputs expected", self.name())
        };
        let (x, bias) = (&x[x0..x1], &bias[b0..b1]);
        let n = bias.len();
        if n == 0 || l1.dims().last() != Some(&n) {
            candle_core::bail!("{}: bias of {n} does not match input shape {:?}", self.name(), l1.dims())
        }
        let mut out = vec![0f32; x.len()];
        // Whole rows per task, so each task walks the bias from its start.
        let rows_per_task = (CHUNK / n).max(1);
        out.par_chunks_mut(rows_per_task * n).zip(x.par_chunks(rows_per_task * n)).for_each(|(o, x)| {
            for (o, x) in o.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
                for ((o, &x), &b) in o.iter_mut().zip(x).zip(bias) {
                    *o = gelu(x + b);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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

/// e^v for v in [-16, 0]: 2^n e^r with n the integer nearest v / ln 2, so |r| <= ln2/2, and e^r
/// by its Taylor series to r^7 (relative error < 1e-8 there).
#[inline(always)]
fn exp_neg(v: f32) -> f32 {
    const LN2: f32 = std::f32::consts::LN_2;
    // For y <= 0, truncating y - 0.5 toward zero is ceil(y - 0.5): the nearest integer. A cast
    // rather than f32::round, which has no SSE2 instruction and would stop vectorization.
    let n = (v * std::f32::consts::LOG2_E - 0.5) as i32;
    let r = v - n as f32 * LN2;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^n built from its exponent bits; n >= -24 here, so the result stays normal.
    p * f32::from_bits(((n + 127) as u32) << 23)
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
    fn fused_op_equals_add_then_gelu_erf() -> Result<()> {
        let x = Tensor::arange(0f32, 3.0 * 1537.0, &Device::Cpu)?.affine(0.003, -7.0)?.reshape((3, 1537))?;
        let bias = Tensor::arange(0f32, 1537.0, &Device::Cpu)?.affine(0.001, -0.5)?;
        let fused = bias_gelu_erf(&x, &bias)?.flatten_all()?.to_vec1::<f32>()?;
        let plain = x.broadcast_add(&bias)?.gelu_erf()?.flatten_all()?.to_vec1::<f32>()?;
        let worst = fused.iter().zip(&plain).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 2e-6, "worst |fused - candle| = {worst:e}");
        Ok(())
    }
}
