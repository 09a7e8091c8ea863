//! tract's `Downsample` of f32 values (every stride-th value along one axis, from an offset), as
//! row copies or one strided pass.
//!
//! Why: tract turns a strided 1x1 convolution (every ResNet's shortcut) into a `Downsample` per
//! spatial axis before the product, and copies through a generic ndarray slice: ~10 µs each
//! for a few thousand values. These run after tract's optimizer (`substitute_optimized`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::Downsample;

use super::phased;
use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastDownsample {
    tract: Downsample,
}

impl FastDownsample {
    /// The patch that puts a FastDownsample in place of `op`, when it reads f32 values forward.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Downsample) -> TractResult<Option<TypedModelPatch>> {
        if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() || op.stride <= 0 {
            return Ok(None);
        }
        let fast = FastDownsample { tract: op.clone() };
        Ok(Some(TypedModelPatch::replace_single_op(model, node, &node.inputs, fast)?))
    }
}

impl Op for FastDownsample {
    fn name(&self) -> StaticName {
        "FastDownsample".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.tract.info()
    }

    op_as_typed_op!();
}

impl TypedOp for FastDownsample {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.tract.output_facts(inputs)
    }

    as_op!();
}

impl EvalOp for FastDownsample {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let Downsample { axis, stride, modulo } = self.tract;
        let shape = inputs[0].shape();
        let len = shape[axis];
        if modulo >= len {
            return self.tract.eval(ctx, inputs); // nothing kept: tract's empty result
        }
        let stride = stride as usize; // > 0 (checked at the swap)
        let kept = (len - modulo).div_ceil(stride);
        let inner: usize = shape[axis + 1..].iter().product();
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[axis] = kept;
        let input = args_1!(inputs);
        // SAFETY: every value is written below: each kept run of `inner` values once.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        if inner > 0 && kept > 0 {
            for (x, y) in x.chunks_exact(len * inner).zip(y.chunks_exact_mut(kept * inner)) {
                if inner == 1 {
                    every_nth(&x[modulo..], stride, y);
                } else {
                    for (i, out) in y.chunks_exact_mut(inner).enumerate() {
                        out.copy_from_slice(&x[(modulo + i * stride) * inner..][..inner]);
                    }
                }
            }
        }
        drop(out_view);
        Ok(tvec!(output.into_tvalue()))
    }
}

simd_kernel! {
    avx2;
    /// `y[i] = x[i * stride]` for every `i` of `y`.
    fn every_nth(x: &[f32], stride: usize, y: &mut [f32]) {
        phased::every_nth(x, stride, y)
    }
}
