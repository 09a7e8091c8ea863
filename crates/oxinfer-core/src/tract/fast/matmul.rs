//! `EinSum` of an f32 activation by constant f32 weights, `x[rows.., k..] @ w[k.., n..]`
//! (ONNX `MatMul` by a weight matrix, as every transformer's projections are), as one `gemm`
//! call, with a bias `Add` that follows folded in.
//!
//! Why: on the MiniLM-shaped encoder tract's AVX-512 matmul kernel (64x3 tiles) took 47% of a
//! batch-32 run at about 150 GFLOP/s a core, where `gemm`'s kernels reach about 220 (measured on
//! the test CNN's convolutions); with bias, tract's fused matmul also repacks the activation per
//! call. Activation by activation products (attention's scores and mixing) stay tract's.
//!
//! Covered exactly: the input's axes are row axes then the contracted axes, in the weights'
//! order; the weights are the contracted axes then the output's column axes; the output is the
//! row axes then the column axes. Both sides are then row-major matrices, so no data moves.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::math::Add;

use super::{F32EinSum, PARALLEL_MACS, sharing_pool, sole_binary_reader, threads_for, yield_core};
use crate::sgemm::{sgemm, sgemm_by_columns};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastMatMul {
    /// Leading axes of the input that are rows (the rest are contracted).
    row_axes: usize,
    /// `[k.., n..]`, row-major: the `[k, n]` matrix the rows multiply.
    weights: Arc<Tensor>,
    k: usize,
    n: usize,
    /// The output's trailing (column) dims: the weights' after the contracted ones.
    columns: TVec<usize>,
    /// `n` values added to every row; `None` without a following bias `Add`.
    bias: Option<Arc<Tensor>>,
}

impl FastMatMul {
    /// The patch that puts a FastMatMul in place of `op` (and of a bias `Add` after it), when
    /// it covers `op` exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, einsum: &F32EinSum) -> TractResult<Option<TypedModelPatch>> {
        let [x, w] = einsum.facts;
        let Some(weights) = &w.konst else { return Ok(None) }; // f32, as its fact
        let [xl, wl, yl] = &einsum.labels;
        let Some(layout) = Layout::of(xl, wl, yl) else { return Ok(None) };
        // The input's contracted dims must be known and equal the weights'.
        let contracted = &weights.shape()[..layout.contracted];
        let x_contracted = x.shape.iter().skip(layout.row_axes).map(|d| d.to_usize().ok());
        if x.rank() != layout.row_axes + layout.contracted || !x_contracted.eq(contracted.iter().map(|&d| Some(d))) {
            return Ok(None);
        }
        let columns: TVec<usize> = weights.shape()[layout.contracted..].into();
        let (k, n) = (contracted.iter().product(), columns.iter().product());
        let bias = bias_after(model, node, &columns)?;
        let fast = FastMatMul {
            row_axes: layout.row_axes,
            weights: Arc::clone(weights),
            k,
            n,
            columns,
            bias: bias.as_ref().map(|(_, b)| Arc::clone(b)),
        };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[x])?[0];
        let last = bias.map_or(node.id, |(add, _)| add);
        patch.shunt_outside(model, OutletId::new(last, 0), y)?;
        Ok(Some(patch))
    }

    fn output_shape<D: DimLike>(&self, input: &[D]) -> TVec<D> {
        input[..self.row_axes].iter().cloned().chain(self.columns.iter().map(|&d| D::from(d))).collect()
    }
}

/// Where the axes of `x, w -> y` sit, when they make a plain row-major matrix product.
struct Layout {
    row_axes: usize,
    contracted: usize,
}

impl Layout {
    fn of(x: &[char], w: &[char], y: &[char]) -> Option<Layout> {
        // Contracted: in both inputs, not in the output; they end x and start w, in one order.
        let contracted = w.iter().take_while(|c| x.contains(c) && !y.contains(c)).count();
        let row_axes = x.len().checked_sub(contracted)?;
        let rows_then_columns: Vec<char> = x[..row_axes].iter().chain(&w[contracted..]).copied().collect();
        let ok = contracted > 0
            && x[row_axes..] == w[..contracted]
            && y == rows_then_columns
            && !x[..row_axes].iter().any(|c| w.contains(c));
        ok.then_some(Layout { row_axes, contracted })
    }
}

