//! Multi-head self-attention for f32 on the CPU as one op: `softmax(q k^T + mask) v` per
//! (row, head), read straight out of the fused QKV projection and written straight into the
//! `[B, S, H]` context.
//!
//! Why: done with candle ops, each layer copies q, k and v into `[B, heads, S, d]`, runs two
//! batched matmuls as one small `gemm` call per (row, head) with a thread-pool dispatch each,
//! materializes the masked scores and softmax as two more `[B, heads, S, S]` tensors with a
//! scalar `exp`, and copies the context back. Here each (row, head) is one task on the current
//! rayon pool: two single-threaded `gemm` calls on strided views (no copies) around a softmax
//! done in place in a per-task scores buffer, with a vectorizable `exp`. The query is expected
//! to carry the 1/sqrt(d) scale already (bert.rs folds it into the weights).

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use crate::fastmath::softmax_rows;
use crate::sgemm::{Strided, sgemm_strided};

/// The attention mask as additive key biases, [B, 1, 1, S]: 0 for a token, a large negative
/// for padding. Kept on the model's device for candle's ops, and as host values for the CPU op.
pub struct MaskBias {
    tensor: Tensor,
    host: Vec<f32>,
}

impl MaskBias {
    pub fn new(tensor: Tensor) -> Result<Self> {
        let host = match (tensor.device(), tensor.dtype()) {
            (Device::Cpu, DType::F32) => tensor.flatten_all()?.to_vec1::<f32>()?,
            _ => Vec::new(), // only the CPU f32 op reads it
        };
        Ok(MaskBias { tensor, host })
    }
}

/// `qkv`: `[B, S, 3H]`, the query, key and value projections side by side. Returns the context
/// `[B, S, H]`: with the fused op for contiguous f32 on the CPU, with candle's ops elsewhere
/// (GPUs, half precision).
pub fn attention(qkv: &Tensor, heads: usize, mask_bias: Option<&MaskBias>) -> Result<Tensor> {
    if matches!(qkv.device(), Device::Cpu) && qkv.dtype() == DType::F32 && qkv.is_contiguous() {
        qkv.apply_op1_no_bwd(&Attention { heads, mask_bias: mask_bias.map(|m| &m.host[..]) })
    } else {
        attention_ops(qkv, heads, mask_bias.map(|m| &m.tensor))
    }
}

/// Attention with candle's ops: q, k and v copied out as [B, heads, S, d], two batched matmuls
/// and a softmax over materialized scores.
fn attention_ops(qkv: &Tensor, heads: usize, mask_bias: Option<&Tensor>) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if super::cuda_ops::usable(qkv) {
        return attention_cuda(qkv, heads, mask_bias);
    }
    let (b, s, h3) = qkv.dims3()?;
    let h = h3 / 3;
    let d = h / heads;
    let split = |i: usize| -> Result<Tensor> {
        qkv.narrow(2, i * h, h)?.contiguous()?.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous()
    };
    let (q, k, v) = (split(0)?, split(1)?, split(2)?);
    let scores = q.matmul(&k.t()?)?;
    let scores = match mask_bias {
        Some(bias) => scores.broadcast_add(bias)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, h))
}

/// [`attention_ops`] on CUDA with oxinfer's kernels (cuda_ops.rs) for the moves: q, k and v
/// split out heads-major in one pass, the mask added without candle's broadcasting index math,
/// and the context merged back in one pass (candle's strided copies and broadcast add were ~75%
/// of a float16 pass).
#[cfg(feature = "cuda")]
fn attention_cuda(qkv: &Tensor, heads: usize, mask_bias: Option<&Tensor>) -> Result<Tensor> {
    use super::cuda_ops;
    let split = cuda_ops::split_heads(qkv, heads)?; // [3, b, heads, s, d]
    let (q, k, v) = (split.get(0)?, split.get(1)?, split.get(2)?);
    let scores = q.matmul(&k.t()?)?;
    let scores = match mask_bias {
        Some(bias) if cuda_ops::usable(bias) && bias.dtype() == scores.dtype() => cuda_ops::mask_add(&scores, bias)?,
        Some(bias) => scores.broadcast_add(bias)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    cuda_ops::merge_heads(&probs.matmul(&v)?)
}

struct Attention<'a> {
    heads: usize,
    /// Borrowed: the same host mask serves every layer.
    mask_bias: Option<&'a [f32]>,
}

