//! Keeps a dequantization in front of an op that mixes values (a `Softmax`) as it is.
//!
//! tract's declutter folds a chain `DequantizeLinear -> ops -> QuantizeLinear` into a 256-entry
//! lookup table, computing each op on one value at a time: right for elementwise ops, wrong for
//! a softmax, which then gives 1.0 everywhere (static QDQ quantization writes exactly that
//! chain around attention). Such a dequantization is swapped for [`Dequantize`], the same
//! computation without that fold, before declutter runs; chains of elementwise ops keep
//! tract's table.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::quant::DequantizeLinearF32;

/// `DequantizeLinearF32` without its declutter.
#[derive(Debug, Clone, PartialEq)]
pub struct Dequantize(DequantizeLinearF32);

// The scale is never NaN (a quantization scale is positive), so equality is total.
impl Eq for Dequantize {}

impl Dequantize {
    /// The dequantization it computes.
    pub fn linear(&self) -> &DequantizeLinearF32 {
        &self.0
    }
}

impl Op for Dequantize {
    fn name(&self) -> StaticName {
        "Dequantize".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.0.info()
    }

    op_as_typed_op!();
}

impl EvalOp for Dequantize {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(ctx, inputs)
    }
}

impl TypedOp for Dequantize {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

/// Whether the single-successor chain after `node` reaches a quantization through an op that
/// is not elementwise: the chain tract would wrongly tabulate.
fn mixes_before_quantizing(model: &TypedModel, node: &TypedNode) -> TractResult<bool> {
    let mut current = node;
    let mut mixes = false;
    while let Some(next) = model.single_succ(current.id)? {
        let name = next.op.name();
        if name.starts_with("QuantizeLinear") {
            return Ok(mixes);
        }
        let elementwise = next.op_is::<ElementWiseOp>() || next.op_is::<TypedBinOp>();
        mixes |= !elementwise;
        current = next;
    }
    Ok(false)
}

/// Swaps the dequantizations that start such chains.
pub fn keep_before_mixing_ops(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<DequantizeLinearF32>() else { continue };
        if mixes_before_quantizing(model, node)? {
            let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, Dequantize(op.clone()))?;
            patch.apply(model)?;
        }
    }
    Ok(())
}
