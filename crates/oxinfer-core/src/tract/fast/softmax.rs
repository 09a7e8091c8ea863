//! `Softmax` of f32 values over trailing axes: one vectorized pass per row (max, exp and sum,
//! scale) with the row kernel candle's attention uses (`crate::fastmath::softmax_rows`).
//!
//! Why: tract's f32 softmax calls three generic kernels per row, each with its own set-up; on
//! the MiniLM-shaped encoder (rows of 128 attention scores) the two softmaxes took 7.7 of the
//! 17 ms of a 32-sentence batch on one thread, more than every matrix product together.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::{by_rows, in_place, trailing_axes};
use crate::fastmath::softmax_rows;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastSoftmax {
    /// Normalized axes: the last `axes` of the input.
    axes: usize,
}

impl FastSoftmax {
    /// The patch that puts a FastSoftmax in place of `op`, when `op` is a plain (not log, not
    /// quantized) softmax of f32 values over trailing axes.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Softmax) -> TractResult<Option<TypedModelPatch>> {
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some(axes) = trailing_axes(&op.axes, fact.rank()) else { return Ok(None) };
        let plain = op.kind == SoftmaxKind::Softmax && op.quant_output_dt.is_none();
        if !plain || fact.datum_type != f32::datum_type() {
            return Ok(None);
        }
        let fast = FastSoftmax { axes };
        Ok(Some(TypedModelPatch::replace_single_op(model, node, &node.inputs, fast)?))
    }
}

impl Op for FastSoftmax {
    fn name(&self) -> StaticName {
        "FastSoftmax".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("over the last {} axes", self.axes)])
    }

    op_as_typed_op!();
}

impl TypedOp for FastSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

impl EvalOp for FastSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let rank = input.rank();
        let row: usize = input.shape()[rank - self.axes..].iter().product();
        in_place(input, |x| {
            if row > 0 {
                // ~30 operations per value (max, exp, sum, scale).
                by_rows(x, row, 32, move |rows| softmax_rows(rows, row, &[]))?;
            }
            Ok(())
        })
    }
}
