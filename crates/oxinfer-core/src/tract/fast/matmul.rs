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
//! row axes then the column axes; axes of one may sit anywhere in the input (summed over one
//! value) or the output. Both sides are then row-major matrices, so no data moves.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::math::Add;

use super::{F32EinSum, PARALLEL_MACS, sharing_pool, sole_binary_reader, threads_for};
use crate::linger::yield_core;
use crate::precision::{Packed, Precision, Share};
use crate::sgemm::{sgemm, sgemm_by_columns};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastMatMul {
    /// The input's rank and its axes that are rows, in order (the others are contracted, or
    /// of size one).
    input_rank: usize,
    row_axes: TVec<usize>,
    /// The `[k, n]` matrix the rows multiply, in the form the product runs on.
    weights: Weights,
    k: usize,
    n: usize,
    /// Where each output dim comes from.
    output: TVec<OutputDim>,
    /// `n` values added to every row; `None` without a following bias `Add`.
    bias: Option<Arc<Tensor>>,
}

/// The weights as the model's precision runs them on this CPU: only that form is kept, so a
/// reduced-precision model does not hold its f32 weights too.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Weights {
    /// `[k.., n..]` f32, row-major: read in place by the f32 product.
    F32(Arc<Tensor>),
    /// Packed for bf16 or int8 products.
    Packed(Packed),
}

/// One output dim: the input's at an axis (a row axis), or a fixed size (a column axis of the
/// weights, or an axis of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OutputDim {
    Input(usize),
    Fixed(usize),
}

impl FastMatMul {
    /// The patch that puts a FastMatMul in place of `op` (and of a bias `Add` after it), when
    /// it covers `op` exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, einsum: &F32EinSum, precision: Precision) -> TractResult<Option<TypedModelPatch>> {
        let [x, w] = einsum.facts;
        let Some(weights) = &w.konst else { return Ok(None) }; // f32, as its fact
        let [xl, wl, yl] = &einsum.labels;
        let y_fact = model.outlet_fact(OutletId::new(node.id, 0))?;
        // Axes of one that only the input has (summed over one value) or only the output has
        // (a new axis of one) move no data. tract's declutter makes them of a batch of one when
        // the shapes are fixed (`amk,kn->mn`, `mk,kn->amn`): left in, no product of a
        // fixed-shape batch-1 encoder was swapped, and it ran 1.6x slower.
        let one = |d: &TDim| d.to_usize().ok() == Some(1);
        let x_kept: Vec<usize> = (0..xl.len()).filter(|&i| wl.contains(&xl[i]) || yl.contains(&xl[i]) || !one(&x.shape[i])).collect();
        let y_kept: Vec<usize> = (0..yl.len()).filter(|&o| xl.contains(&yl[o]) || wl.contains(&yl[o])).collect();
        if x.rank() != xl.len() || y_fact.rank() != yl.len() || (0..yl.len()).any(|o| !y_kept.contains(&o) && !one(&y_fact.shape[o])) {
            return Ok(None);
        }
        let xs: Vec<char> = x_kept.iter().map(|&i| xl[i]).collect();
        let ys: Vec<char> = y_kept.iter().map(|&o| yl[o]).collect();
        let Some(layout) = Layout::of(&xs, wl, &ys) else { return Ok(None) };
        // The input's contracted dims must be known and equal the weights'.
        let contracted = &weights.shape()[..layout.contracted];
        let x_contracted = x_kept[layout.row_axes..].iter().map(|&i| x.shape[i].to_usize().ok());
        if !x_contracted.eq(contracted.iter().map(|&d| Some(d))) {
            return Ok(None);
        }
        let columns: TVec<usize> = weights.shape()[layout.contracted..].into();
        let (k, n) = (contracted.iter().product(), columns.iter().product());
        let row_axes: TVec<usize> = x_kept[..layout.row_axes].into();
        let output = yl
            .iter()
            .map(|c| match (row_axes.iter().find(|&&i| xl[i] == *c), wl.iter().position(|l| l == c)) {
                (Some(&i), _) => OutputDim::Input(i),
                (None, Some(j)) => OutputDim::Fixed(weights.shape()[j]),
                (None, None) => OutputDim::Fixed(1),
            })
            .collect();
        let bias = bias_after(model, node, &columns)?;
        let view = weights.try_as_plain_ram()?;
        let values = view.as_slice::<f32>()?;
        let weights = match Packed::of(values, k, n, precision.effective()) {
            Some(packed) => Weights::Packed(packed),
            None => Weights::F32(Arc::clone(weights)),
        };
        let fast = FastMatMul { input_rank: x.rank(), row_axes, weights, k, n, output, bias: bias.as_ref().map(|(_, b)| Arc::clone(b)) };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[x])?[0];
        let last = bias.map_or(node.id, |(add, _)| add);
        patch.shunt_outside(model, OutletId::new(last, 0), y)?;
        Ok(Some(patch))
    }

    fn output_shape<D: DimLike>(&self, input: &[D]) -> TVec<D> {
        self.output
            .iter()
            .map(|d| match *d {
                OutputDim::Input(i) => input[i].clone(),
                OutputDim::Fixed(size) => D::from(size),
            })
            .collect()
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
        let packed = match &self.weights {
            Weights::F32(_) => String::new(),
            Weights::Packed(p) => format!(", in {}", p.name()),
        };
        Ok(vec![format!("rows x {} @ {}x{}{bias}{packed}", self.k, self.k, self.n)])
    }

    op_as_typed_op!();
}

