//! Faster kernels for the ops tract is slow at on small images, swapped into the typed model
//! before tract optimizes it.
//!
//! Why: on a small CNN (tests' cnn.onnx, 32x32 images) tract spent a third of each run in its
//! stride-2 max-pool (a scalar loop with bounds checks per tap) and a quarter in im2col, and ran
//! 10x slower than onnxruntime. Here f32 channels-first `MaxPool` and `Conv` get direct loops:
//! pooling folds each kernel tap over a row span, compiled for the CPU's widest vectors, and
//! convolution is im2col into one `gemm` call per image (the AVX-512 gemm candle uses).
//!
//! On transformers, tract's matmul by constant weights reached about two thirds of the
//! throughput `gemm` does on this kind of CPU: those products go to `gemm` too, bias included,
//! and so do attention's batched products of two activations, read in place through strides;
//! sums and products of two activations (residuals, the attention mask, a dynamically quantized
//! product's rescaling) get vectorized broadcasting loops.
//!
//! Small CNNs' depthwise and pointwise convolutions run eight channels to a register
//! (depthwise.rs, pointwise.rs), their stems directly from phase-split planes (strided.rs);
//! quantized models' activation quantizations stay in f32 (requantize.rs, dynamic_quantize.rs),
//! and a pool of quantized values pools before the quantization; arithmetic on computed dims
//! runs on integers (dims.rs); layer normalization is one op on any axis (layer_norm.rs).
//!
//! Only configurations these kernels cover exactly are swapped (f32, channels first, 1-D or
//! 2-D, one group or one per channel, constant weights, no index output); every other op stays
//! tract's. The swapped ops are checked against tract's own on a grid of shapes, strides,
//! dilations and paddings (tests below), and the ONNX conformance list runs through them.

mod batched;
mod broadcast;
mod clamp;
mod conv;
mod depthwise;
mod dims;
mod downsample;
mod direct;
mod dynamic_quantize;
mod gelu;
mod geometry;
mod lanes;
mod layer_norm;
mod matmul;
mod maxpool;
mod pad;
mod phased;
mod pointwise;
mod reduce;
mod requantize;
mod softmax;
mod strided;
mod winograd;

use std::sync::Arc;

