//! ONNX `Flatten` over any number of symbolic dims: torch's exporter flattens
//! `attention_mask [batch, sequence]` to `[batch * sequence, 1]`, and tract's own op refuses a
//! shape with more than one symbol. A product of symbols is an ordinary dim here.

use tract_onnx::pb::NodeProto;
use tract_onnx::model::ParsingContext;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_hir::internal::*;

pub fn build(_: &ParsingContext, node: &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(Flatten { axis: node.get_attr_opt("axis")?.unwrap_or(1) }), vec![]))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct Flatten {
    axis: i64,
}

impl Flatten {
    fn output_shape(&self, shape: &[TDim]) -> TractResult<[TDim; 2]> {
        let rank = shape.len() as i64;
        let axis = if self.axis < 0 { self.axis + rank } else { self.axis };
        ensure!((0..=rank).contains(&axis), "Flatten: axis {} is out of range for rank {rank}", self.axis);
        let (outer, inner) = shape.split_at(axis as usize);
        Ok([outer.iter().product(), inner.iter().product()])
    }
}

impl Expansion for Flatten {
    fn name(&self) -> StaticName {
        "Flatten".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.equals(&outputs[0].rank, 2)?;
        s.given(&inputs[0].shape, move |s, shape| {
            let [outer, inner] = self.output_shape(&shape)?;
            s.equals(&outputs[0].shape, ShapeFactoid::from(vec![outer, inner]))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let shape: TVec<TDim> = model.outlet_fact(inputs[0])?.shape.to_tvec();
        let [outer, inner] = self.output_shape(&shape)?;
        model.wire_node(prefix, AxisOp::Reshape(0, shape, tvec![outer, inner]), inputs)
    }
}
