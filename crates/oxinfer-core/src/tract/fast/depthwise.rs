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

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};

use super::clamp::Clamp;
use super::conv::{constant_weights, with_scratch};
use super::geometry::{Geometry, supported};
use super::lanes::{LANES, deinterleave, interleave};
use super::threads_for;
use crate::simd::simd_kernel;

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
        let mut w = vec![0f32; blocks * taps * LANES];
        for (ch, taps_of) in weights.try_as_plain_ram()?.as_slice::<f32>()?.chunks_exact(taps).enumerate() {
            let (b, l) = (ch / LANES, ch % LANES);
            for (t, &v) in taps_of.iter().enumerate() {
                w[(b * taps + t) * LANES + l] = v;
            }
        }
        let mut b = vec![0f32; blocks * LANES];
        if let Some(bias) = &bias {
            b[..c].copy_from_slice(bias.try_as_plain_ram()?.as_slice::<f32>()?);
        }
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
        if let Some(c) = self.clamp {
            info.push(format!("then clamp to [{}, {}]", c.lo, c.hi));
        }
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
        // Block `b` of image `n`: its input planes, and where its outputs go.
        let block = |(n, b): (usize, usize), y: &mut [f32]| {
            let first = n * g.c + b * LANES;
            let lanes = y.len() / plane_out;
            let x = &x[first * plane_in..(first + lanes) * plane_in];
            let (w, bias) = (&w[b * taps * LANES..(b + 1) * taps * LANES], &bias[b * LANES..(b + 1) * LANES]);
            // The thread's scratch buffer, shared with conv.rs: the interleaved planes, then
            // the block's outputs.
            with_scratch(layout.len() + plane_out * LANES, |buf| {
                let (padded, out) = buf.split_at_mut(layout.len());
                layout.fill(&g, x, plane_in, padded);
                convolve(&g, &layout, padded, w, bias, clamp, out);
                let mut planes = y.chunks_exact_mut(plane_out);
                let mut planes: [&mut [f32]; LANES] = std::array::from_fn(|_| planes.next().unwrap_or_default());
                deinterleave(out, plane_out, &mut planes[..lanes]);
            })
        };
        let mut jobs: Vec<((usize, usize), &mut [f32])> = y
            .chunks_exact_mut(g.c * plane_out)
            .enumerate()
            .flat_map(|(n, image)| image.chunks_mut(LANES * plane_out).enumerate().map(move |(b, y)| ((n, b), y)))
            .collect();
        match threads_for(g.n * g.c * plane_out * taps) {
            Some(pool) => pool.install(|| jobs.par_iter_mut().try_for_each(|(at, y)| block(*at, y)))?,
            None => jobs.iter_mut().try_for_each(|(at, y)| block(*at, y))?,
        }
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
    /// and in the lanes past the last plane.
    fn fill(&self, g: &Geometry, x: &[f32], plane: usize, padded: &mut [f32]) {
        let mut planes = x.chunks_exact(plane);
        let planes: [&[f32]; LANES] = std::array::from_fn(|_| planes.next().unwrap_or_default());
        let lanes = x.len() / plane;
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
            let row: [&[f32]; LANES] = std::array::from_fn(|l| planes[l].get(iy * g.w..iy * g.w + cols).unwrap_or_default());
            interleave(&row[..lanes], cols, &mut dst[left * LANES..]);
        }
    }
}

simd_kernel! {
    /// One block's outputs, `[oh * ow][LANES]`: `bias + sum over taps of weight * pixel`, clamped.
    fn convolve(g: &Geometry, layout: &Interleaved, padded: &[f32], w: &[f32], bias: &[f32], clamp: Clamp, out: &mut [f32]) {
        let row_len = layout.cols * LANES;
        for (oy, out) in out.chunks_exact_mut(g.ow * LANES).enumerate() {
            let rows = &padded[oy * g.sh * row_len..];
            let mut ox = 0;
            while ox + PIXELS <= g.ow {
                pixels::<PIXELS>(g, row_len, rows, w, bias, clamp, ox, out);
                ox += PIXELS;
            }
            while ox < g.ow {
                pixels::<1>(g, row_len, rows, w, bias, clamp, ox, out);
                ox += 1;
            }
        }
    }
}

/// Outputs `ox .. ox + P` of one row; `rows`: the padded rows from the window's first.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pixels<const P: usize>(
    g: &Geometry,
    row_len: usize,
    rows: &[f32],
    w: &[f32],
    bias: &[f32],
    clamp: Clamp,
    ox: usize,
    out: &mut [f32],
) {
    let bias: &[f32; LANES] = bias.first_chunk().expect("a bias per lane");
    let mut acc = [*bias; P];
    for ky in 0..g.kh {
        let row = &rows[ky * g.dh * row_len..][..row_len];
        for kx in 0..g.kw {
            let tap: &[f32; LANES] = w[(ky * g.kw + kx) * LANES..].first_chunk().expect("a weight per lane");
            for (p, acc) in acc.iter_mut().enumerate() {
                let at = ((ox + p) * g.sw + kx * g.dw) * LANES;
                let px: &[f32; LANES] = row[at..].first_chunk().expect("a pixel per lane");
                for l in 0..LANES {
                    acc[l] += tap[l] * px[l];
                }
            }
        }
    }
    for (p, acc) in acc.iter().enumerate() {
        let dst: &mut [f32; LANES] = out[(ox + p) * LANES..].first_chunk_mut().expect("an output per lane");
        *dst = clamp.lanes(acc);
    }
}