use tract_linalg::multithread::{Executor, current_tract_executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Downsample;
use tract_onnx::tract_core::ops::array::Pad;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{Reduce, Softmax};

use crate::precision::Precision;
use crate::linger;

/// Replaces every op of `model` that a fast kernel covers, with f32 products. Run on the
/// decluttered model: the ops keep their inputs and outputs, so tract's optimizer plans around
/// them.
#[cfg(test)]
pub fn substitute(model: &mut TypedModel) -> TractResult<()> {
    substitute_with(model, Precision::Float32)
}

/// [`substitute`], with products by constant weights in `precision` (crate::bf16).
pub fn substitute_with(model: &mut TypedModel, precision: Precision) -> TractResult<()> {
    // Nodes that a patch adds are visited after those of the model as it was (a pool moved
    // before its quantization leaves a quantization that requantize.rs may take).
    let mut queue: std::collections::VecDeque<usize> = model.eval_order()?.into();
    while let Some(id) = queue.pop_front() {
        let node = model.node(id);
        let patch = if let Some(op) = node.op_as::<MaxPool>() {
            match maxpool::FastMaxPool::replacing(model, node, op)? {
                Some(patch) => Some(patch),
                None => maxpool::FastMaxPool::before_quantizing(model, node, op)?,
            }
        } else if let Some(op) = node.op_as::<Conv>() {
            match conv::FastConv::replacing(model, node, op)? {
                Some(patch) => Some(patch),
                None => depthwise::FastDepthwise::replacing(model, node, op)?,
            }
        } else if let Some(op) = node.op_as::<EinSum>() {
            match F32EinSum::of(model, node, op)? {
                Some(e) => match matmul::FastMatMul::replacing(model, node, &e, precision)? {
                    Some(patch) => Some(patch),
                    None => match pointwise::FastPointwise::replacing(model, node, &e)? {
                        Some(patch) => Some(patch),
                        None => batched::FastBatchedMatMul::replacing(model, node, &e)?,
                    },
                },
                None => None,
            }
        } else if let Some(op) = node.op_as::<TypedBinOp>() {
            match broadcast::FastBroadcast::replacing(model, node, op)? {
                Some(patch) => Some(patch),
                None => dims::DimArith::replacing(model, node, op)?,
            }
        } else if let Some(op) = node.op_as::<Reduce>() {
            match layer_norm::FastLayerNorm::replacing(model, node, op)? {
                Some(patch) => Some(patch),
                None => reduce::FastSumRows::replacing(model, node, op)?,
            }
        } else if let Some(op) = node.op_as::<Softmax>() {
            softmax::FastSoftmax::replacing(model, node, op)?
        } else if let Some(op) = node.op_as::<ElementWiseOp>() {
            match gelu::FastGelu::replacing(model, node, op)? {
                Some(patch) => Some(patch),
                None => requantize::Requantize::replacing(model, node, op)?,
            }
        } else {
            dynamic_quantize::FastDynamicQuantize::replacing(model, node)?
        };
        if let Some(patch) = patch {
            let before = model.nodes().len();
            patch.apply(model)?;
            queue.extend(before..model.nodes().len());
        }
    }
    Ok(())
}

/// Replaces what tract's optimizer leaves that a fast kernel covers: its `Pad`s, including
/// those it adds before convolutions (see pad.rs), and the `Downsample`s of strided 1x1
/// convolutions (downsample.rs). Run on the optimized model.
pub fn substitute_optimized(model: &mut TypedModel) -> TractResult<()> {
    for id in model.eval_order()? {
        let node = model.node(id);
        let patch = if let Some(op) = node.op_as::<Pad>() {
            pad::FastPad::replacing(model, node, op)?
        } else if let Some(op) = node.op_as::<Downsample>() {
            downsample::FastDownsample::replacing(model, node, op)?
        } else {
            None
        };
        if let Some(patch) = patch {
            patch.apply(model)?;
        }
    }
    Ok(())
}

/// Whether `model` (substituted) computes matrix products or convolutions, tract's or these
/// kernels': the work that makes splitting a batch across threads pay. An elementwise model
/// runs in microseconds, less than a hand-off to another thread.
pub fn has_products(model: &TypedModel) -> bool {
    model.nodes().iter().any(|n| {
        let op = &n.op;
        op.is::<EinSum>()
            || op.is::<Conv>()
            || op.is::<conv::FastConv>()
            || op.is::<depthwise::FastDepthwise>()
            || op.is::<pointwise::FastPointwise>()
            || op.is::<matmul::FastMatMul>()
            || op.is::<batched::FastBatchedMatMul>()
    })
}

/// An f32 `EinSum` of two operands, unquantized, without a repeated label (a diagonal): what
/// both matmul kernels start from, checked once.
struct F32EinSum<'m> {
    facts: [&'m TypedFact; 2],
    /// The axis labels of the two inputs and the output.
    labels: [Vec<char>; 3],
}

impl<'m> F32EinSum<'m> {
    fn of(model: &'m TypedModel, node: &TypedNode, op: &EinSum) -> TractResult<Option<F32EinSum<'m>>> {
        let f32_dt = f32::datum_type();
        if op.q_params.is_some() || op.operating_dt != f32_dt || node.inputs.len() != 2 {
            return Ok(None);
        }
        let facts = [model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?];
        let (ins, outs) = op.axes.to_strs();
        let labels = [&ins[0], &ins[1], &outs[0]].map(|s| s.chars().collect::<Vec<char>>());
        let distinct = |s: &[char]| s.iter().enumerate().all(|(i, c)| !s[..i].contains(c));
        let ok = facts.iter().all(|f| f.datum_type == f32_dt) && labels.iter().all(|l| distinct(l));
        Ok(ok.then_some(F32EinSum { facts, labels }))
    }
}

/// The binary `B` op that alone reads `node`'s output, when that output is not also a model
/// output: that op's node and its other operand. (A following ReLU or bias add is folded into
/// the op before it only then.)
fn sole_binary_reader<'m, B: BinMiniOp>(
    model: &'m TypedModel,
    node: &TypedNode,
) -> TractResult<Option<(&'m TypedNode, OutletId)>> {
    let [inlet] = &node.outputs[0].successors[..] else { return Ok(None) };
    if model.output_outlets()?.contains(&OutletId::new(node.id, 0)) {
        return Ok(None);
    }
    let next = model.node(inlet.node);
    let is_b = next.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<B>());
    if !is_b || next.inputs.len() != 2 {
        return Ok(None);
    }
    Ok(Some((next, next.inputs[1 - inlet.slot])))
}