/// The output pointer, shared by tasks that each write their own (row, head) block.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint blocks (see cpu_fwd), and the buffer outlives the parallel loop.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// Through a method, so closures capture the whole `Out` (Send + Sync), not its pointer field.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

impl CustomOp1 for Attention<'_> {
    fn name(&self) -> &'static str {
        "oxinfer-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(all) = s else { candle_core::bail!("{}: f32 input expected", self.name()) };
        let Some((o0, o1)) = l.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous input expected", self.name())
        };
        let (b, s, h3) = l.shape().dims3()?;
        let h = h3 / 3;
        if h3 != 3 * h || self.heads == 0 || h % self.heads != 0 {
            candle_core::bail!("{}: {h3} columns are not q, k, v of {} heads", self.name(), self.heads)
        }
        if let Some(m) = &self.mask_bias {
            if m.len() != b * s {
                candle_core::bail!("{}: mask of {} values for {b}x{s} tokens", self.name(), m.len())
            }
        }
        let qkv = &all[o0..o1];
        let d = h / self.heads;
        let mut out = vec![0f32; b * s * h];
        let dst = Out(out.as_mut_ptr());
        (0..b * self.heads).into_par_iter().for_each_init(
            || vec![0f32; s * s],
            |scores, task| {
                let (row, head) = (task / self.heads, task % self.heads);
                let base = row * s * h3;
                let mask = self.mask_bias.map(|m| &m[row * s..(row + 1) * s]);
                // SAFETY: q, k and v of this (row, head) are s x d blocks of `qkv` with row stride
                // 3h, at column offsets head*d, h + head*d and 2h + head*d: inside qkv, which is
                // b x s x 3h. The destination is the s x d block at column head*d of this row's
                // s x h slab of `out`: inside out, and written by this task alone.
                unsafe {
                    let q = qkv.as_ptr().add(base + head * d);
                    let k = qkv.as_ptr().add(base + h + head * d);
                    let v = qkv.as_ptr().add(base + 2 * h + head * d);
                    let ctx = dst.at(row * s * h + head * d);
                    head_attention(q, k, v, ctx, scores, s, d, h3 as isize, h as isize, mask);
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((b, s, h))))
    }
}

