//! `x W^T + b` for f32 on the CPU as one `gemm` call: the output starts as the bias, rows
//! repeated, and the product is accumulated onto it, so the bias costs no pass of its own.
//!
//! Why not candle's matmul: its CPU matmul picks its thread count from RAYON_NUM_THREADS or a
//! guess of "preferred" CPUs (1 on some VMs) rather than from the pool it runs in, and the bias
//! add after it is a second pass over the output. Here the caller says how many threads the
//! matmul may use (the embedder gives them to the matmul when a batch is too small to split
//! across threads by rows). Other dtypes and devices use candle's matmul and add.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, Layout, Result, Shape, Tensor};

use crate::precision::{Packed, Share};

/// `x [rows, k] @ w_t [k, n] + bias [n]`, with the matmul on up to `threads` threads.
pub fn linear(x: &Tensor, w_t: &Tensor, bias: &Tensor, threads: usize) -> Result<Tensor> {
    let cpu_f32 = matches!(x.device(), Device::Cpu) && [x.dtype(), w_t.dtype(), bias.dtype()] == [DType::F32; 3];
    if cpu_f32 && x.is_contiguous() && w_t.is_contiguous() && bias.is_contiguous() {
        x.apply_op3_no_bwd(w_t, bias, &Linear { threads })
    } else {
        let y = x.matmul(w_t)?;
        #[cfg(feature = "cuda")]
        if super::cuda_ops::usable(&y) && super::cuda_ops::usable(bias) && y.dtype() == bias.dtype() {
            return super::cuda_ops::bias_add(&y, bias);
        }
        y.broadcast_add(bias)
    }
}

struct Linear {
    threads: usize,
}

/// `rows` copies of `bias`, one after another: the output a product then accumulates onto.
fn bias_rows(bias: &[f32], rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * bias.len());
    for _ in 0..rows {
        out.extend_from_slice(bias);
    }
    out
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "oxinfer-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(bias)) = (s1, s2, s3) else {
            candle_core::bail!("{}: f32 inputs expected", self.name())
        };
        let (Some((x0, x1)), Some((w0, w1)), Some((b0, b1))) =
            (l1.contiguous_offsets(), l2.contiguous_offsets(), l3.contiguous_offsets())
        else {
            candle_core::bail!("{}: contiguous inputs expected", self.name())
        };
        let ((rows, k), (k2, n)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 || l3.dims() != [n] {
            candle_core::bail!("{}: shapes {:?} @ {:?} + {:?} do not fit", self.name(), l1.dims(), l2.dims(), l3.dims())
        }
        let (x, w, bias) = (&x[x0..x1], &w[w0..w1], &bias[b0..b1]);
        crate::linger::yield_core(rows * k * n);
        let mut out = bias_rows(bias, rows);
        // out = bias + x @ w. A lone call on a pool thread (a batch of one row, say) shares the
        // columns with helpers that linger between products; otherwise gemm splits the product
        // (its threads sleep between products, see sgemm_by_columns).
        if self.threads > 1 && rayon::current_thread_index().is_some() && crate::linger::alone() {
            crate::sgemm::sgemm_by_columns(None, (x, w, &mut out), (rows, k, n), true)
                .map_err(|()| candle_core::Error::Msg(format!("{}: a chunk of the product panicked", self.name())))?;
        } else {
            crate::sgemm::sgemm(x, w, &mut out, (rows, k, n), true, self.threads);
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, n))))
    }
}

/// `x [rows, k] @ w + bias [n]` with `w` packed (bf16 or int8): f32 `x` on the CPU, rounded or
/// quantized per call, f32 out. The product's panels are shared over up to `threads` threads of
/// the pool the caller runs on.
pub fn linear_packed(x: &Tensor, w: &Packed, bias: &Tensor, threads: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2_no_bwd(&bias.contiguous()?, &LinearPacked { w: w.clone(), threads })
}

struct LinearPacked {
    w: Packed,
    threads: usize,
}

