//! `EinSum` of two f32 activations that is a batch of matrix products read in place:
//! attention's `q k^T` (`ambk,anbk->abmn`) and `p v` (`abmk,akbn->ambn`), one `gemm` call per
//! batch index (per sentence and head), each reading its operands through their strides.
//!
//! Why: tract computes these by packing both operands of every head into its kernels' tiles
//! (`pack_k_major`, moved axes): on the MiniLM-shaped encoder at batch 32 they took 17% of the
//! run for 5% of its multiply-adds. `gemm` reads strided operands without a copy of ours.
//!
//! A `Mul` by a constant scalar that alone reads the product (attention's scaling of its scores)
//! is folded in as gemm's scale: tract ran that broadcasting `Mul` at ~2 ns per element, 11%
//! of a batch-1 MiniLM-shaped encoder run and 15% at batch 32.
//!
//! Covered exactly: every axis is a batch axis (in both inputs and the output, of one size in
//! both inputs), or the one row axis (first input and output), the one column axis (second
//! input and output) or the one contracted axis (both inputs, not the output), or an axis of
//! one in a single operand or the output.

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use tract_onnx::tract_core::ops::math::Mul;

use crate::linger;
use super::{F32EinSum, sole_binary_reader, sharing_pool, threads_for};
use crate::linger::yield_core;
use crate::sgemm::{Operands, Strided, sgemm_strided};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastBatchedMatMul {
    /// The batch axes, as positions in (first input, second input, output).
    batch: TVec<(usize, usize, usize)>,
    /// Row axis: positions in the first input and the output.
    m: (usize, usize),
    /// Column axis: positions in the second input and the output.
    n: (usize, usize),
    /// Contracted axis: positions in the first and the second input.
    k: (usize, usize),
    input_ranks: (usize, usize),
    output_rank: usize,
    /// Axes of one that only the first input, only the second, or only the output has: tract's
    /// declutter makes them of a batch of one when the shapes are fixed (`mbk,nbk->abmn`).
    ones: (TVec<usize>, TVec<usize>, TVec<usize>),
    /// The product's scale (a folded `Mul`), as `f32::to_bits` (ops are `Hash` and `Eq`).
    scale: u32,
}

