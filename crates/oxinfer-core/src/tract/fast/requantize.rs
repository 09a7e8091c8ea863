//! A `QuantizeLinear` whose every reader is a `DequantizeLinear`, computed as one f32 to f32
//! pass: `(clamp(round(x * 1/scale) + zero_point) - zero_point') * scale'`. Static QDQ models
//! (and QOperator ones, once integer.rs has made their QLinear ops float ops between a DQ and
//! a Q) put such a pair on every activation between two layers.
//!
//! Why: tract quantizes value by value into a u8 / i8 tensor and dequantizes it in a second
//! pass; on a QDQ MobileNetV2 the quantizations alone took half of each run. Here the values
//! stay f32 (every integer of the range is exact in f32), the loop vectorizes, and the work is
//! shared with lingering helpers (`by_rows`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};

use super::{by_rows, in_place};
use crate::simd::simd_kernel;
use crate::tract::dequantize::Dequantize;

/// The integer range, zero points and scales of one quantize-then-dequantize.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Requantize {
    /// Multiplies before rounding: 1 / the quantization's scale, as tract keeps it.
    inv_scale: f32,
    zero_point: f32,
    lo: f32,
    hi: f32,
    /// The dequantization's.
    dq_zero_point: f32,
    dq_scale: f32,
}

// No field is NaN (scales are positive, the rest integers), so equality is total.
impl Eq for Requantize {}

impl std::hash::Hash for Requantize {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for v in [self.inv_scale, self.zero_point, self.lo, self.hi, self.dq_zero_point, self.dq_scale] {
            v.to_bits().hash(state);
        }
    }
}

impl Requantize {
    /// The patch that puts a Requantize in place of each dequantization reading `node` (a
    /// quantization of f32 values), when every reader of its output is one.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &ElementWiseOp) -> TractResult<Option<TypedModelPatch>> {
        let (inv_scale, zero_point, lo, hi) = if let Some(q) = op.0.downcast_ref::<QuantizeLinearU8>() {
            (q.scale, q.zero_point as f32, u8::MIN as f32, u8::MAX as f32)
        } else if let Some(q) = op.0.downcast_ref::<QuantizeLinearI8>() {
            (q.scale, q.zero_point as f32, i8::MIN as f32, i8::MAX as f32)
        } else {
            return Ok(None);
        };
        let out = OutletId::new(node.id, 0);
        let readers = &node.outputs[0].successors;
        if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type()
            || readers.is_empty()
            || model.output_outlets()?.contains(&out)
            || !inv_scale.is_finite()
        {
            return Ok(None);
        }
        let mut dequantizations = Vec::with_capacity(readers.len());
        for inlet in readers {
            let reader = model.node(inlet.node);
            let linear = match reader.op_as::<DequantizeLinearF32>() {
                Some(dq) => dq,
                None => match reader.op_as::<Dequantize>() {
                    Some(dq) => dq.linear(),
                    None => return Ok(None),
                },
            };
            if !linear.scale.is_finite() || model.outlet_fact(OutletId::new(reader.id, 0))?.datum_type != f32::datum_type() {
                return Ok(None);
            }
            dequantizations.push((reader.id, linear.zero_point as f32, linear.scale));
        }
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        for (id, dq_zero_point, dq_scale) in dequantizations {
            let op = Requantize { inv_scale, zero_point, lo, hi, dq_zero_point, dq_scale };
            let y = patch.wire_node(format!("{}.requantize", model.node(id).name), op, &[x])?[0];
            patch.shunt_outside(model, OutletId::new(id, 0), y)?;
        }
        Ok(Some(patch))
    }
}

impl Op for Requantize {
    fn name(&self) -> StaticName {
        "Requantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "1/scale {} zero point {} in [{}, {}], then scale {} zero point {}",
            self.inv_scale, self.zero_point, self.lo, self.hi, self.dq_scale, self.dq_zero_point
        )])
    }

    op_as_typed_op!();
}

impl TypedOp for Requantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl EvalOp for Requantize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let this = *self;
        in_place(args_1!(inputs), |x| by_rows(x, 1, 4, move |x| requantize(x, this)))
    }
}

simd_kernel! {
    avx2;
    /// `x = (clamp(round_ties_even(x * inv_scale) + zero_point, lo, hi) - dq_zero_point) *
    /// dq_scale`: tract's QuantizeLinear then DequantizeLinear, in f32 (a NaN ends at `lo`).
    fn requantize(x: &mut [f32], q: Requantize) {
        for v in x.iter_mut() {
            let r = (*v * q.inv_scale).round_ties_even() + q.zero_point;
            let r = if r > q.lo { r } else { q.lo };
            let r = if r < q.hi { r } else { q.hi };
            *v = (r - q.dq_zero_point) * q.dq_scale;
        }
    }
}
