//! The exact (erf) GELU, vectorized, for f32 on the CPU.
//!
//! Why: candle's CPU `gelu_erf` calls libm's scalar `erff` per element, which took about a fifth
//! of an all-MiniLM forward. Here erf is Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7) with an
//! inline exp, written branch-free so the compiler vectorizes the loop, and the elements are
//! split across the current rayon pool. Other dtypes and devices use candle's op. (The bias
//! before it is already added inside the linear layer's matmul: see linear.rs.)

use candle_core::{CpuStorage, DType, Device, InplaceOp1, Layout, Result, Tensor};
use rayon::prelude::*;

use crate::fastmath::gelu_slice;

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

#[cfg(test)]
mod tests {
    use super::*;

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
