//! `Reduce<Sum>` of an f32 activation over its trailing axes (a global average pool, after
//! tract's declutter: a sum over H and W, then a multiplication by 1 / (H x W)), with that
//! scaling folded in: one vectorized pass over contiguous rows.
//!
//! Why: tract's generic reduction and its broadcasting Mul (the batch size is symbolic, so the
//! Mul is not specialized) took 3 µs of the test CNN's 24 µs per image for 8K values.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::math::Mul;
use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};

use super::{sole_binary_reader, trailing_axes};
use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastSumRows {
    /// Reduced axes: the last `axes` of the input.
    axes: usize,
    /// Bits of the f32 factor applied to every sum (1.0 when no Mul follows): stored as bits so
    /// that the op is `Eq` and `Hash` as tract's ops must be.
    scale: u32,
}

impl FastSumRows {
    /// The patch that puts a FastSumRows in place of `op` (and of a following Mul by a scalar
    /// constant), when `op` is a sum of f32 values over trailing axes.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Reduce) -> TractResult<Option<TypedModelPatch>> {
        let fact = model.outlet_fact(node.inputs[0])?;
        let rank = fact.rank();
        let Some(axes) = trailing_axes(&op.axes, rank) else { return Ok(None) };
        if op.reducer != Reducer::Sum || fact.datum_type != f32::datum_type() || axes == rank {
            return Ok(None);
        }
        let scaled = scale_after(model, node)?;
        let fast = FastSumRows { axes, scale: scaled.map_or(1.0f32, |(_, s)| s).to_bits() };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(scaled.map_or(node.id, |(id, _)| id), 0), y)?;
        Ok(Some(patch))
    }

    fn output_shape<D: DimLike>(&self, input: &[D]) -> TVec<D> {
        let keep = input.len() - self.axes;
        input.iter().enumerate().map(|(i, d)| if i < keep { d.clone() } else { D::one() }).collect()
    }
}

/// The Mul by a scalar f32 constant that alone reads `node`'s output, if any, and the constant,
/// when the product keeps `node`'s shape.
pub(super) fn scale_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(usize, f32)>> {
    let Some((next, other)) = sole_binary_reader::<Mul>(model, node)? else { return Ok(None) };
    let Some(k) = model.outlet_fact(other)?.konst.as_ref() else { return Ok(None) };
    if k.datum_type() != f32::datum_type() || k.len() != 1 {
        return Ok(None);
    }
    let same_shape =
        model.outlet_fact(OutletId::new(next.id, 0))?.shape == model.outlet_fact(OutletId::new(node.id, 0))?.shape;
    let value = k.try_as_plain_ram()?.as_slice::<f32>()?[0];
    Ok(same_shape.then_some((next.id, value)))
}

impl Op for FastSumRows {
    fn name(&self) -> StaticName {
        "FastSumRows".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("sum of the last {} axes, times {}", self.axes, f32::from_bits(self.scale))])
    }

    op_as_typed_op!();
}

impl TypedOp for FastSumRows {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(&*self.output_shape(&inputs[0].shape))))
    }

    as_op!();
}

impl EvalOp for FastSumRows {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = self.output_shape(input.shape());
        let row: usize = input.shape()[input.rank() - self.axes..].iter().product();
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        // SAFETY: every element is written below, one per row.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        ensure!(y.len() * row == x.len(), "FastSumRows: {:?} does not fit {:?}", input.shape(), shape);
        let scale = f32::from_bits(self.scale);
        if row == 0 {
            y.fill(0.0);
        } else {
            for (out, xs) in y.iter_mut().zip(x.chunks_exact(row)) {
                *out = sum(xs) * scale;
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

simd_kernel! {
    /// Sum of `xs`.
    fn sum_into(xs: &[f32], out: &mut f32) {
        *out = lane_sum(xs, |v| v);
    }
}

/// Sum of `f(x)` over `xs` in 16 running lanes (a single running sum would not vectorize).
/// Inlined into the callers' kernels.
#[inline(always)]
pub(super) fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = xs.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f(v);
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().map(|&v| f(v)).sum::<f32>()
}

fn sum(xs: &[f32]) -> f32 {
    let mut s = 0.0;
    sum_into(xs, &mut s);
    s
}
