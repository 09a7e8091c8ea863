//! `Softmax` of f32 values over trailing axes: one vectorized pass per row (max, exp and sum,
//! scale) with the row kernel candle's attention uses (`crate::fastmath::softmax_rows`).
//!
//! Why: tract's f32 softmax calls three generic kernels per row, each with its own set-up; on
//! the MiniLM-shaped encoder (rows of 128 attention scores) the two softmaxes took 7.7 of the
//! 17 ms of a 32-sentence batch on one thread, more than every matrix product together.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::by_rows;
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
        let rank = fact.rank();
        let mut axes: Vec<usize> = op.axes.to_vec();
        axes.sort();
        let trailing = !axes.is_empty() && axes.iter().enumerate().all(|(i, &a)| a + axes.len() == rank + i);
        let plain = op.kind == SoftmaxKind::Softmax && op.quant_output_dt.is_none();
        if !plain || fact.datum_type != f32::datum_type() || !trailing {
            return Ok(None);
        }
        let fast = FastSoftmax { axes: axes.len() };
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
        // In place when this op holds the only reference (the usual case: a fresh product).
        let mut output = input.into_tensor();
        let rank = output.rank();
        let row: usize = output.shape()[rank - self.axes..].iter().product();
        let mut view = output.try_as_plain_ram_mut()?;
        let x = view.as_slice_mut::<f32>()?;
        if row > 0 {
            // ~30 operations per value (max, exp, sum, scale).
            by_rows(x, row, 32, move |rows| softmax_rows(rows, row, &[]))?;
        }
        drop(view);
        Ok(tvec!(output.into_tvalue()))
    }
}
