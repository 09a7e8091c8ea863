//! `Add` and `Mul` of two f32 activations, with broadcasting: a transformer's residual sums and
//! its attention mask added to every head's scores (`[N, 12, S, S] + [N, 1, 1, S]`), a dynamically
//! quantized product's rescaling by its run-time scales (`[N, S, D] * [1, 1, D]`), in place in the
//! full-shaped operand when tract lets go of it.
//!
//! Why: with symbolic batch and sequence sizes tract keeps these as its generic binary op,
//! which broadcasts through ndarray one element at a time: on the MiniLM-shaped encoder at
//! batch 32 that was 13% of the run, once the matmuls were gemm's. Here each output row is one
//! vectorized loop (a row of each operand, or a row and one value).
//!
//! Ops with a constant operand stay tract's: its optimizer fuses them with what comes before
//! (LayerNorm's scale and shift become one `OptBinChain`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::{Add, Mul};

use crate::simd::simd_kernel;

/// The operation, commutative: the result may be written into either operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Add,
    Mul,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastBroadcast {
    kind: Kind,
}

impl FastBroadcast {
    /// The patch that puts a FastBroadcast in place of `node`, an f32 `Add` or `Mul` of two
    /// non-constant operands.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &TypedBinOp) -> TractResult<Option<TypedModelPatch>> {
        let kind = if op.0.is::<Add>() {
            Kind::Add
        } else if op.0.is::<Mul>() {
            Kind::Mul
        } else {
            return Ok(None);
        };
        if op.1.is_some() || node.inputs.len() != 2 {
            return Ok(None);
        }
        let facts = [model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?];
        let out = model.outlet_fact(OutletId::new(node.id, 0))?;
        let f32_dt = f32::datum_type();
        let plain = |f: &TypedFact| f.datum_type == f32_dt && f.konst.is_none() && f.rank() == out.rank();
        if out.datum_type != f32_dt || !facts.iter().all(|f| plain(f)) {
            return Ok(None);
        }
        TypedModelPatch::replace_single_op(model, node, &node.inputs, FastBroadcast { kind }).map(Some)
    }
}

impl Op for FastBroadcast {
    fn name(&self) -> StaticName {
        match self.kind {
            Kind::Add => "FastAdd".into(),
            Kind::Mul => "FastMul".into(),
        }
    }

    op_as_typed_op!();
}

impl TypedOp for FastBroadcast {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 2 && inputs[0].rank() == inputs[1].rank(), "{}: two inputs of one rank", self.name());
        let shape = tract_onnx::tract_core::broadcast::multi_broadcast(&[&*inputs[0].shape, &*inputs[1].shape])?;
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// How one operand is read along the output's axes: its strides, 0 where it broadcasts.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> TVec<usize> {
    let mut strides: TVec<usize> = tvec![0; out.len()];
    let mut step = 1;
    for i in (0..out.len()).rev() {
        if shape[i] == out[i] && out[i] != 1 {
            strides[i] = step;
        }
        step *= shape[i];
    }
    strides
}

impl EvalOp for FastBroadcast {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = args_2!(inputs);
        ensure!(a.rank() == b.rank(), "{}: ranks {} and {} differ", self.name(), a.rank(), b.rank());
        let out: TVec<usize> = tract_onnx::tract_core::broadcast::multi_broadcast(&[a.shape(), b.shape()])?;
        // Into the operand that has the output's shape (both ops commute), else into a new one
        // that starts as the op's identity.
        let (mut y, other) = if a.shape() == &*out {
            (a.into_tensor(), b)
        } else if b.shape() == &*out {
            (b.into_tensor(), a)
        } else {
            let mut y = match self.kind {
                Kind::Add => Tensor::zero::<f32>(&out)?,
                Kind::Mul => tensor0(1f32).broadcast_scalar_to_shape(&out)?,
            };
            apply_into(self.kind, &mut y, &a, &out)?;
            (y, b)
        };
        apply_into(self.kind, &mut y, &other, &out)?;
        Ok(tvec!(y.into_tvalue()))
    }
}

/// `y += x` or `y *= x`, `x` broadcast to `y`'s shape `out`.
fn apply_into(kind: Kind, y: &mut Tensor, x: &Tensor, out: &[usize]) -> TractResult<()> {
    let strides = broadcast_strides(x.shape(), out);
    let view = x.try_as_plain_ram()?;
    let x = view.as_slice::<f32>()?;
    let mut y_view = y.try_as_plain_ram_mut()?;
    let y = y_view.as_slice_mut::<f32>()?;
    if y.is_empty() {
        return Ok(());
    }
    // The inner run: trailing axes along which x is read contiguously (every one of them
    // full), or, when x broadcasts along the last axis, those along which it stays one value.
    let rank = out.len();
    let last_full = rank > 0 && strides[rank - 1] != 0;
    let mut inner_axes = 0;
    let mut run = 1; // elements of y per inner run (x's stride along the next axis, if full)
    while inner_axes < rank {
        let i = rank - 1 - inner_axes;
        let fits = if last_full { strides[i] == run } else { strides[i] == 0 };
        if !fits && out[i] != 1 {
            break;
        }
        run *= out[i];
        inner_axes += 1;
    }
    let outer = &out[..rank - inner_axes];
    let mut index: TVec<usize> = tvec![0; outer.len()];
    for row in y.chunks_exact_mut(run) {
        let offset: usize = index.iter().zip(&strides).map(|(i, s)| i * s).sum();
        match (kind, last_full) {
            (Kind::Add, true) => add_rows(row, &x[offset..offset + run]),
            (Kind::Add, false) => add_value(row, x[offset]),
            (Kind::Mul, true) => mul_rows(row, &x[offset..offset + run]),
            (Kind::Mul, false) => mul_value(row, x[offset]),
        }
        // Next outer coordinate, last axis fastest.
        for (i, dim) in index.iter_mut().zip(outer).rev() {
            *i += 1;
            if *i < *dim {
                break;
            }
            *i = 0;
        }
    }
    Ok(())
}

simd_kernel! {
    avx2;
    fn add_rows(y: &mut [f32], x: &[f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y += x;
        }
    }
}

simd_kernel! {
    avx2;
    fn add_value(y: &mut [f32], x: f32) {
        for y in y.iter_mut() {
            *y += x;
        }
    }
}

simd_kernel! {
    avx2;
    fn mul_rows(y: &mut [f32], x: &[f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y *= x;
        }
    }
}

simd_kernel! {
    avx2;
    fn mul_value(y: &mut [f32], x: f32) {
        for y in y.iter_mut() {
            *y *= x;
        }
    }
}
