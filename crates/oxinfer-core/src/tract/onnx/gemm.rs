//! ONNX `Gemm` (`alpha * A' B' + beta * C`) in the inputs' own float type: tract's version
//! scales by float32 constants, so a float16 model's classifier fails to type. `alpha` and
//! `beta` of 1, what exporters write, add no op at all.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math;
use tract_onnx::tract_hir::internal::*;

pub fn build(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((
        expand(Gemm {
            alpha: node.get_attr_opt("alpha")?.unwrap_or(1.0),
            beta: node.get_attr_opt("beta")?.unwrap_or(1.0),
            trans_a: node.get_attr_opt("transA")?.unwrap_or(false),
            trans_b: node.get_attr_opt("transB")?.unwrap_or(false),
        }),
        vec![],
    ))
}

#[derive(Debug, Clone)]
struct Gemm {
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

/// `wire * factor`, the factor a scalar of the wire's type; nothing when it is 1.
fn scale(model: &mut TypedModel, name: &str, wire: OutletId, factor: f32) -> TractResult<OutletId> {
    if factor == 1.0 {
        return Ok(wire);
    }
    let fact = model.outlet_fact(wire)?.clone();
    let k = tensor0(factor).cast_to_dt(fact.datum_type)?.into_owned().broadcast_into_rank(fact.rank())?;
    let k = model.add_const(format!("{name}.cst"), k)?;
    Ok(model.wire_node(name, math::mul(), &[wire, k])?[0])
}

impl Expansion for Gemm {
    fn name(&self) -> StaticName {
        "Gemm".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        ensure!(inputs.len() == 2 || inputs.len() == 3, "Gemm takes 2 or 3 inputs, this node has {}", inputs.len());
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&inputs[1].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[1].datum_type, &outputs[0].datum_type)?;
        if inputs.len() == 3 {
            s.equals(&inputs[2].datum_type, &outputs[0].datum_type)?;
        }
        let (a_rows, a_cols) = if self.trans_a { (1, 0) } else { (0, 1) };
        let (b_rows, b_cols) = if self.trans_b { (1, 0) } else { (0, 1) };
        s.equals(&inputs[0].shape[a_rows], &outputs[0].shape[0])?;
        s.equals(&inputs[0].shape[a_cols], &inputs[1].shape[b_rows])?;
        s.equals(&inputs[1].shape[b_cols], &outputs[0].shape[1])
    }

    fn wire(&self, name: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let dt = model.outlet_fact(inputs[0])?.datum_type;
        let axes = AxesMapping::for_numpy_matmul(2, self.trans_a, self.trans_b, false)?;
        let product = model.wire_node(format!("{name}.ab"), EinSum::new(axes, dt), &inputs[..2])?[0];
        let mut wire = scale(model, &format!("{name}.alpha"), product, self.alpha)?;
        if let Some(&c) = inputs.get(2).filter(|_| self.beta != 0.0) {
            let mut c = scale(model, &format!("{name}.beta"), c, self.beta)?;
            while model.outlet_fact(c)?.rank() < 2 {
                let rank = model.outlet_fact(c)?.rank();
                c = model.wire_node(format!("{name}.c_axis{rank}"), AxisOp::Add(0), &[c])?[0];
            }
            wire = model.wire_node(name, math::add(), &[wire, c])?[0];
        }
        Ok(tvec!(wire))
    }
}
