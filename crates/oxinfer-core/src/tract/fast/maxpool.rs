//! `MaxPool` for f32, channels first, 1-D or 2-D, without the index output.
//!
//! The common 2x2 stride-2 unpadded pool reads two input rows pairwise. Any other is computed
//! separably from a copy of the plane padded with -inf (padding never wins, as ONNX asks) and
//! split by the stride's phase: ResNet's 3x3 stride-2 pool, column by column with bounds per
//! tap, cost as much as the convolution before it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{QuantizeLinearI8, QuantizeLinearU8};

use super::conv::with_scratch;
use super::geometry::{Geometry, supported};
use super::phased::Phased;
use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastMaxPool {
    spec: PoolSpec,
}

impl FastMaxPool {
    /// The patch that puts a FastMaxPool in place of `op`, when it covers `op` exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &MaxPool) -> TractResult<Option<TypedModelPatch>> {
        let fact = model.outlet_fact(node.inputs[0])?;
        if op.with_index_outputs.is_some() || fact.datum_type != f32::datum_type() || !supported(&op.pool_spec) {
            return Ok(None);
        }
        let fast = FastMaxPool { spec: op.pool_spec.clone() };
        TypedModelPatch::replace_single_op(model, node, &node.inputs, fast).map(Some)
    }

    /// The patch that pools before quantizing, when `op` pools the 8-bit output of a
    /// `QuantizeLinear` of f32 values that nothing else reads (a QOperator export's
    /// `QLinearConv -> MaxPool`): quantization is monotonic, so the max of quantized values is
    /// the quantized max, exactly, and the quantization then runs on the pooled, smaller tensor.
    pub fn before_quantizing(model: &TypedModel, node: &TypedNode, op: &MaxPool) -> TractResult<Option<TypedModelPatch>> {
        let quantize = model.node(node.inputs[0].node);
        let Some(q) = quantize.op_as::<ElementWiseOp>() else { return Ok(None) };
        let is_quantize = q.0.is::<QuantizeLinearU8>() || q.0.is::<QuantizeLinearI8>();
        let [_] = &quantize.outputs[0].successors[..] else { return Ok(None) };
        if !is_quantize
            || op.with_index_outputs.is_some()
            || !supported(&op.pool_spec)
            || model.outlet_fact(quantize.inputs[0])?.datum_type != f32::datum_type()
            || model.output_outlets()?.contains(&node.inputs[0])
        {
            return Ok(None);
        }
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, quantize.inputs[0])?;
        let pooled = patch.wire_node(&node.name, FastMaxPool { spec: op.pool_spec.clone() }, &[x])?;
        let y = patch.wire_node(format!("{}.quantized", node.name), quantize.op.clone(), &pooled)?[0];
        patch.shunt_outside(model, node.id.into(), y)?;
        Ok(Some(patch))
    }
}

impl Op for FastMaxPool {
    fn name(&self) -> StaticName {
        "FastMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self.spec.info())
    }

    op_as_typed_op!();
}

impl EvalOp for FastMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = Geometry::new(&self.spec, input.shape())?;
        let shape = self.spec.output_shape(input.shape())?.shape;
        // SAFETY: every element is written below (each plane's rows are filled, then folded).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
        ensure!(x.len() == g.n * g.c * plane_in && y.len() == g.n * g.c * plane_out, "FastMaxPool: {g:?} does not fit");
        // Serial: a pool is memory-bound and short; split across tract's executor it ran slower
        // on two threads than on one (hand-offs, and pool threads spinning beside what follows).
        if plane_in == 0 {
            y.fill(f32::NEG_INFINITY); // an empty image (padding only): no value wins
        } else if plane_out > 0 {
            let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
            if two_by_two(&g) {
                planes.for_each(|(x, y)| pool_two_by_two(&g, x, y));
            } else {
                let ph = Phased::of(&g);
                let starts: TVec<usize> = (0..g.kw).map(|kx| ph.start(kx * g.dw)).collect();
                let across_len = ph.rows * g.ow;
                with_scratch(ph.plane_len() + across_len, |buf| {
                    let (padded, across) = buf.split_at_mut(ph.plane_len());
                    planes.for_each(|(x, y)| pool_separably(&g, &ph, &starts, x, padded, across, y));
                })?;
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for FastMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.spec.output_facts(inputs)
    }

    as_op!();
}

/// Whether `g` is the unpadded 2x2 stride-2 pool, read two rows pairwise.
fn two_by_two(g: &Geometry) -> bool {
    (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl) == (2, 2, 2, 2, 1, 1, 0, 0) && 2 * g.oh <= g.h && 2 * g.ow <= g.w
}

simd_kernel! {
    /// One channel plane of the 2x2 stride-2 pool: `x` is h x w, `y` oh x ow.
    fn pool_two_by_two(g: &Geometry, x: &[f32], y: &mut [f32]) {
        for (oy, out) in y.chunks_exact_mut(g.ow).enumerate() {
            let r0 = &x[2 * oy * g.w..][..2 * g.ow];
            let r1 = &x[(2 * oy + 1) * g.w..][..2 * g.ow];
            for ((o, a), b) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                *o = a[0].max(a[1]).max(b[0].max(b[1]));
            }
        }
    }
}

simd_kernel! {
    avx2;
    /// One channel plane of any other pool, separably: the plane padded with -inf and split by
    /// the column stride's phase (`padded`, phased.rs), so that each tap column's values for
    /// consecutive outputs are contiguous from `starts[kx]`; the max across tap columns for
    /// every padded row (`across`, rows x ow); then the max down tap rows. Every loop runs over
    /// contiguous values; three taps (the usual 3x3 pool) in one pass without stores between.
    fn pool_separably(g: &Geometry, ph: &Phased, starts: &[usize], x: &[f32], padded: &mut [f32], across: &mut [f32], y: &mut [f32]) {
        ph.fill_with(g, x, padded, f32::NEG_INFINITY);
        let ow = g.ow;
        for (row, out) in padded.chunks_exact(ph.row_len()).zip(across.chunks_exact_mut(ow)) {
            let tap = |kx: usize| &row[starts[kx]..][..ow];
            fold_max(out, g.kw, tap);
        }
        for (oy, out) in y.chunks_exact_mut(ow).enumerate() {
            let tap = |ky: usize| &across[(oy * g.sh + ky * g.dh) * ow..][..ow];
            fold_max(out, g.kh, tap);
        }
    }
}

/// `out` = the elementwise max of `taps(0..k)` (each `out.len()` long).
#[inline(always)]
fn fold_max<'a>(out: &mut [f32], k: usize, taps: impl Fn(usize) -> &'a [f32]) {
    // `if v > m` rather than f32::max: one vmaxps per vector, without f32::max's NaN checks.
    let max = |m: f32, v: f32| if v > m { v } else { m };
    if k == 3 {
        let (a, b, c) = (taps(0), taps(1), taps(2));
        for (((o, &a), &b), &c) in out.iter_mut().zip(a).zip(b).zip(c) {
            *o = max(max(a, b), c);
        }
        return;
    }
    out.copy_from_slice(taps(0));
    for k in 1..k {
        for (o, &v) in out.iter_mut().zip(taps(k)) {
            *o = max(*o, v);
        }
    }
}
