//! ONNX `DynamicQuantizeLinear` of f32 values (what onnxruntime's `quantize_dynamic` puts in
//! front of every integer product), vectorized: one pass for the range, one to quantize.
//! Outputs as tract's op: the u8 values, the scale, the zero point. Where the u8 values feed only
//! the float product that integer.rs writes, `float(y) - float(zero_point)`, that difference is
//! the first output instead, in f32 (every value of it is an integer in -255..=255, exact).
//!
//! Why: tract's op walked the tensor through ndarray value by value with a division each, and
//! the cast and the subtraction after it were generic broadcasting ops: on a quantized BERT
//! encoder (batch 3 x 16 tokens) those took about a third of each run.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::math::Sub;

use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastDynamicQuantize {
    /// The first output is `y - zero_point` in f32 rather than `y` in u8.
    shifted: bool,
}

impl FastDynamicQuantize {
    /// The patch that puts a FastDynamicQuantize in place of tract's `DynamicQuantizeLinearU8`
    /// (and of the cast and subtraction of its zero point after it, where they are all that
    /// reads its values).
    pub fn replacing(model: &TypedModel, node: &TypedNode) -> TractResult<Option<TypedModelPatch>> {
        if node.op().name() != "DynamicQuantizeLinearU8"
            || node.inputs.len() != 1
            || node.outputs.len() != 3
            || model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type()
        {
            return Ok(None);
        }
        let shift = shift_after(model, node)?;
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let outs = patch.wire_node(&node.name, FastDynamicQuantize { shifted: shift.is_some() }, &[x])?;
        let first = match shift {
            Some(sub) => OutletId::new(sub, 0),
            None => OutletId::new(node.id, 0),
        };
        patch.shunt_outside(model, first, outs[0])?;
        for slot in 1..3 {
            if !node.outputs[slot].successors.is_empty() || model.output_outlets()?.contains(&OutletId::new(node.id, slot)) {
                patch.shunt_outside(model, OutletId::new(node.id, slot), outs[slot])?;
            }
        }
        Ok(Some(patch))
    }
}

/// The `Sub` node of `float(y) - float(zero_point)` when the values `y` of `node` feed only it,
/// through a cast to f32, and its other operand is the zero point `node` writes, cast to f32.
fn shift_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<usize>> {
    let to_f32 = |n: &TypedNode| n.op_as::<Cast>().is_some_and(|c| c.to == f32::datum_type());
    let values = OutletId::new(node.id, 0);
    if model.output_outlets()?.contains(&values) {
        return Ok(None);
    }
    let [inlet] = &node.outputs[0].successors[..] else { return Ok(None) };
    let cast = model.node(inlet.node);
    let [sub_inlet] = &cast.outputs[0].successors[..] else { return Ok(None) };
    if !to_f32(cast) || sub_inlet.slot != 0 || model.output_outlets()?.contains(&OutletId::new(cast.id, 0)) {
        return Ok(None);
    }
    let sub = model.node(sub_inlet.node);
    if !sub.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Sub>()) || sub.inputs.len() != 2 {
        return Ok(None);
    }
    // The zero point's cast, through the axes of one that broadcasting added.
    let mut zp_cast = model.node(sub.inputs[1].node);
    while zp_cast.op().name() == "AddAxis" && zp_cast.inputs.len() == 1 {
        zp_cast = model.node(zp_cast.inputs[0].node);
    }
    let from_zero_point = to_f32(zp_cast) && zp_cast.inputs.first() == Some(&OutletId::new(node.id, 2));
    // The difference keeps the values' shape (the zero point is a scalar).
    let same_shape = model.outlet_fact(OutletId::new(sub.id, 0))?.shape == model.outlet_fact(values)?.shape;
    Ok((from_zero_point && same_shape).then_some(sub.id))
}

impl Op for FastDynamicQuantize {
    fn name(&self) -> StaticName {
        "FastDynamicQuantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(if self.shifted { vec!["values minus zero point, in f32".into()] } else { vec![] })
    }

    op_as_typed_op!();
}

impl TypedOp for FastDynamicQuantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = if self.shifted { f32::datum_type() } else { u8::datum_type() };
        Ok(tvec!(dt.fact(inputs[0].shape.clone()), f32::fact([0usize; 0]), u8::fact([0usize; 0])))
    }

    as_op!();
}

impl EvalOp for FastDynamicQuantize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let (scale, zero_point) = scale_and_zero_point(x);
        let values = if self.shifted {
            // SAFETY: every value is written here.
            let mut y = unsafe { Tensor::uninitialized::<f32>(input.shape())? };
            let mut out = y.try_as_plain_ram_mut()?;
            shifted(x, scale, zero_point as f32, out.as_slice_mut::<f32>()?);
            drop(out);
            y
        } else {
            // SAFETY: every value is written here.
            let mut y = unsafe { Tensor::uninitialized::<u8>(input.shape())? };
            let mut out = y.try_as_plain_ram_mut()?;
            quantized(x, scale, zero_point as f32, out.as_slice_mut::<u8>()?);
            drop(out);
            y
        };
        Ok(tvec!(values.into_tvalue(), tensor0(scale).into_tvalue(), tensor0(zero_point).into_tvalue()))
    }
}

