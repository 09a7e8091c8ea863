//! `MaxPool` for f32, channels first, 1-D or 2-D, without the index output.
//!
//! Each output row starts at -inf and folds in every kernel tap over the span of columns where
//! the tap lands inside the image (padding never wins, as ONNX asks). The common 2x2 stride-2
//! unpadded pool reads two input rows pairwise.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};

use super::geometry::{Geometry, supported};
use crate::simd::simd_kernel;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastMaxPool {
    spec: PoolSpec,
}

impl FastMaxPool {
    /// The patch that puts a FastMaxPool in place of `op`, when it covers `op` exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &MaxPool) -> TractResult<Option<TypedModelPatch>> {
        let fact = model.outlet_fact(node.inputs[0])?;
        if op.with_index_outputs.is_some() || fact.datum_type != f32::datum_type() || !supported(&op.pool_spec) {
            return Ok(None);
        }
        let fast = FastMaxPool { spec: op.pool_spec.clone() };
        TypedModelPatch::replace_single_op(model, node, &node.inputs, fast).map(Some)
    }
}

impl Op for FastMaxPool {
    fn name(&self) -> StaticName {
        "FastMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self.spec.info())
    }

    op_as_typed_op!();
}

impl EvalOp for FastMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = Geometry::new(&self.spec, input.shape())?;
        let shape = self.spec.output_shape(input.shape())?.shape;
        // SAFETY: every element is written below (each plane's rows are filled, then folded).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        let (plane_in, plane_out) = (g.h * g.w, g.oh * g.ow);
        ensure!(x.len() == g.n * g.c * plane_in && y.len() == g.n * g.c * plane_out, "FastMaxPool: {g:?} does not fit");
        // Serial: a pool is memory-bound and short; split across tract's executor it ran slower
        // on two threads than on one (hand-offs, and pool threads spinning beside what follows).
        if plane_in == 0 {
            y.fill(f32::NEG_INFINITY); // an empty image (padding only): no value wins
        } else if plane_out > 0 {
            for (x, y) in x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out)) {
                pool_plane(&g, x, y);
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for FastMaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.spec.output_facts(inputs)
    }

    as_op!();
}

simd_kernel! {
    /// One channel plane: `x` is h x w, `y` oh x ow.
    fn pool_plane(g: &Geometry, x: &[f32], y: &mut [f32]) {
        let two_by_two = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl) == (2, 2, 2, 2, 1, 1, 0, 0)
            && 2 * g.oh <= g.h
            && 2 * g.ow <= g.w;
        for (oy, out) in y.chunks_exact_mut(g.ow).enumerate() {
            if two_by_two {
                let r0 = &x[2 * oy * g.w..][..2 * g.ow];
                let r1 = &x[(2 * oy + 1) * g.w..][..2 * g.ow];
                for ((o, a), b) in out.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    *o = a[0].max(a[1]).max(b[0].max(b[1]));
                }
                continue;
            }
            out.fill(f32::NEG_INFINITY);
            for ky in 0..g.kh {
                let Some(iy) = g.row(oy, ky) else { continue };
                let row = &x[iy * g.w..(iy + 1) * g.w];
                for kx in 0..g.kw {
                    let (lo, hi, first) = g.columns(kx);
                    if g.sw == 1 {
                        for (o, &v) in out[lo..hi].iter_mut().zip(&row[first..]) {
                            *o = o.max(v);
                        }
                    } else {
                        // Chunks of a stride: no index arithmetic or bounds check per value.
                        for (o, s) in out[lo..hi].iter_mut().zip(row[first..].chunks(g.sw)) {
                            *o = o.max(s[0]);
                        }
                    }
                }
            }
        }
    }
}
