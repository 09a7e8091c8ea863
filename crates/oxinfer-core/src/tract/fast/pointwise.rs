//! Pointwise (1x1) convolution for f32, channels first, as tract declutters it: an `EinSum`
//! `N I S.., O I -> N O S..` of the activation by constant weights, with a bias `Add` and a ReLU
//! or Clip after it folded in. Per image, `y[O, P] = w[O, I] x[I, P]`, P the pixels.
//!
//! Eight output channels at a time, one vector register: the weights are packed at load as
//! `[O / 8][I][8]`, and each column of pixels accumulates `w[.., i] * x[i, p]` over the input
//! channels, four columns side by side, reading the activation where it is (a row per input
//! channel). The block's `[P][8]` outputs are then written to their eight rows (lanes.rs).
//!
//! Why: tract's product packs the activation at every call and, with a batch, moves the channel
//! axis first and back; on a small CNN's planes (4 to 1,024 pixels, 8 to 336 channels) that cost
//! as much as the arithmetic.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::math::Add;

use super::F32EinSum;
use super::clamp::Clamp;
use super::conv::with_scratch;
use super::lanes::{LANES, by_blocks, deinterleave};
use super::{Parts, for_each_shared, sole_binary_reader};

/// Pixels accumulated side by side (independent sums that hide the add latency), then half
/// as many, then one at a time.
const COLUMNS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastPointwise {
    /// The input's axis of channels: the axes before it are images, those after it pixels.
    channel_axis: usize,
    /// `[blocks, i, LANES]`: weight `(o, i)` at `((o / LANES) * i_count + i) * LANES + o % LANES`,
    /// zero past the last output channel.
    weights: Arc<Tensor>,
    /// `[blocks, LANES]`: each output channel's bias, zero where the model has none.
    bias: Arc<Tensor>,
    o: usize,
    i: usize,
    clamp: Option<Clamp>,
}

impl FastPointwise {
    /// The patch that puts a FastPointwise in place of the einsum (and of a bias `Add`, then a
    /// ReLU or Clip, after it), when it covers it exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, einsum: &F32EinSum) -> TractResult<Option<TypedModelPatch>> {
        let [x, w] = einsum.facts;
        let [xl, wl, yl] = &einsum.labels;
        let Some(weights) = &w.konst else { return Ok(None) };
        // Weights `[O, I]`; the input `N.. I S..`, the output `N.. O S..`, the same N and S.
        let &[o_label, i_label] = &wl[..] else { return Ok(None) };
        let Some(axis) = xl.iter().position(|&c| c == i_label) else { return Ok(None) };
        let mut expected = xl.clone();
        expected[axis] = o_label;
        if *yl != expected || xl.contains(&o_label) || x.rank() != xl.len() {
            return Ok(None);
        }
        let (o, i) = (weights.shape()[0], weights.shape()[1]);
        if x.shape[axis].to_usize().ok() != Some(i) || o == 0 || i == 0 {
            return Ok(None);
        }
        let y_fact = model.outlet_fact(OutletId::new(node.id, 0))?;
        let (bias, after_bias) = match bias_after(model, node, axis, o)? {
            Some((add, bias)) => (Some(bias), add),
            None => (None, node.id),
        };
        let clamp = Clamp::after(model, model.node(after_bias))?;
        let blocks = o.div_ceil(LANES);
        let packed = by_blocks(weights.try_as_plain_ram()?.as_slice::<f32>()?, i);
        let b = match bias {
            Some(bias) => by_blocks(&bias, 1),
            None => vec![0f32; blocks * LANES],
        };
        let fast = FastPointwise {
            channel_axis: axis,
            weights: Arc::new(Tensor::from_shape(&[blocks, i, LANES], &packed)?),
            bias: Arc::new(Tensor::from_shape(&[blocks, LANES], &b)?),
            o,
            i,
            clamp: clamp.map(|(c, _)| c),
        };
        debug_assert_eq!(fast.output_facts(&[x])?[0].shape, y_fact.shape);
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[input])?[0];
        let last = clamp.map_or(after_bias, |(_, last)| last);
        patch.shunt_outside(model, OutletId::new(last, 0), y)?;
        Ok(Some(patch))
    }
}

