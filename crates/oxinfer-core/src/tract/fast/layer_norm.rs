//! Layer normalization of f32 values over one axis, any axis: `(x - mean) / sqrt(var + eps)`,
//! from the chain that tract's declutter leaves of ONNX's `LayerNormalization` (a sum, its
//! scaling to the mean, the subtraction, then `RmsNorm`), in two passes over each slice.
//!
//! Why: a channels-first normalization (ConvNeXt's, which tract moves onto the channel axis to
//! drop the transposes around it) goes through tract's generic reduction and broadcasting ops,
//! and `RmsNorm` off the last axis takes its slow path: about half of a small ConvNeXt's run.
//! On the last axis (every transformer) the two passes vectorize along the row.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::math::Sub;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, RmsNorm};

use super::reduce::{lane_sum, scale_after};
use super::{by_rows, in_place, sole_binary_reader};
use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastLayerNorm {
    axis: usize,
    /// Bits of the f32 factor from the sum to the mean (1 / the axis' length, as exported).
    scale: u32,
    /// Bits of the f32 epsilon added to the variance.
    eps: u32,
}

impl FastLayerNorm {
    /// The patch that puts a FastLayerNorm in place of the chain that starts at `op`, a sum
    /// over one axis of f32 values: `RmsNorm(x - sum(x) * scale)` on the same axis, each link
    /// read by the next alone.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Reduce) -> TractResult<Option<TypedModelPatch>> {
        let x = node.inputs[0];
        let [axis] = op.axes[..] else { return Ok(None) };
        if op.reducer != Reducer::Sum || model.outlet_fact(x)?.datum_type != f32::datum_type() {
            return Ok(None);
        }
        let Some((mean, scale)) = scale_after(model, node)? else { return Ok(None) };
        let Some((sub, other)) = sole_binary_reader::<Sub>(model, model.node(mean))? else { return Ok(None) };
        // x - mean, not mean - x.
        if other != x || sub.inputs[1] != OutletId::new(mean, 0) {
            return Ok(None);
        }
        let [inlet] = &sub.outputs[0].successors[..] else { return Ok(None) };
        let norm = model.node(inlet.node);
        let Some(rms) = norm.op_as::<RmsNorm>() else { return Ok(None) };
        if rms.axis != axis || rms.eps.datum_type() != f32::datum_type() || model.output_outlets()?.contains(&sub.id.into()) {
            return Ok(None);
        }
        let eps = rms.eps.cast_to_scalar::<f32>()?;
        let fast = FastLayerNorm { axis, scale: scale.to_bits(), eps: eps.to_bits() };
        let mut patch = TypedModelPatch::default();
        let tapped = patch.tap_model(model, x)?;
        let y = patch.wire_node(&norm.name, fast, &[tapped])?[0];
        patch.shunt_outside(model, norm.id.into(), y)?;
        Ok(Some(patch))
    }
}

impl Op for FastLayerNorm {
    fn name(&self) -> StaticName {
        "FastLayerNorm".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "axis {}, mean = sum x {}, eps {}",
            self.axis,
            f32::from_bits(self.scale),
            f32::from_bits(self.eps)
        )])
    }

    op_as_typed_op!();
}

impl TypedOp for FastLayerNorm {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(self.axis < inputs[0].rank(), "FastLayerNorm: axis {} of rank {}", self.axis, inputs[0].rank());
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(&self, inputs: &[&TypedFact], _outputs: &[&TypedFact]) -> TractResult<AxesMapping> {
        AxesMapping::natural_for_rank(1, 1, inputs[0].rank())
    }

    /// Moves with the axes around it, so that tract can drop the transposes that an export
    /// puts around a channels-first normalization.
    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        let Some(axis) = change.transform_axis(self.axis) else { return Ok(None) };
        let op = Some(Box::new(FastLayerNorm { axis, ..self.clone() }) as _);
        Ok(Some(AxisChangeConsequence::new(model, node, op, change)))
    }

    as_op!();
}

impl EvalOp for FastLayerNorm {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        let n = shape[self.axis];
        let inner: usize = shape[self.axis + 1..].iter().product();
        let (scale, eps) = (f32::from_bits(self.scale), f32::from_bits(self.eps));
        let slice = n * inner;
        in_place(input, move |x| {
            if slice > 0 {
                // ~8 operations per value over two reads and a write.
                by_rows(x, slice, 8, move |slices| {
                    for s in slices.chunks_exact_mut(slice) {
                        if inner == 1 {
                            normalize_row(s, scale, eps);
                        } else {
                            normalize_columns(s, inner, scale, eps);
                        }
                    }
                })?;
            }
            Ok(())
        })
    }
}

simd_kernel! {
    avx2;
    /// One row normalized in place: the mean (`sum x scale`), then the mean of squared
    /// deviations, then the scaled deviations, each pass in 16 running lanes.
    fn normalize_row(x: &mut [f32], scale: f32, eps: f32) {
        let n = x.len() as f32;
        let mean = lane_sum(x, |v| v) * scale;
        let var = lane_sum(x, |v| (v - mean) * (v - mean)) / n;
        let r = 1.0 / (var + eps).sqrt();
        for v in x.iter_mut() {
            *v = (*v - mean) * r;
        }
    }
}

/// Columns normalized together, a register's worth of them per running sum.
const COLUMNS: usize = 64;

simd_kernel! {
    avx2;
    /// `x` is `n x inner` (channels by pixels): each of the `inner` columns normalized over its
    /// `n` values, in place, [`COLUMNS`] columns at a time so that the running sums stay in
    /// registers and each pass reads rows contiguously.
    fn normalize_columns(x: &mut [f32], inner: usize, scale: f32, eps: f32) {
        let n = x.len() / inner;
        let mut j0 = 0;
        while j0 < inner {
            let w = COLUMNS.min(inner - j0);
            let mut mean = [0f32; COLUMNS];
            let mut var = [0f32; COLUMNS];
            let (mean, var) = (&mut mean[..w], &mut var[..w]);
            for row in x.chunks_exact(inner) {
                for (m, &v) in mean.iter_mut().zip(&row[j0..j0 + w]) {
                    *m += v;
                }
            }
            for m in mean.iter_mut() {
                *m *= scale;
            }
            for row in x.chunks_exact(inner) {
                for ((s, &m), &v) in var.iter_mut().zip(mean.iter()).zip(&row[j0..j0 + w]) {
                    *s += (v - m) * (v - m);
                }
            }
            for s in var.iter_mut() {
                *s = 1.0 / (*s / n as f32 + eps).sqrt();
            }
            for row in x.chunks_exact_mut(inner) {
                for ((v, &m), &r) in row[j0..j0 + w].iter_mut().zip(mean.iter()).zip(var.iter()) {
                    *v = (*v - m) * r;
                }
            }
            j0 += w;
        }
    }
}