impl CustomOp2 for LinearPacked {
    fn name(&self) -> &'static str {
        match self.w {
            Packed::Bf16(_) => "oxinfer-linear-bf16",
            Packed::Int8(_) => "oxinfer-linear-int8",
        }
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(bias)) = (s1, s2) else {
            candle_core::bail!("{}: f32 inputs expected", self.name())
        };
        let (Some((x0, x1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("{}: contiguous inputs expected", self.name())
        };
        let (rows, k) = l1.shape().dims2()?;
        let (wk, n) = (self.w.k(), self.w.n());
        if k != wk || l2.dims() != [n] {
            candle_core::bail!("{}: shapes {:?} @ {}x{} + {:?} do not fit", self.name(), l1.dims(), wk, n, l2.dims())
        }
        let (x, bias) = (&x[x0..x1], &bias[b0..b1]);
        crate::linger::yield_core(rows * k * n);
        let mut out = bias_rows(bias, rows);
        // Helpers from the pool the caller runs on (the embedder's), when it is one of its threads.
        let helpers = if rayon::current_thread_index().is_some() { self.threads.saturating_sub(1) } else { 0 };
        let share = Share { pool: None, helpers };
        self.w.gemm(share, (x, &mut out), rows, true).map_err(|()| candle_core::Error::Msg(format!("{}: a panel of the product panicked", self.name())))?;
        Ok((CpuStorage::F32(out), Shape::from((rows, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_matmul_plus_bias_on_one_and_two_threads() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 130.0 * 67.0, &dev)?.affine(0.001, -3.0)?.sin()?.reshape((130, 67))?;
        let w = Tensor::arange(0f32, 67.0 * 45.0, &dev)?.affine(0.01, 0.5)?.cos()?.reshape((67, 45))?;
        let b = Tensor::arange(0f32, 45.0, &dev)?.affine(0.1, -2.0)?;
        let want = x.matmul(&w)?.broadcast_add(&b)?.flatten_all()?.to_vec1::<f32>()?;
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
            let got = pool.install(|| linear(&x, &w, &b, threads))?.flatten_all()?.to_vec1::<f32>()?;
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "threads {threads}: worst |linear - matmul+bias| = {worst:e}");
        }
        assert!(linear(&x, &w.narrow(0, 0, 60)?, &b, 1).is_err(), "mismatched k must be an error");
        Ok(())
    }

    /// The bf16 linear equals bias + the f64 product of the bf16-rounded operands (on CPUs with
    /// AVX512-BF16; elsewhere the embedder never packs weights, and this checks that).
    #[test]
    fn bf16_equals_rounded_product_plus_bias() -> Result<()> {
        use crate::bf16::{PackedBf16, available, from_bf16, to_bf16};
        use std::sync::Arc;
        if !available() {
            assert_eq!(crate::precision::Precision::Bfloat16.effective(), crate::precision::Precision::Float32);
            return Ok(());
        }
        let dev = Device::Cpu;
        let (rows, k, n) = (37, 67, 45);
        let x = Tensor::arange(0f32, (rows * k) as f32, &dev)?.affine(0.001, -3.0)?.sin()?.reshape((rows, k))?;
        let w = Tensor::arange(0f32, (k * n) as f32, &dev)?.affine(0.01, 0.5)?.cos()?.reshape((k, n))?;
        let b = Tensor::arange(0f32, n as f32, &dev)?.affine(0.1, -2.0)?;
        let (xv, wv, bv) = (x.flatten_all()?.to_vec1::<f32>()?, w.flatten_all()?.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
        let packed = Packed::Bf16(Arc::new(PackedBf16::pack(&wv, k, n)));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        for threads in [1, 2] {
            let got = pool.install(|| linear_packed(&x, &packed, &b, threads))?.flatten_all()?.to_vec1::<f32>()?;
            for r in 0..rows {
                for c in 0..n {
                    let round = |v: f32| f64::from(from_bf16(to_bf16(v)));
                    let want = f64::from(bv[c]) + (0..k).map(|j| round(xv[r * k + j]) * round(wv[j * n + c])).sum::<f64>();
                    let got = f64::from(got[r * n + c]);
                    assert!((got - want).abs() < 1e-4, "threads {threads} at {r},{c}: {got} vs {want}");
                }
            }
        }
        Ok(())
    }
}
