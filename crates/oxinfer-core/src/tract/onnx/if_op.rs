//! ONNX `If` with a condition known at load time, such as Silero VAD's `sr == 16000` or a
//! check on a shape: only the branch taken is analysed and inlined. tract's own `If` analyses
//! both branches, and the branch not taken is often invalid for the shapes given (Silero's
//! 8 kHz branch squeezes an axis that is not 1 at 16 kHz), which fails the whole load.
//! When the condition is not known at load time, this behaves as tract's `If` does.

use std::collections::HashMap;

use tract_onnx::model::{OnnxOpRegister, ParseResult, ParsingContext};
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::tract_itertools::Itertools;
use tract_onnx::tract_core::ops::logic::IfThenElse;
use tract_onnx::tract_hir::internal::*;

/// Replaces tract-onnx's `If` builder.
pub fn register(reg: &mut OnnxOpRegister) {
    reg.insert("If", build);
}

#[derive(Debug, Clone)]
struct FoldingIf {
    then_body: InferenceModel,
    /// For each body input, its index among the op's inputs (0 is the condition).
    then_inputs: Vec<usize>,
    else_body: InferenceModel,
    else_inputs: Vec<usize>,
}

fn build(ctx: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let ParseResult { model: then_body, unresolved_inputs: then_outer, .. } =
        ctx.parse_graph(node.get_attr("then_branch")?)?;
    let ParseResult { model: else_body, unresolved_inputs: else_outer, .. } =
        ctx.parse_graph(node.get_attr("else_branch")?)?;
    // Names the bodies take from the enclosing graph become extra inputs of the op, after the
    // condition.
    let outer: Vec<String> = then_outer.iter().chain(&else_outer).sorted().unique().cloned().collect();
    let position = |names: &[String]| -> TractResult<Vec<usize>> {
        names
            .iter()
            .map(|n| outer.iter().position(|o| o == n).map(|p| p + 1).context("If: unresolved input"))
            .collect()
    };
    let op = FoldingIf {
        then_inputs: position(&then_outer)?,
        else_inputs: position(&else_outer)?,
        then_body,
        else_body,
    };
    Ok((Box::new(op), outer))
}

fn condition(fact: &InferenceFact) -> TractResult<Option<bool>> {
    fact.value.concretize().map(|v| v.cast_to_scalar::<bool>()).transpose()
}

// Two If ops are never merged as equal: their bodies differ in ways tract does not compare.
impl PartialEq for FoldingIf {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}
impl Eq for FoldingIf {}

impl FoldingIf {
    fn branch(&self, cond: bool) -> (&InferenceModel, &[usize]) {
        if cond { (&self.then_body, &self.then_inputs) } else { (&self.else_body, &self.else_inputs) }
    }
}

impl Op for FoldingIf {
    fn name(&self) -> StaticName {
        "If".into()
    }
    not_a_typed_op!();
}

impl EvalOp for FoldingIf {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (body, map) = self.branch(inputs[0].cast_to_scalar::<bool>()?);
        let inputs: TVec<TValue> = map.iter().map(|&ix| inputs[ix].clone()).collect();
        body.clone().into_runnable()?.run(inputs)
    }
}

/// Unifies a body's input facts with the op's, and (when `full`) its output facts with the
/// op's, values included, so known values flow through the branch taken.
fn unify_body(
    body: &mut InferenceModel,
    map: &[usize],
    inputs: &mut [InferenceFact],
    outputs: &mut [InferenceFact],
    full: bool,
) -> TractResult<bool> {
    let mut changed = false;
    for (body_ix, &outer_ix) in map.iter().enumerate() {
        changed |= body.input_fact_mut(body_ix)?.unify_with_mut(&mut inputs[outer_ix])?;
    }
    for (ix, out) in outputs.iter_mut().enumerate() {
        let fact = body.output_fact_mut(ix)?;
        if full {
            changed |= fact.unify_with_mut(out)?;
        } else {
            changed |= fact.shape.unify_with_mut(&mut out.shape)?;
            changed |= fact.datum_type.unify_with_mut(&mut out.datum_type)?;
        }
    }
    changed |= body.analyse(false)?;
    Ok(changed)
}

impl InferenceOp for FoldingIf {
    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(TVec<InferenceFact>, TVec<InferenceFact>, TVec<InferenceFact>)> {
        let mut inputs: TVec<InferenceFact> = inputs.into_iter().cloned().collect();
        let mut outputs: TVec<InferenceFact> = outputs.into_iter().cloned().collect();
        inputs[0].datum_type.unify_with(&bool::datum_type().into())?;
        let FoldingIf { then_body, then_inputs, else_body, else_inputs } = self;
        loop {
            let changed = match condition(&inputs[0])? {
                Some(true) => unify_body(then_body, then_inputs, &mut inputs, &mut outputs, true)?,
                Some(false) => unify_body(else_body, else_inputs, &mut inputs, &mut outputs, true)?,
                None => {
                    unify_body(then_body, then_inputs, &mut inputs, &mut outputs, false)?
                        | unify_body(else_body, else_inputs, &mut inputs, &mut outputs, false)?
                }
            };
            if !changed {
                return Ok((inputs, outputs, observed.into_iter().cloned().collect()));
            }
        }
    }

    fn nboutputs(&self) -> TractResult<usize> {
        ensure!(
            self.then_body.outputs.len() == self.else_body.outputs.len(),
            "If: the branches have {} and {} outputs",
            self.then_body.outputs.len(),
            self.else_body.outputs.len()
        );
        Ok(self.then_body.outputs.len())
    }

    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let outer: TVec<OutletId> = node.inputs.iter().map(|o| mapping[o]).collect();
        if let Some(cond) = condition(source.outlet_fact(node.inputs[0])?)? {
            let (body, map) = self.branch(cond);
            let body = body.clone().into_typed()?;
            let inputs: TVec<OutletId> = map.iter().map(|&ix| outer[ix]).collect();
            return inline(target, &node.name, &body, &inputs);
        }
        let op = IfThenElse {
            then_body: self.then_body.clone().into_typed()?,
            then_input_mapping: self.then_inputs.clone(),
            else_body: self.else_body.clone().into_typed()?,
            else_input_mapping: self.else_inputs.clone(),
        };
        target.wire_node(&node.name, op, &outer)
    }

    as_op!();
}

/// Wires every node of `body` into `target`, its inputs bound to `inputs`.
fn inline(target: &mut TypedModel, prefix: &str, body: &TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
    let body_inputs = body.input_outlets()?;
    let mut map: HashMap<OutletId, OutletId> = body_inputs.iter().copied().zip(inputs.iter().copied()).collect();
    for n in body.eval_order()? {
        if body_inputs.iter().any(|o| o.node == n) {
            continue;
        }
        let node = body.node(n);
        let wires: TVec<OutletId> = node.inputs.iter().map(|o| map[o]).collect();
        let outs = target.wire_node(format!("{prefix}.{}", node.name), node.op.clone(), &wires)?;
        for (ix, o) in outs.into_iter().enumerate() {
            map.insert(OutletId::new(n, ix), o);
        }
    }
    body.output_outlets()?
        .iter()
        .map(|o| map.get(o).copied().context("If: a branch output is not wired"))
        .collect()
}