impl TypedOp for FastMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].rank() == self.input_rank, "FastMatMul: one input of rank {}", self.input_rank);
        Ok(tvec!(f32::fact(self.output_shape(&inputs[0].shape))))
    }

    as_op!();
}

impl EvalOp for FastMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(shape.len() == self.input_rank, "FastMatMul: input of rank {}, {} expected", shape.len(), self.input_rank);
        let rows: usize = self.row_axes.iter().map(|&i| shape[i]).product();
        // The other axes are the contracted ones and axes of one.
        ensure!(shape.iter().product::<usize>() == rows * self.k, "FastMatMul: input {shape:?}, k = {}", self.k);
        let (k, n) = (self.k, self.n);
        // SAFETY: every element is written below: by the bias fill, or by gemm not accumulating.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&self.output_shape(shape))? };
        let view = input.try_as_plain_ram()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let (x, y) = (view.as_slice::<f32>()?, out_view.as_slice_mut::<f32>()?);
        let bias_view = self.bias.as_ref().map(|b| b.try_as_plain_ram()).transpose()?;
        if let Some(bias) = &bias_view {
            let bias = bias.as_slice::<f32>()?;
            for row in y.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
        }
        let accumulate = self.bias.is_some();
        let spread = Spread::of(rows * k * n);
        let share = match &spread {
            Spread::Lingering(pool) | Spread::Pool(pool) => Share { pool: Some(pool), helpers: pool.current_num_threads() - 1 },
            Spread::Alone => Share { pool: None, helpers: 0 },
        };
        let weights = match &self.weights {
            Weights::Packed(packed) => {
                packed
                    .gemm(share, (x, y), rows, accumulate)
                    .map_err(|()| format_err!("FastMatMul: a panel of the {} product panicked", packed.name()))?;
                return Ok(tvec!(output.into_tvalue()));
            }
            Weights::F32(weights) => weights.try_as_plain_ram()?,
        };
        let w = weights.as_slice::<f32>()?;
        match spread {
            Spread::Lingering(pool) => sgemm_by_columns(Some(&pool), (x, w, y), (rows, k, n), accumulate)
                .map_err(|()| format_err!("FastMatMul: a chunk of the product panicked"))?,
            Spread::Pool(pool) => {
                let threads = pool.current_num_threads();
                pool.install(|| sgemm(x, w, y, (rows, k, n), accumulate, threads))
            }
            Spread::Alone => sgemm(x, w, y, (rows, k, n), accumulate, 1),
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

/// Who computes a product of constant weights, f32 or bf16 alike.
enum Spread {
    /// A lone run's own thread, with lingering helpers of the pool.
    Lingering(Arc<rayon::ThreadPool>),
    /// A slice of a split run: split over the pool.
    Pool(Arc<rayon::ThreadPool>),
    /// One of several runs in flight, or a small product: its own thread.
    Alone,
}

impl Spread {
    /// Yields the core first for a product large enough to split (see yield_core).
    fn of(macs: usize) -> Spread {
        if let Some(pool) = sharing_pool(macs).filter(|_| macs >= PARALLEL_MACS) {
            yield_core(macs);
            return Spread::Lingering(pool);
        }
        match threads_for(macs) {
            Some(pool) => Spread::Pool(pool),
            None => Spread::Alone,
        }
    }
}
