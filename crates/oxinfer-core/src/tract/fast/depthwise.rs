//! Depthwise `Conv` for f32, channels first, 1-D or 2-D: one group per channel, one output
//! channel per group, constant weights (MobileNet's, EfficientNet's and ConvNeXt's 3x3 to 7x7
//! convolutions). Each channel's plane is copied zero-padded and split by stride phase
//! (phased.rs), so that every tap reads one contiguous run of its row for a row of outputs
//! whatever the stride; the output row then accumulates `weight * run` over the taps, a loop
//! the compiler vectorizes.
//!
//! tract's own depthwise kernel walks zones of the image per channel, which costs more than
//! the arithmetic on the small planes of these networks, and with a symbolic dim it falls back
//! to an im2col and one product per channel.

use std::sync::Arc;

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};

use super::conv::{constant_weights, with_scratch};
use super::geometry::{Geometry, supported};
use super::phased::Phased;
use super::threads_for;
use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastDepthwise {
    spec: PoolSpec,
    /// `[C, 1, kh, kw]`: each channel's taps, row-major.
    weights: Arc<Tensor>,
    /// One value per channel; `None` when the model's bias is zero.
    bias: Option<Arc<Tensor>>,
}

impl FastDepthwise {
    /// The patch that puts a FastDepthwise in place of `op`, when it covers `op` exactly: as
    /// many groups as input and output channels, known input shape, f32, constant weights and
    /// bias.
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
        let mut want = tvec![c, 1];
        want.extend(spec.kernel_shape.iter().copied());
        let Some((weights, bias)) = constant_weights(model, node, &want)? else { return Ok(None) };
        let fast = FastDepthwise { spec: spec.clone(), weights, bias };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(node.id, 0), y)?;
        Ok(Some(patch))
    }
}

impl Op for FastDepthwise {
    fn name(&self) -> StaticName {
        "FastDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self.spec.info())
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
        // SAFETY: every element is written below: each output row is filled before it accumulates.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let weights_view = self.weights.try_as_plain_ram()?;
        let w = weights_view.as_slice::<f32>()?;
        let bias_view = self.bias.as_ref().map(|b| b.try_as_plain_ram()).transpose()?;
        let bias = bias_view.as_ref().map(|v| v.as_slice::<f32>()).transpose()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        let (plane_in, plane_out, taps) = (g.h * g.w, g.oh * g.ow, g.kh * g.kw);
        ensure!(
            x.len() == g.n * g.c * plane_in && y.len() == g.n * g.c * plane_out && w.len() == g.c * taps,
            "FastDepthwise: {g:?} does not fit"
        );
        if y.is_empty() {
            return Ok(tvec!(output.into_tvalue()));
        }
        let layout = Phased::of(&g);
        // Tap (ky, kx) reads padded row `oy * sh + ky * dh`, from column `ox * sw + kx * dw`:
        // in the phase-split row, phase `kx * dw % sw` at `ox + kx * dw / sw`.
        let offsets: Vec<usize> = (0..g.kh)
            .flat_map(|ky| (0..g.kw).map(move |kx| (ky, kx * g.dw)))
            .map(|(ky, at)| ky * g.dh * layout.row_len() + layout.start(at))
            .collect();
        // Plane `i` of the batch: channel `i % c` of image `i / c`.
        let plane = |i: usize, y: &mut [f32]| {
            let c = i % g.c;
            let (x, w) = (&x[i * plane_in..(i + 1) * plane_in], &w[c * taps..(c + 1) * taps]);
            let b = bias.map_or(0.0, |b| b[c]);
            // The thread's scratch buffer, shared with conv.rs: one padded, phase-split plane.
            with_scratch(layout.plane_len(), |padded| {
                layout.fill(&g, x, padded);
                channel(&g, &layout, &offsets, padded, w, b, y);
            })
        };
        match threads_for(g.n * g.c * plane_out * taps) {
            Some(pool) => pool.install(|| y.par_chunks_mut(plane_out).enumerate().try_for_each(|(i, y)| plane(i, y)))?,
            None => y.chunks_exact_mut(plane_out).enumerate().try_for_each(|(i, y)| plane(i, y))?,
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

simd_kernel! {
    /// One channel's output rows: `bias + sum over taps of weight * padded run`; `offsets[t]`:
    /// where tap `t`'s run for the first output begins in the padded plane. Columns are taken
    /// in chunks of 32, 16, 8, 4, then 1, whose sums stay in registers over all the taps.
    fn channel(g: &Geometry, layout: &Phased, offsets: &[usize], padded: &[f32], w: &[f32], bias: f32, y: &mut [f32]) {
        let row_len = layout.row_len();
        for (oy, out) in y.chunks_exact_mut(g.ow).enumerate() {
            let base = oy * g.sh * row_len;
            let mut ox = 0;
            while ox < g.ow {
                let at = base + ox;
                let rest = &mut out[ox..];
                ox += match g.ow - ox {
                    32.. => chunk::<32>(padded, offsets, w, at, bias, rest),
                    16.. => chunk::<16>(padded, offsets, w, at, bias, rest),
                    8.. => chunk::<8>(padded, offsets, w, at, bias, rest),
                    4.. => chunk::<4>(padded, offsets, w, at, bias, rest),
                    _ => chunk::<1>(padded, offsets, w, at, bias, rest),
                };
            }
        }
    }
}

/// `N` outputs from `at`: returns `N`.
#[inline(always)]
fn chunk<const N: usize>(padded: &[f32], offsets: &[usize], w: &[f32], at: usize, bias: f32, out: &mut [f32]) -> usize {
    let mut acc = [bias; N];
    for (&off, &a) in offsets.iter().zip(w) {
        let run = &padded[at + off..at + off + N];
        for l in 0..N {
            acc[l] += a * run[l];
        }
    }
    out[..N].copy_from_slice(&acc);
    N
}