/// Multiply-adds of one call above which it is split across the executor's threads (about
/// 150 µs of one core's work). Below, the hand-off and the pool threads spinning beside the
/// serial ops that follow cost more than the split saves: the test CNN at batch 8 ran 1.3x
/// slower on two threads than on one with a 4M threshold.
const PARALLEL_MACS: usize = 16 << 20;

/// The executor's pool, when it has several threads, a call of `macs` multiply-adds is worth
/// splitting over them, and no other run is in flight ([`linger::alone`]). Yields the core
/// first for such a call ([`linger::yield_core`]).
///
/// Runs side by side (a server's concurrent requests, each on its own libuv thread) fill the
/// cores already, so each keeps its products on its own thread: 16 concurrent batch-1 encoder
/// requests took 0.93x-0.98x of onnxruntime's time against 1.04x-1.14x with their products
/// split.
fn threads_for(macs: usize) -> Option<Arc<rayon::ThreadPool>> {
    linger::yield_core(macs);
    if !linger::alone() {
        return None;
    }
    match current_tract_executor() {
        Executor::MultiThread(pool) if pool.current_num_threads() > 1 && macs >= PARALLEL_MACS => Some(pool),
        _ => None,
    }
}

/// How many axes `axes` are when they are the last ones of a rank-`rank` input, in any order
/// (a reduction's or a softmax's rows); `None` when empty or not trailing.
fn trailing_axes(axes: &[usize], rank: usize) -> Option<usize> {
    let mut sorted = axes.to_vec();
    sorted.sort();
    let n = sorted.len();
    (n > 0 && sorted.iter().enumerate().all(|(i, &a)| a + n == rank + i)).then_some(n)
}

/// `f` applied to an f32 value in place (in its own buffer when this op holds the only
/// reference, the usual case for a fresh product), as an op's single output.
fn in_place(input: TValue, f: impl FnOnce(&mut [f32]) -> TractResult<()>) -> TractResult<TVec<TValue>> {
    let mut output = input.into_tensor();
    let mut view = output.try_as_plain_ram_mut()?;
    f(view.as_slice_mut::<f32>()?)?;
    drop(view);
    Ok(tvec!(output.into_tvalue()))
}

/// Work (multiply-adds, or elements times a few operations) of one op from which it is shared
/// with lingering helpers when [`sharing_pool`] allows: ~10 µs, a few times a hand-off to a
/// helper that is already awake.
const SHARE_WORK: usize = 1 << 20;

/// The pool with which an op shares its work through [`linger::share`] (helpers lingering from
/// the products before take it with no wake-up): when the executor has several threads, the
/// work is over [`SHARE_WORK`], and this is the only run in flight ([`linger::alone`]), on its own
/// thread, not a pool thread's slice of a split run. (A split run's slices count as runs: while
/// several are in flight each keeps to its thread; the caller's last one, once the others are
/// done, shares with the helpers they free.)
fn sharing_pool(work: usize) -> Option<Arc<rayon::ThreadPool>> {
    if work < SHARE_WORK || rayon::current_thread_index().is_some() || !linger::alone() {
        return None;
    }
    match current_tract_executor() {
        Executor::MultiThread(pool) if pool.current_num_threads() > 1 => Some(pool),
        _ => None,
    }
}