impl FastBatchedMatMul {
    /// The patch that puts a FastBatchedMatMul in place of `op`, when it covers `op` exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, einsum: &F32EinSum) -> TractResult<Option<TypedModelPatch>> {
        let [a, b] = einsum.facts;
        let [al, bl, yl] = &einsum.labels;
        let Some(fast) = Self::of(al, bl, yl) else { return Ok(None) };
        // A batch axis of different sizes in the two inputs would broadcast: not covered.
        if (a.rank(), b.rank()) != fast.input_ranks {
            return Ok(None);
        }
        let same = |i: usize, j: usize| a.shape[i] == b.shape[j];
        if !fast.batch.iter().all(|&(i, j, _)| same(i, j)) || !same(fast.k.0, fast.k.1) {
            return Ok(None);
        }
        let y = model.outlet_fact(OutletId::new(node.id, 0))?;
        let one = |d: &TDim| d.to_usize().ok() == Some(1);
        let (ao, bo, yo) = &fast.ones;
        if y.rank() != fast.output_rank
            || !(ao.iter().all(|&i| one(&a.shape[i])) && bo.iter().all(|&j| one(&b.shape[j])) && yo.iter().all(|&o| one(&y.shape[o])))
        {
            return Ok(None);
        }
        let Some((mul, scale)) = scale_after(model, node)? else {
            return TypedModelPatch::replace_single_op(model, node, &node.inputs, fast).map(Some);
        };
        let fast = FastBatchedMatMul { scale: scale.to_bits(), ..fast };
        let mut patch = TypedModelPatch::default();
        let inputs = [patch.tap_model(model, node.inputs[0])?, patch.tap_model(model, node.inputs[1])?];
        let y = patch.wire_node(&node.name, fast, &inputs)?[0];
        patch.shunt_outside(model, OutletId::new(mul, 0), y)?;
        Ok(Some(patch))
    }

    fn of(a: &[char], b: &[char], y: &[char]) -> Option<FastBatchedMatMul> {
        let place = |s: &[char], c: char| s.iter().position(|&x| x == c);
        let mut labels: Vec<char> = a.iter().chain(b).chain(y).copied().collect();
        labels.sort_unstable();
        labels.dedup();
        let (mut batch, mut m, mut n, mut k) = (TVec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut ones = (TVec::new(), TVec::new(), TVec::new());
        for c in labels {
            match (place(a, c), place(b, c), place(y, c)) {
                (Some(i), Some(j), Some(o)) => batch.push((i, j, o)),
                (Some(i), None, Some(o)) => m.push((i, o)),
                (None, Some(j), Some(o)) => n.push((j, o)),
                (Some(i), Some(j), None) => k.push((i, j)),
                // Summed over one input only, or broadcast into the output: covered only when
                // of size one (checked against the facts by the caller).
                (Some(i), None, None) => ones.0.push(i),
                (None, Some(j), None) => ones.1.push(j),
                (None, None, Some(o)) => ones.2.push(o),
                (None, None, None) => return None,
            }
        }
        let ([m], [n], [k]) = (&m[..], &n[..], &k[..]) else { return None };
        let (input_ranks, output_rank, scale) = ((a.len(), b.len()), y.len(), 1f32.to_bits());
        Some(FastBatchedMatMul { batch, m: *m, n: *n, k: *k, input_ranks, output_rank, ones, scale })
    }

    /// The output's shape: each axis from the input that has it, or one.
    fn output_shape<D: DimLike>(&self, a: &[D], b: &[D]) -> TVec<D> {
        let mut shape: TVec<D> = tvec![D::from(1usize); self.output_rank];
        for &(i, _, o) in &self.batch {
            shape[o] = a[i].clone();
        }
        shape[self.m.1] = a[self.m.0].clone();
        shape[self.n.1] = b[self.n.0].clone();
        shape
    }
}

/// The `Mul` by a constant f32 scalar that alone reads `node`'s output, keeping its shape: that
/// node and the scalar.
fn scale_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(usize, f32)>> {
    let Some((next, other)) = sole_binary_reader::<Mul>(model, node)? else { return Ok(None) };
    let Some(k) = &model.outlet_fact(other)?.konst else { return Ok(None) };
    let same_shape = model.outlet_fact(OutletId::new(next.id, 0))?.shape == model.outlet_fact(OutletId::new(node.id, 0))?.shape;
    if k.datum_type() != f32::datum_type() || k.len() != 1 || !same_shape {
        return Ok(None);
    }
    Ok(Some((next.id, k.try_as_plain_ram()?.as_slice::<f32>()?[0])))
}

impl Op for FastBatchedMatMul {
    fn name(&self) -> StaticName {
        "FastBatchedMatMul".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let scale = f32::from_bits(self.scale);
        Ok(if scale == 1.0 { vec![] } else { vec![format!("scaled by {scale}")] })
    }

    op_as_typed_op!();
}

impl TypedOp for FastBatchedMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(
            inputs.len() == 2 && (inputs[0].rank(), inputs[1].rank()) == self.input_ranks,
            "FastBatchedMatMul: two inputs of ranks {:?}",
            self.input_ranks
        );
        Ok(tvec!(f32::fact(self.output_shape(&inputs[0].shape, &inputs[1].shape))))
    }

    as_op!();
}

/// Row-major strides of `shape`, in elements.
fn strides(shape: &[usize]) -> TVec<isize> {
    let mut s: TVec<isize> = tvec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as isize;
    }
    s
}

