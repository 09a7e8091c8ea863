//! tract's `GeluExact` (the exact, erf GELU its declutter finds in an ONNX graph) for f32, on
//! the vectorized kernel candle's GELU uses (`crate::fastmath::gelu_slice`), in place.
//!
//! Why: tract's op scales each 1024-value chunk into a scratch buffer, runs its erf kernel
//! there, then combines: three passes, where this is one. On the MiniLM-shaped encoder (batch
//! 1, one thread) its six GELUs took 0.86 of 23 ms.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::GeluExact;

use super::{by_rows, in_place};
use crate::fastmath::gelu_slice;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FastGelu;

impl FastGelu {
    /// The patch that puts a FastGelu in place of `op`, when it is tract's exact GELU of f32
    /// values.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &ElementWiseOp) -> TractResult<Option<TypedModelPatch>> {
        let f32_in = model.outlet_fact(node.inputs[0])?.datum_type == f32::datum_type();
        if !op.0.is::<GeluExact>() || !f32_in || op.1.is_some_and(|dt| dt != f32::datum_type()) {
            return Ok(None);
        }
        Ok(Some(TypedModelPatch::replace_single_op(model, node, &node.inputs, FastGelu)?))
    }
}

impl Op for FastGelu {
    fn name(&self) -> StaticName {
        "FastGelu".into()
    }

    op_as_typed_op!();
}

impl TypedOp for FastGelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl EvalOp for FastGelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // Rows of one value: any cut will do. ~30 operations per value (erf, exp, a division).
        in_place(args_1!(inputs), |x| by_rows(x, 1, 32, gelu_slice))
    }
}