/// An f32 buffer whose disjoint parts threads write, each its own (see each user).
#[derive(Clone, Copy)]
struct Parts(*mut f32);

impl Parts {
    /// The pointer (a method, so that closures capture the whole Send + Sync wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: users give each task its own range of the buffer, and `linger::share` returns only
// after every task has run.
unsafe impl Send for Parts {}
unsafe impl Sync for Parts {}

/// `f` over `x` in whole rows of `row` values, shared with lingering helpers where
/// [`sharing_pool`] allows for `x.len() * cost` (`cost`: operations per value), else in one call.
fn by_rows<F: Fn(&mut [f32]) + Send + Sync + 'static>(x: &mut [f32], row: usize, cost: usize, f: F) -> TractResult<()> {
    let rows = if row == 0 { 0 } else { x.len() / row };
    let Some(pool) = sharing_pool(x.len() * cost).filter(|_| rows > 1) else {
        f(x);
        return Ok(());
    };
    let threads = pool.current_num_threads();
    let per = rows.div_ceil(2 * threads);
    let (chunks, len, base) = (rows.div_ceil(per), x.len(), Parts(x.as_mut_ptr()));
    linger::share(Some(&pool), threads - 1, chunks, move |i| {
        let base = base;
        let (start, end) = (i * per * row, ((i + 1) * per * row).min(len));
        // SAFETY: chunk i is values start..end < len of x, disjoint from every other chunk's;
        // share returns only after every chunk has run, while x is still borrowed.
        f(unsafe { std::slice::from_raw_parts_mut(base.0.add(start), end - start) });
    })
    .map_err(|()| TractError::msg("a chunk of rows panicked"))
}

/// `task(i)` for every `i` in `0..n`: shared with lingering helpers where [`sharing_pool`]
/// allows for `work` (in [`SHARE_WORK`]'s units), else in order on this thread; the first error
/// is returned. `task` may borrow from the caller: `linger::share` returns only after every task
/// has run.
///
/// For the small CNN ops (a depthwise or pointwise convolution of 5-50 µs), which a hand-off to
/// a sleeping pool thread would cost as much as it saves: split this way, the helper that took
/// one op's share lingers into the next.
fn for_each_shared<F: Fn(usize) -> TractResult<()> + Sync>(work: usize, n: usize, task: F) -> TractResult<()> {
    let Some(pool) = sharing_pool(work).filter(|_| n > 1) else {
        return (0..n).try_for_each(task);
    };
    let failed: std::sync::Mutex<Option<TractError>> = std::sync::Mutex::new(None);
    let run = |i: usize| {
        if let Err(e) = task(i) {
            failed.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
        }
    };
    /// The borrowed task, its lifetime erased for `share`'s `'static` bound.
    struct Task(*const (dyn Fn(usize) + Sync));
    // SAFETY: the task is Sync, and it outlives every call (see below).
    unsafe impl Send for Task {}
    unsafe impl Sync for Task {}
    let borrowed: &(dyn Fn(usize) + Sync) = &run;
    // SAFETY: only the lifetime changes; `share` returns after the last call of the task, while
    // `run` is still alive on this frame.
    let erased = Task(unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(borrowed) });
    let threads = pool.current_num_threads();
    let shared = linger::share(Some(&pool), threads - 1, n, move |i| {
        let erased = &erased;
        // SAFETY: see above: the task is alive while share runs.
        unsafe { (*erased.0)(i) }
    });
    shared.map_err(|()| TractError::msg("a shared task panicked"))?;
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