/// ONNX's scale and zero point for `x`, as tract computes them: the range widened to hold 0
/// (NaNs ignored), over 255 steps.
fn scale_and_zero_point(x: &[f32]) -> (f32, u8) {
    let mut bounds = (0f32, 0f32);
    range(x, &mut bounds);
    let (min, max) = bounds;
    let scale = (max - min) / u8::MAX as f32;
    let zero_point = (-min / scale).round_ties_even().max(0.0).min(u8::MAX as f32);
    (scale, zero_point as u8)
}

simd_kernel! {
    avx2;
    /// The smallest and largest of `x` and 0, NaNs skipped, to `bounds`.
    fn range(x: &[f32], bounds: &mut (f32, f32)) {
        let (mut lo, mut hi) = ([0f32; 8], [0f32; 8]);
        let mut chunks = x.chunks_exact(8);
        for c in &mut chunks {
            for l in 0..8 {
                lo[l] = if c[l] < lo[l] { c[l] } else { lo[l] };
                hi[l] = if c[l] > hi[l] { c[l] } else { hi[l] };
            }
        }
        let fold = |acc: (f32, f32), &v: &f32| (if v < acc.0 { v } else { acc.0 }, if v > acc.1 { v } else { acc.1 });
        let lanes = lo.iter().zip(&hi).fold((0f32, 0f32), |acc, (&l, &h)| (fold(acc, &l).0, fold(acc, &h).1));
        *bounds = chunks.remainder().iter().fold(lanes, fold);
    }
}

/// `round_ties_even(x / scale) + zero_point` clamped to u8's range, in f32, as tract computes it
/// (a NaN quotient counts as 0, as its integer cast makes it).
#[inline(always)]
fn quantize(x: f32, scale: f32, zero_point: f32) -> f32 {
    let r = (x / scale).round_ties_even();
    let r = if r == r { r } else { 0.0 } + zero_point;
    let r = if r > 0.0 { r } else { 0.0 };
    if r < u8::MAX as f32 { r } else { u8::MAX as f32 }
}

simd_kernel! {
    avx2;
    fn quantized(x: &[f32], scale: f32, zero_point: f32, y: &mut [u8]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = quantize(x, scale, zero_point) as u8;
        }
    }
}

simd_kernel! {
    avx2;
    fn shifted(x: &[f32], scale: f32, zero_point: f32, y: &mut [f32]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = quantize(x, scale, zero_point) - zero_point;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ONNX operator documentation's examples: scale, zero point and values; and the
    /// shifted form equal to the values minus the zero point. 19 values, so that the vector loop
    /// and its remainder both run.
    #[test]
    fn matches_the_onnx_examples() {
        let cases: [(&[f32], f32, u8, &[u8]); 3] = [
            (&[0., 2., -3., -2.5, 1.34, 0.5], 0.019_607_844, 153, &[153, 255, 0, 26, 221, 179]),
            (&[-1., -2.1, -1.3, -2.5, -3.34, -4.], 0.015_686_275, 255, &[191, 121, 172, 96, 42, 0]),
            (
                &[1., 2.1, 1.3, 2.5, 3.34, 4., 1.5, 2.6, 3.9, 4., 3., 2.345],
                0.015_686_275,
                0,
                &[64, 134, 83, 159, 213, 255, 96, 166, 249, 255, 191, 149],
            ),
        ];
        for (x, scale, zero_point, want) in cases {
            // Repeated to 19 values (a whole vector, then a remainder).
            let x: Vec<f32> = x.iter().cycle().take(19).copied().collect();
            let want: Vec<u8> = want.iter().cycle().take(19).copied().collect();
            let (s, z) = scale_and_zero_point(&x);
            assert!((s - scale).abs() < 1e-8 && z == zero_point, "{s} {z}");
            let mut y = vec![0u8; x.len()];
            quantized(&x, s, z as f32, &mut y);
            assert_eq!(y, want);
            let mut d = vec![f32::NAN; x.len()];
            shifted(&x, s, z as f32, &mut d);
            assert_eq!(d, want.iter().map(|&v| v as f32 - z as f32).collect::<Vec<_>>());
        }
    }

    /// All zeros: scale 0, zero point 0, values 0 (tract's NaN quotient cast to 0).
    #[test]
    fn all_zeros_quantize_to_zero() {
        let x = [0f32; 11];
        let (s, z) = scale_and_zero_point(&x);
        assert_eq!((s, z), (0.0, 0));
        let mut y = vec![7u8; 11];
        quantized(&x, s, 0.0, &mut y);
        assert!(y.iter().all(|&v| v == 0));
    }
}