/// The `Add` of a constant bias that alone reads `node`'s output, one value per output channel
/// (dims of one but at the channel axis, counted from the right as broadcasting aligns them),
/// and those values.
fn bias_after(model: &TypedModel, node: &TypedNode, axis: usize, o: usize) -> TractResult<Option<(usize, Vec<f32>)>> {
    let Some((next, other)) = sole_binary_reader::<Add>(model, node)? else { return Ok(None) };
    let Some(bias) = &model.outlet_fact(other)?.konst else { return Ok(None) };
    let out = model.outlet_fact(OutletId::new(node.id, 0))?;
    let (shape, rank) = (bias.shape(), out.rank());
    let per_channel = bias.datum_type() == f32::datum_type()
        && shape.len() <= rank
        && bias.len() == o
        && shape.iter().enumerate().all(|(d, &n)| n == 1 || (d + rank - shape.len() == axis && n == o));
    if !per_channel || model.outlet_fact(OutletId::new(next.id, 0))?.shape != out.shape {
        return Ok(None);
    }
    Ok(Some((next.id, bias.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())))
}

impl Op for FastPointwise {
    fn name(&self) -> StaticName {
        "FastPointwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = vec![format!("{} x {} weights, channels at axis {}", self.o, self.i, self.channel_axis)];
        info.extend(self.clamp.map(|c| c.to_string()));
        Ok(info)
    }

    op_as_typed_op!();
}

impl TypedOp for FastPointwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].rank() > self.channel_axis, "FastPointwise: one input with channels at axis {}", self.channel_axis);
        let mut shape = inputs[0].shape.to_tvec();
        shape[self.channel_axis] = self.o.into();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

impl EvalOp for FastPointwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(shape.len() > self.channel_axis && shape[self.channel_axis] == self.i, "FastPointwise: input {shape:?}");
        let images: usize = shape[..self.channel_axis].iter().product();
        let p: usize = shape[self.channel_axis + 1..].iter().product();
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[self.channel_axis] = self.o;
        // SAFETY: every element is written below: each block's outputs are copied out whole.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let weights_view = self.weights.try_as_plain_ram()?;
        let w = weights_view.as_slice::<f32>()?;
        let bias_view = self.bias.try_as_plain_ram()?;
        let bias = bias_view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        let (i, o) = (self.i, self.o);
        ensure!(x.len() == images * i * p && y.len() == images * o * p, "FastPointwise: input {shape:?} does not fit");
        if y.is_empty() {
            return Ok(tvec!(output.into_tvalue()));
        }
        let clamp = self.clamp.unwrap_or(Clamp { lo: f32::NEG_INFINITY, hi: f32::INFINITY });
        let (block_len, blocks) = (i * LANES, o.div_ceil(LANES));
        let out = Parts(y.as_mut_ptr());
        let job = |job: usize| {
            let (n, b) = (job / blocks, job % blocks);
            let first = n * o + b * LANES;
            let lanes = LANES.min(o - b * LANES);
            // SAFETY: job `job`'s rows, disjoint from every other job's, inside `y` (its length
            // was checked above); for_each_shared returns after the last job.
            let y = unsafe { std::slice::from_raw_parts_mut(out.get().add(first * p), lanes * p) };
            let x = &x[n * i * p..(n + 1) * i * p];
            let (w, bias) = (&w[b * block_len..(b + 1) * block_len], &bias[b * LANES..(b + 1) * LANES]);
            with_scratch(p * LANES, |out| {
                block(x, p, w, bias, clamp, out);
                write_rows(out, p, y);
            })
        };
        // Work in units of SHARE_WORK: about 4 per multiply-add.
        for_each_shared(16 * images * o * i * p, images * blocks, job)?;
        Ok(tvec!(output.into_tvalue()))
    }
}

/// A block's `[P][LANES]` outputs to its rows of `y` (as many as `y` holds, up to `LANES`).
fn write_rows(out: &[f32], p: usize, y: &mut [f32]) {
    let lanes = y.len() / p;
    let mut rows = y.chunks_exact_mut(p);
    let mut rows: [&mut [f32]; LANES] = std::array::from_fn(|_| rows.next().unwrap_or_default());
    deinterleave(out, p, &mut rows[..lanes]);
}

/// One block of eight output channels over every pixel, `out`: `[P][LANES]`, `bias + sum over
/// input channels of weight * pixel`, clamped. `x`: `[I][P]`, `w`: `[I][LANES]`. In AVX2
/// registers with fused multiply-adds where the CPU has them (the portable loop compiles to a
/// multiply and an add, which Rust does not fuse: twice the instructions).
fn block(x: &[f32], p: usize, w: &[f32], bias: &[f32], clamp: Clamp, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { avx2::block(x, p, w, bias, clamp, out) };
    }
    block_portable(x, p, w, bias, clamp, out)
}

/// The tiles of `p` pixels, `(first, width)`: [`COLUMNS`] wide, then half as many, then one
/// at a time.
fn tiles(p: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let width = [COLUMNS, COLUMNS / 2, 1].into_iter().find(|&w| at + w <= p)?;
        at += width;
        Some((at - width, width))
    })
}

