//! Products of symbolic values, kept away from tract declutter rules that read them as numbers.
//!
//! The attention masks that `transformers` exports index the flattened mask with
//! `Range(0, batch) * sequence + Range(0, sequence)`, where `sequence` comes from `Shape`: a
//! `Mul` whose constant operand is the symbol `sequence` itself. tract's declutter of `Mul`
//! asks whether a constant operand is 0 by converting it to a number, which fails for a
//! symbol ("Undetermined symbol in expression: sequence") and with it the whole load. Such a
//! `Mul` is swapped for [`SymbolicMul`]: the same evaluation and facts, without that rule.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::Mul;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolicMul(TypedBinOp);

impl Op for SymbolicMul {
    fn name(&self) -> StaticName {
        "SymbolicMul".into()
    }

    op_as_typed_op!();
}

impl EvalOp for SymbolicMul {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(ctx, inputs)
    }
}

impl TypedOp for SymbolicMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

/// Whether `fact` is a constant holding a symbol, not a number.
fn symbolic_constant(fact: &TypedFact) -> bool {
    fact.konst.as_ref().is_some_and(|k| {
        k.datum_type() == TDim::datum_type()
            && k.try_as_plain_ram().is_ok_and(|r| r.as_slice::<TDim>().is_ok_and(|s| s.iter().any(|d| d.to_i64().is_err())))
    })
}

/// Swaps every `Mul` with a symbolic constant operand for a [`SymbolicMul`].
pub fn keep_symbolic_products(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<TypedBinOp>().filter(|op| op.0.is::<Mul>()) else { continue };
        if !model.node_input_facts(id)?.iter().any(|f| symbolic_constant(f)) {
            continue;
        }
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, SymbolicMul(op.clone()))?;
        patch.apply(model)?;
    }
    Ok(())
}
