//! Depthwise `Conv` for f32, channels first, 1-D or 2-D: one group per channel, one output
//! channel per group, constant weights (MobileNet's, EfficientNet's and ConvNeXt's 3x3 to 7x7
//! convolutions), with a ReLU or Clip that follows folded in (clamp.rs).
//!
//! Channels are taken eight at a time, one vector register: a block's planes are copied
//! zero-padded and interleaved (`[row][column][8 channels]`), so that each tap is one vector
//! multiply-add of eight channels' weights by eight channels' pixels, whatever the stride,
//! dilation or plane size, and four output pixels accumulate side by side. The block's outputs
//! are then written back to their eight planes.
//!
//! Why by channel: these networks' planes are small (4x4 to 32x32 at the image sizes the corpus
//! runs), and a kernel vectorized along a row spent more on each plane's setup and short rows
//! than on the arithmetic. tract's own depthwise kernel walks zones of the image per channel, and
//! with a symbolic dim it falls back to an im2col and one product per channel.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};

use super::clamp::Clamp;
use super::conv::{constant_weights, with_scratch};
use super::geometry::{Geometry, supported};
use super::lanes::{LANES, by_blocks, deinterleave, interleave};
use super::{Parts, for_each_shared};

/// Output pixels accumulated side by side (independent sums that hide the add latency).
const PIXELS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastDepthwise {
    spec: PoolSpec,
    /// `[blocks, taps, LANES]`: tap `t` of channel `b * LANES + l` at `(b * taps + t) * LANES + l`,
    /// zero for the channels past the last.
    weights: Arc<Tensor>,
    /// `[blocks, LANES]`: each channel's bias, zero where the model has none.
    bias: Arc<Tensor>,
    /// The ReLU or Clip that follows, folded in.
    clamp: Option<Clamp>,
}

impl FastDepthwise {
    /// The patch that puts a FastDepthwise in place of `op` (and of a ReLU or Clip after it),
    /// when it covers `op` exactly: as many groups as input and output channels, known input
    /// shape, f32, constant weights and bias.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Conv) -> TractResult<Option<TypedModelPatch>> {
        let spec = &op.pool_spec;
        let c = spec.input_channels;
        if op.q_params.is_some()
            || c < 2
            || op.group != c
            || spec.output_channels != c
            || op.kernel_fmt != KernelFormat::OIHW
            || !supported(spec)
        {
            return Ok(None);
        }
        if model.outlet_fact(node.inputs[0])?.shape.as_concrete().is_none() {
            return Ok(None);
        }
        let taps: usize = spec.kernel_shape.iter().product();
        let mut want = tvec![c, 1];
        want.extend(spec.kernel_shape.iter().copied());
        let Some((weights, bias)) = constant_weights(model, node, &want)? else { return Ok(None) };
        let blocks = c.div_ceil(LANES);
        let w = by_blocks(weights.try_as_plain_ram()?.as_slice::<f32>()?, taps);
        let b = match &bias {
            Some(bias) => by_blocks(bias.try_as_plain_ram()?.as_slice::<f32>()?, 1),
            None => vec![0f32; blocks * LANES],
        };
        let clamp = Clamp::after(model, node)?;
        let fast = FastDepthwise {
            spec: spec.clone(),
            weights: Arc::new(Tensor::from_shape(&[blocks, taps, LANES], &w)?),
            bias: Arc::new(Tensor::from_shape(&[blocks, LANES], &b)?),
            clamp: clamp.map(|(c, _)| c),
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[x])?[0];
        let last = clamp.map_or(node.id, |(_, last)| last);
        patch.shunt_outside(model, OutletId::new(last, 0), y)?;
        Ok(Some(patch))
    }
}

impl Op for FastDepthwise {
    fn name(&self) -> StaticName {
        "FastDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.spec.info();
        info.extend(self.clamp.map(|c| c.to_string()));
        Ok(info)
    }

    op_as_typed_op!();
}

impl TypedOp for FastDepthwise {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.spec.output_facts(inputs)
    }

    as_op!();
}