/// The `Add` of a constant bias that alone reads `node`'s output, if any, and that bias as `n`
/// values: its dims must be 1 but for the trailing ones, which are the output's `columns`.
fn bias_after(model: &TypedModel, node: &TypedNode, columns: &[usize]) -> TractResult<Option<(usize, Arc<Tensor>)>> {
    let out = OutletId::new(node.id, 0);
    let Some((next, other)) = sole_binary_reader::<Add>(model, node)? else { return Ok(None) };
    let Some(bias) = &model.outlet_fact(other)?.konst else { return Ok(None) };
    let shape = bias.shape();
    let lead = shape.len().checked_sub(columns.len());
    let fits = bias.datum_type() == f32::datum_type()
        && lead.is_some_and(|lead| shape[..lead].iter().all(|&d| d == 1) && shape[lead..] == *columns);
    // The bias only broadcasts over rows: the sum has the product's shape.
    if !fits || model.outlet_fact(OutletId::new(next.id, 0))?.shape != model.outlet_fact(out)?.shape {
        return Ok(None);
    }
    let values = (**bias).clone().into_shape(&[bias.len()])?;
    Ok(Some((next.id, Arc::new(values))))
}

impl Op for FastMatMul {
    fn name(&self) -> StaticName {
        "FastMatMul".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let bias = if self.bias.is_some() { ", then bias" } else { "" };
        Ok(vec![format!("rows x {} @ {}x{}{bias}", self.k, self.k, self.n)])
    }

    op_as_typed_op!();
}

impl TypedOp for FastMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].rank() > self.row_axes, "FastMatMul: one input of rank > {}", self.row_axes);
        Ok(tvec!(f32::fact(self.output_shape(&inputs[0].shape))))
    }

    as_op!();
}

impl EvalOp for FastMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(shape.len() > self.row_axes, "FastMatMul: input of rank {} for {} row axes", shape.len(), self.row_axes);
        let rows: usize = shape[..self.row_axes].iter().product();
        ensure!(shape[self.row_axes..].iter().product::<usize>() == self.k, "FastMatMul: input {shape:?}, k = {}", self.k);
        let (k, n) = (self.k, self.n);
        // SAFETY: every element is written below: by the bias fill, or by gemm not accumulating.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(shape))? };
        let view = input.try_as_plain_ram()?;
        let weights_view = self.weights.try_as_plain_ram()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let (x, w, y) = (view.as_slice::<f32>()?, weights_view.as_slice::<f32>()?, out_view.as_slice_mut::<f32>()?);
        let bias_view = self.bias.as_ref().map(|b| b.try_as_plain_ram()).transpose()?;
        if let Some(bias) = &bias_view {
            let bias = bias.as_slice::<f32>()?;
            for row in y.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
        }
        let accumulate = self.bias.is_some();
        let macs = rows * k * n;
        // A lone run's own thread shares the columns with lingering helpers (sgemm_by_columns);
        // a slice of a split run lets gemm split it; one of several runs in flight keeps it on
        // its own thread (threads_for).
        if let Some(pool) = sharing_pool(macs).filter(|_| macs >= PARALLEL_MACS) {
            yield_core(macs);
            sgemm_by_columns(Some(&pool), (x, w, y), (rows, k, n), accumulate)
                .map_err(|()| format_err!("FastMatMul: a chunk of the product panicked"))?
        } else if let Some(pool) = threads_for(macs) {
            let threads = pool.current_num_threads();
            pool.install(|| sgemm(x, w, y, (rows, k, n), accumulate, threads))
        } else {
            sgemm(x, w, y, (rows, k, n), accumulate, 1)
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