/// One head of one row: scores = q k^T (s x s), softmax over each row (keys), ctx = scores v.
///
/// # Safety
/// `q`, `k`, `v` point at s x d blocks with row stride `qkv_rs`, `ctx` at an s x d block with row
/// stride `ctx_rs`, all valid; `scores` holds s*s values.
#[allow(clippy::too_many_arguments)]
unsafe fn head_attention(
    q: *const f32,
    k: *const f32,
    v: *const f32,
    ctx: *mut f32,
    scores: &mut [f32],
    s: usize,
    d: usize,
    qkv_rs: isize,
    ctx_rs: isize,
    mask: Option<&[f32]>,
) {
    // scores[i][j] = sum_c q[i][c] * k[j][c]: k read as its transpose through the strides.
    let scores_at = Strided { ptr: scores.as_mut_ptr(), row: s as isize, col: 1 };
    let k_t = Strided { ptr: k, row: 1, col: qkv_rs };
    // SAFETY: the caller's contract: q and k are valid s x d blocks, scores holds s x s.
    unsafe { sgemm_strided(scores_at, Strided { ptr: q, row: qkv_rs, col: 1 }, k_t, (s, d, s), false, 1.0, 1) };
    softmax_rows(scores, s, mask.unwrap_or(&[]));
    let scores_at = Strided { ptr: scores.as_ptr(), row: s as isize, col: 1 };
    let ctx_at = Strided { ptr: ctx, row: ctx_rs, col: 1 };
    // SAFETY: the caller's contract: v and ctx are valid s x d blocks, ctx apart from the rest.
    unsafe { sgemm_strided(ctx_at, scores_at, Strided { ptr: v, row: qkv_rs, col: 1 }, (s, s, d), false, 1.0, 1) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_candle_ops_with_and_without_padding() -> Result<()> {
        let dev = Device::Cpu;
        let (b, s, heads, d) = (3, 17, 4, 8);
        let h = heads * d;
        let qkv = Tensor::arange(0f32, (b * s * 3 * h) as f32, &dev)?.affine(0.37, 0.1)?.sin()?.reshape((b, s, 3 * h))?;
        // Row 1 has its last 5 tokens padded, row 2 its last one.
        let mut mask = vec![0f32; b * s];
        for j in s - 5..s {
            mask[s + j] = -10_000.0;
        }
        mask[3 * s - 1] = -10_000.0;
        let mask = MaskBias::new(Tensor::from_slice(&mask, (b, 1, 1, s), &dev)?)?;
        for m in [None, Some(&mask)] {
            let want = attention_ops(&qkv, heads, m.map(|m| &m.tensor))?.flatten_all()?.to_vec1::<f32>()?;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
            let got = pool.install(|| attention(&qkv, heads, m))?.flatten_all()?.to_vec1::<f32>()?;
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "padding {}: worst |fused - candle ops| = {worst:e}", m.is_some());
            // The path GPUs and half precision take, here in f16 on the CPU.
            let half = MaskBias::new(mask.tensor.to_dtype(DType::F16)?)?;
            let got16 = attention(&qkv.to_dtype(DType::F16)?, heads, m.map(|_| &half))?;
            let got16 = got16.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let worst = got16.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-2, "padding {}: worst |f16 - f32| = {worst:e}", m.is_some());
        }
        Ok(())
    }

    #[test]
    fn masked_keys_get_exactly_zero_weight() {
        // Two rows of 37 (a remainder past the 16-lane chunks), the last 3 keys masked.
        let s = 37;
        let mut rows: Vec<f32> = (0..2 * s).map(|i| (i as f32 * 0.7).sin() * 5.0).collect();
        let mut mask = vec![0f32; s];
        mask[s - 3..].fill(-10_000.0);
        let want: Vec<f32> = rows
            .chunks(s)
            .flat_map(|r| {
                let m = r[..s - 3].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f64> = r[..s - 3].iter().map(|&v| ((v - m) as f64).exp()).collect();
                let sum: f64 = e.iter().sum();
                e.into_iter().map(move |v| (v / sum) as f32).chain([0.0; 3])
            })
            .collect();
        softmax_rows(&mut rows, s, &mask);
        for row in rows.chunks(s) {
            assert_eq!(&row[s - 3..], &[0.0, 0.0, 0.0]);
        }
        let worst = rows.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "worst |softmax - f64 softmax| = {worst:e}");
    }

    #[test]
    fn refuses_shapes_that_are_not_qkv() -> Result<()> {
        let x = Tensor::zeros((1, 2, 10), candle_core::DType::F32, &Device::Cpu)?;
        assert!(attention(&x, 2, None).is_err());
        let x = Tensor::zeros((1, 2, 12), candle_core::DType::F32, &Device::Cpu)?;
        let mask = MaskBias::new(Tensor::zeros((1, 1, 1, 5), candle_core::DType::F32, &Device::Cpu)?)?;
        assert!(attention(&x, 2, Some(&mask)).is_err(), "a mask of the wrong size is an error");
        Ok(())
    }
}