/// [`block`]'s reference, tile by tile.
fn block_portable(x: &[f32], p: usize, w: &[f32], bias: &[f32], clamp: Clamp, out: &mut [f32]) {
    for (at, width) in tiles(p) {
        match width {
            COLUMNS => columns::<COLUMNS>(x, p, w, bias, clamp, at, out),
            1 => columns::<1>(x, p, w, bias, clamp, at, out),
            _ => columns::<{ COLUMNS / 2 }>(x, p, w, bias, clamp, at, out),
        }
    }
}

/// Pixels `at .. at + C` of one block.
#[inline(always)]
fn columns<const C: usize>(x: &[f32], p: usize, w: &[f32], bias: &[f32], clamp: Clamp, at: usize, out: &mut [f32]) {
    let bias: &[f32; LANES] = bias.first_chunk().expect("a bias per lane");
    let mut acc = [*bias; C];
    for (ic, wv) in w.chunks_exact(LANES).enumerate() {
        let wv: &[f32; LANES] = wv.first_chunk().expect("a weight per lane");
        let px: &[f32; C] = x[ic * p + at..].first_chunk().expect("a pixel per column");
        for (acc, &v) in acc.iter_mut().zip(px) {
            for l in 0..LANES {
                acc[l] += wv[l] * v;
            }
        }
    }
    for (c, acc) in acc.iter().enumerate() {
        let dst: &mut [f32; LANES] = out[(at + c) * LANES..].first_chunk_mut().expect("an output per lane");
        *dst = clamp.lanes(acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{COLUMNS, Clamp, LANES, tiles};

    /// [`super::block`] in AVX2 registers: the same tiles, one fused multiply-add per input
    /// channel and pixel.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block(x: &[f32], p: usize, w: &[f32], bias: &[f32], clamp: Clamp, out: &mut [f32]) {
        for (at, width) in tiles(p) {
            match width {
                COLUMNS => columns::<COLUMNS>(x, p, w, bias, clamp, at, out),
                1 => columns::<1>(x, p, w, bias, clamp, at, out),
                _ => columns::<{ COLUMNS / 2 }>(x, p, w, bias, clamp, at, out),
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn columns<const C: usize>(x: &[f32], p: usize, w: &[f32], bias: &[f32], clamp: Clamp, at: usize, out: &mut [f32]) {
        let bias: &[f32; LANES] = bias.first_chunk().expect("a bias per lane");
        // SAFETY (loads and stores): each pointer is that of an array of LANES values.
        let mut acc = [unsafe { _mm256_loadu_ps(bias.as_ptr()) }; C];
        for (ic, wv) in w.chunks_exact(LANES).enumerate() {
            let wv: &[f32; LANES] = wv.first_chunk().expect("a weight per lane");
            let wv = unsafe { _mm256_loadu_ps(wv.as_ptr()) };
            let px: &[f32; C] = x[ic * p + at..].first_chunk().expect("a pixel per column");
            for (acc, &v) in acc.iter_mut().zip(px) {
                *acc = _mm256_fmadd_ps(wv, _mm256_set1_ps(v), *acc);
            }
        }
        // max_ps returns its second operand for a NaN: the portable clamp's lower bound.
        let (lo, hi) = (_mm256_set1_ps(clamp.lo), _mm256_set1_ps(clamp.hi));
        for (c, acc) in acc.iter().enumerate() {
            let dst: &mut [f32; LANES] = out[(at + c) * LANES..].first_chunk_mut().expect("an output per lane");
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), _mm256_min_ps(_mm256_max_ps(*acc, lo), hi)) };
        }
    }

    #[cfg(test)]
    mod tests {
        use super::super::{block, block_portable};
        use super::*;

        /// The dispatched block (AVX2 + FMA on such a CPU) equals the portable loops within
        /// the rounding a fused multiply-add saves, over every tile remainder and a clamp that
        /// binds on both sides.
        #[test]
        fn block_equals_the_portable_loops() {
            let value = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
            for (i, p) in [(3usize, 1usize), (16, 8), (7, 13), (40, 31)] {
                let x: Vec<f32> = (0..i * p).map(value).collect();
                let w: Vec<f32> = (0..i * LANES).map(|j| value(j + 11)).collect();
                let bias: Vec<f32> = (0..LANES).map(|j| value(j + 5)).collect();
                let clamp = Clamp { lo: -0.5, hi: 0.75 };
                let (mut want, mut got) = (vec![0f32; p * LANES], vec![0f32; p * LANES]);
                block_portable(&x, p, &w, &bias, clamp, &mut want);
                block(&x, p, &w, &bias, clamp, &mut got);
                let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-5, "i {i} p {p}: worst {worst:e}");
                assert!(want.iter().any(|&v| v == -0.5) && want.iter().any(|&v| v == 0.75), "the clamp binds");
            }
        }
    }
}