impl EvalOp for FastBatchedMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = args_2!(inputs);
        let (sa, sb) = (a.shape(), b.shape());
        ensure!(
            (sa.len(), sb.len()) == self.input_ranks,
            "FastBatchedMatMul: inputs {sa:?} and {sb:?} for ranks {:?}",
            self.input_ranks
        );
        let same = self.batch.iter().all(|&(i, j, _)| sa[i] == sb[j]) && sa[self.k.0] == sb[self.k.1];
        ensure!(same, "FastBatchedMatMul: inputs {sa:?} and {sb:?} disagree on a shared axis");
        let ones = self.ones.0.iter().all(|&i| sa[i] == 1) && self.ones.1.iter().all(|&j| sb[j] == 1);
        ensure!(ones, "FastBatchedMatMul: inputs {sa:?} and {sb:?}: an axis of one is not");
        let shape = self.output_shape(sa, sb);
        let (m, n, k) = (sa[self.m.0], sb[self.n.0], sa[self.k.0]);
        if k == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&shape)?.into_tvalue()));
        }
        // SAFETY: every element is written below: each batch index's m x n block by gemm (not
        // accumulating), and the blocks of all batch indices cover the output.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let (ta, tb) = (strides(sa), strides(sb));
        let ty = strides(&shape);
        let (va, vb) = (a.try_as_plain_ram()?, b.try_as_plain_ram()?);
        let (xa, xb) = (va.as_slice::<f32>()?, vb.as_slice::<f32>()?);
        let mut vy = output.try_as_plain_ram_mut()?;
        let y = vy.as_slice_mut::<f32>()?;
        ensure!(
            xa.len() == sa.iter().product::<usize>() && xb.len() == sb.iter().product::<usize>(),
            "FastBatchedMatMul: inputs are not contiguous"
        );
        let batches: usize = self.batch.iter().map(|&(i, _, _)| sa[i]).product();
        if m * n == 0 || batches == 0 {
            return Ok(tvec!(output.into_tvalue()));
        }
        let bases = Operands { a: xa.as_ptr(), b: xb.as_ptr(), y: y.as_mut_ptr() };
        // Owned, so that lingering helpers may run it (linger::share's tasks are 'static).
        let (batch, sa, scale) = (self.batch.clone(), TVec::<usize>::from(sa), f32::from_bits(self.scale));
        let (mr, nc, kr, kc) = (ty[self.m.1], ty[self.n.1], (ta[self.m.0], ta[self.k.0]), (tb[self.k.1], tb[self.n.0]));
        let one = move |index: usize| {
            // The batch index's offset in each operand, from its coordinates (last axis fastest).
            let (mut rest, mut off) = (index, (0isize, 0isize, 0isize));
            for &(i, j, o) in batch.iter().rev() {
                let c = (rest % sa[i]) as isize;
                rest /= sa[i];
                off = (off.0 + c * ta[i], off.1 + c * tb[j], off.2 + c * ty[o]);
            }
            let bases = bases;
            // SAFETY: offsets and strides come from the operands' own shapes, so every element
            // reached is inside them; batch indices write disjoint blocks of the output (the
            // batch axes are output axes), which overlaps neither input (a fresh tensor).
            unsafe {
                sgemm_strided(
                    Strided { ptr: bases.y.offset(off.2), row: mr, col: nc },
                    Strided { ptr: bases.a.offset(off.0), row: kr.0, col: kr.1 },
                    Strided { ptr: bases.b.offset(off.1), row: kc.0, col: kc.1 },
                    (m, k, n),
                    false,
                    scale,
                    1,
                )
            }
        };
        let macs = batches * m * n * k;
        if let Some(pool) = sharing_pool(macs).filter(|_| batches > 1) {
            yield_core(macs);
            // One batch index per task, claimed by this thread and lingering helpers.
            let threads = pool.current_num_threads();
            linger::share(Some(&pool), threads - 1, batches, one).map_err(|()| format_err!("FastBatchedMatMul: a product panicked"))?;
        } else {
            match threads_for(macs) {
                Some(pool) if batches > 1 => pool.install(|| (0..batches).into_par_iter().for_each(one)),
                _ => (0..batches).for_each(one),
            }
        }
        Ok(tvec!(output.into_tvalue()))
    }
}