impl EvalOp for FastDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = Geometry::new(&self.spec, input.shape())?;
        let shape = self.spec.output_shape(input.shape())?.shape;
        // SAFETY: every element is written below: each block's outputs are copied out whole.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let weights_view = self.weights.try_as_plain_ram()?;
        let w = weights_view.as_slice::<f32>()?;
        let bias_view = self.bias.try_as_plain_ram()?;
        let bias = bias_view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        let (plane_in, plane_out, taps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
        let blocks = g.c.div_ceil(LANES);
        ensure!(
            x.len() == g.n * g.c * plane_in
                && y.len() == g.n * g.c * plane_out
                && w.len() == blocks * taps * LANES
                && bias.len() == blocks * LANES,
            "FastDepthwise: {g:?} does not fit"
        );
        if y.is_empty() {
            return Ok(tvec!(output.into_tvalue()));
        }
        let layout = Interleaved::of(&g);
        let clamp = self.clamp.unwrap_or(Clamp { lo: f32::NEG_INFINITY, hi: f32::INFINITY });
        // Where tap (ky, kx) reads in the padded block, from a window's origin.
        let offsets: Vec<usize> = (0..g.kh)
            .flat_map(|ky| (0..g.kw).map(move |kx| (ky * g.dh * layout.cols + kx * g.dw) * LANES))
            .collect();
        let out = Parts(y.as_mut_ptr());
        // Block `b` of image `n`: its input planes, and where its outputs go.
        let block = |job: usize| {
            let (n, b) = (job / blocks, job % blocks);
            let first = n * g.c + b * LANES;
            let lanes = LANES.min(g.c - b * LANES);
            let x = &x[first * plane_in..(first + lanes) * plane_in];
            // SAFETY: job `job`'s planes, disjoint from every other job's, inside `y` (its
            // length was checked above); for_each_shared returns after the last job.
            let y = unsafe { std::slice::from_raw_parts_mut(out.get().add(first * plane_out), lanes * plane_out) };
            let bias = bias[b * LANES..].first_chunk().context("FastDepthwise: a bias per lane")?;
            let taps = Taps { offsets: &offsets, w: &w[b * taps * LANES..(b + 1) * taps * LANES], bias, clamp };
            // The thread's scratch buffer, shared with conv.rs: the padded planes, the block's
            // outputs, the planes interleaved whole.
            with_scratch(layout.len() + (plane_out + plane_in) * LANES, |buf| {
                let (padded, buf) = buf.split_at_mut(layout.len());
                let (out, whole) = buf.split_at_mut(plane_out * LANES);
                layout.fill(&g, x, plane_in, whole, padded);
                convolve(&g, &layout, &taps, padded, out);
                let mut planes = y.chunks_exact_mut(plane_out);
                let mut planes: [&mut [f32]; LANES] = std::array::from_fn(|_| planes.next().unwrap_or_default());
                deinterleave(out, plane_out, &mut planes[..lanes]);
            })
        };
        // Work in units of SHARE_WORK: with the layout changes, about 16 per multiply-add.
        for_each_shared(64 * g.n * g.c * plane_out * taps, g.n * blocks, block)?;
        Ok(tvec!(output.into_tvalue()))
    }
}

/// A block's planes zero-padded and interleaved: `rows x cols` pixels of `LANES` channels, the
/// rows and columns that the windows read from the padded origin.
#[derive(Debug, Clone, Copy)]
struct Interleaved {
    rows: usize,
    cols: usize,
}

impl Interleaved {
    fn of(g: &Geometry) -> Interleaved {
        Interleaved { rows: (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1, cols: (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1 }
    }

    fn len(&self) -> usize {
        self.rows * self.cols * LANES
    }

    /// Copies `x`, up to `LANES` planes of `plane` values, into `padded`; zero in the padding
    /// and in the lanes past the last plane. `whole`: `plane * LANES` values of scratch, where
    /// planes of rows shorter than a register tile are interleaved whole first (full tiles),
    /// then copied row by row into place.
    fn fill(&self, g: &Geometry, x: &[f32], plane: usize, whole: &mut [f32], padded: &mut [f32]) {
        let mut planes = x.chunks_exact(plane);
        let planes: [&[f32]; LANES] = std::array::from_fn(|_| planes.next().unwrap_or_default());
        let lanes = x.len() / plane;
        // Rows of a register tile or more are interleaved in place; shorter ones whole first.
        let short = g.w < LANES;
        if short {
            interleave(&planes[..lanes], plane, whole);
        }
        // The input rows and columns that the windows read, and where they start.
        let (rows, cols) = (self.rows.saturating_sub(g.pt).min(g.h), self.cols.saturating_sub(g.pl).min(g.w));
        let left = g.pl.min(self.cols);
        for (py, dst) in padded.chunks_exact_mut(self.cols * LANES).enumerate() {
            let Some(iy) = py.checked_sub(g.pt).filter(|&iy| iy < rows) else {
                dst.fill(0.0);
                continue;
            };
            dst[..left * LANES].fill(0.0);
            dst[(left + cols) * LANES..].fill(0.0);
            let dst = &mut dst[left * LANES..(left + cols) * LANES];
            if short {
                dst.copy_from_slice(&whole[iy * g.w * LANES..(iy * g.w + cols) * LANES]);
            } else {
                let row: [&[f32]; LANES] = std::array::from_fn(|l| planes[l].get(iy * g.w..iy * g.w + cols).unwrap_or_default());
                interleave(&row[..lanes], cols, dst);
            }
        }
    }
}

/// What every window of a block multiplies by: where each tap reads in the padded block from
/// a window's origin, the taps' weights (`[taps][LANES]`), the bias, the clamp.
struct Taps<'a> {
    offsets: &'a [usize],
    w: &'a [f32],
    bias: &'a [f32; LANES],
    clamp: Clamp,
}

/// One block's outputs, `[oh * ow][LANES]`: `bias + sum over taps of weight * pixel`, clamped.
/// Pixels are taken `PIXELS` at a time in output order, across rows, so that planes of a few
/// pixels also keep that many sums going.
fn convolve(g: &Geometry, layout: &Interleaved, taps: &Taps, padded: &[f32], out: &mut [f32]) {
    let row_len = layout.cols * LANES;
    let origin = |q: usize| (q / g.ow) * g.sh * row_len + (q % g.ow) * g.sw * LANES;
    let total = g.oh * g.ow;
    let mut q = 0;
    while q + PIXELS <= total {
        pixels::<PIXELS>(taps, padded, std::array::from_fn(|j| origin(q + j)), &mut out[q * LANES..]);
        q += PIXELS;
    }
    while q < total {
        pixels::<1>(taps, padded, [origin(q)], &mut out[q * LANES..]);
        q += 1;
    }
}

/// `P` outputs, whose windows start at `origins` in `padded`, to the first `P` pixels of `out`:
/// with AVX2 and FMA registers where the CPU has them (the compiler left the portable loops
/// scalar), else the portable loops.
#[inline(always)]
fn pixels<const P: usize>(taps: &Taps, padded: &[f32], origins: [usize; P], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { avx2::pixels::<P>(taps, padded, origins, out) };
    }
    pixels_portable::<P>(taps, padded, origins, out)
}

