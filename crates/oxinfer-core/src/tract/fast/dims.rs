//! Arithmetic on tensors of dims (tract's `TDim` values, which `Shape` starts) computed on
//! their integers: exported transformers build the attention mask's gather index as
//! `Range(batch) * sequence + Range(sequence)` from the input's shape, and tract evaluates each
//! element of such a sum symbolically (an expression built and simplified per element).
//!
//! Why: on BERT-family exports that one broadcasting `Add` of a few dozen dims took ~20% of a
//! batch-3 run. At run time every dim has a value: each is evaluated at this run's symbol values
//! into an i64, the same op computes on those, and the result is cast back to dims, so the
//! readers see the values and the type they did.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimArith(TypedBinOp);

impl DimArith {
    /// The patch that puts a DimArith in place of `node`, a binary op of two computed dim
    /// tensors.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &TypedBinOp) -> TractResult<Option<TypedModelPatch>> {
        let dim = TDim::datum_type();
        let facts = [model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?];
        let computed = facts.iter().all(|f| f.datum_type == dim && f.konst.is_none());
        if node.inputs.len() != 2 || !computed || model.outlet_fact(OutletId::new(node.id, 0))?.datum_type != dim {
            return Ok(None);
        }
        TypedModelPatch::replace_single_op(model, node, &node.inputs, DimArith(op.clone())).map(Some)
    }
}

impl Op for DimArith {
    fn name(&self) -> StaticName {
        format!("DimArith({})", self.0.name()).into()
    }

    op_as_typed_op!();
}

impl TypedOp for DimArith {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

impl EvalOp for DimArith {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (Some(a), Some(b)) = (numbers(&inputs[0], ctx.symbols), numbers(&inputs[1], ctx.symbols)) else {
            // A dim no run-time value resolves: tract's own evaluation.
            return self.0.eval(ctx, inputs);
        };
        let y = self.0.0.eval(a.into_tvalue(), b.into_tvalue(), i64::datum_type())?;
        Ok(tvec!(y.cast_to::<TDim>()?.into_owned().into_tvalue()))
    }
}

/// `t`'s dims as i64, their symbols taken at this run's values; `None` if one stays symbolic.
fn numbers(t: &Tensor, symbols: &SymbolValues) -> Option<Tensor> {
    let view = t.try_as_plain_ram().ok()?;
    let dims = view.as_slice::<TDim>().ok()?;
    let values: Option<Vec<i64>> = dims.iter().map(|d| d.eval(symbols).to_i64().ok()).collect();
    Tensor::from_shape(t.shape(), &values?).ok()
}