/// [`pixels`], value by value: the reference, and the path of CPUs without AVX2.
fn pixels_portable<const P: usize>(taps: &Taps, padded: &[f32], origins: [usize; P], out: &mut [f32]) {
    let mut acc = [*taps.bias; P];
    for (&off, tap) in taps.offsets.iter().zip(taps.w.chunks_exact(LANES)) {
        for (acc, &origin) in acc.iter_mut().zip(&origins) {
            let px = &padded[origin + off..origin + off + LANES];
            for l in 0..LANES {
                acc[l] += tap[l] * px[l];
            }
        }
    }
    for (acc, dst) in acc.iter().zip(out.chunks_exact_mut(LANES)) {
        let dst: &mut [f32; LANES] = dst.first_chunk_mut().expect("an output per lane");
        *dst = taps.clamp.lanes(acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, Taps};

    /// [`super::pixels`] in AVX2 registers, one fused multiply-add per tap and pixel.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn pixels<const P: usize>(taps: &Taps, padded: &[f32], origins: [usize; P], out: &mut [f32]) {
        // SAFETY (loads and stores): each pointer is that of a slice of LANES values, bounds
        // checked by the slicing.
        let mut acc = [unsafe { _mm256_loadu_ps(taps.bias.as_ptr()) }; P];
        for (&off, tap) in taps.offsets.iter().zip(taps.w.chunks_exact(LANES)) {
            let w = unsafe { _mm256_loadu_ps(tap.as_ptr()) };
            for (acc, &origin) in acc.iter_mut().zip(&origins) {
                let px = &padded[origin + off..origin + off + LANES];
                *acc = _mm256_fmadd_ps(w, unsafe { _mm256_loadu_ps(px.as_ptr()) }, *acc);
            }
        }
        // max_ps returns its second operand for a NaN: the portable clamp's lower bound.
        let (lo, hi) = (_mm256_set1_ps(taps.clamp.lo), _mm256_set1_ps(taps.clamp.hi));
        for (acc, dst) in acc.iter().zip(out.chunks_exact_mut(LANES)) {
            let v = _mm256_min_ps(_mm256_max_ps(*acc, lo), hi);
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dispatched windows (AVX2 + FMA on such a CPU) equal the portable loops, for one and
    /// four pixels, a clamp that binds on both sides, and 3x3 and 7x7 taps.
    #[test]
    fn pixels_equal_the_portable_loops() {
        let value = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let padded: Vec<f32> = (0..64 * LANES).map(value).collect();
        for taps_count in [9, 49] {
            let offsets: Vec<usize> = (0..taps_count).map(|t| (t % 13) * LANES).collect();
            let w: Vec<f32> = (0..taps_count * LANES).map(|i| value(i + 17)).collect();
            let bias: [f32; LANES] = std::array::from_fn(|l| value(l + 3));
            let taps = Taps { offsets: &offsets, w: &w, bias: &bias, clamp: Clamp { lo: -0.5, hi: 0.75 } };
            let origins = [0, 5 * LANES, 9 * LANES, 40 * LANES];
            let (mut got, mut want) = (vec![f32::NAN; 4 * LANES], vec![f32::NAN; 4 * LANES]);
            pixels::<4>(&taps, &padded, origins, &mut got);
            pixels_portable::<4>(&taps, &padded, origins, &mut want);
            pixels::<1>(&taps, &padded, [7 * LANES], &mut got[..LANES]);
            pixels_portable::<1>(&taps, &padded, [7 * LANES], &mut want[..LANES]);
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "{taps_count} taps: worst {worst:e}");
            assert!(want.contains(&-0.5) && want.contains(&0.75), "the clamp binds on both sides");
        }
    }
}
