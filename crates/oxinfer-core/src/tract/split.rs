//! Batch splitting: a run of a batch whose items are computed independently (every op works
//! image by image, or sentence by sentence) is cut into a few slices per thread, the slices
//! run through the plan at once (claimed one by one by the caller and pool helpers), and their
//! outputs are joined.
//!
//! Why: a small CNN's ops are each too short to split well (the test CNN at batch 8 ran slower
//! on two threads than on one: tract's pool threads spun between the serial ops), so a batch
//! ran on one core. Split by item, each thread runs the whole plan on its share.
//!
//! Which models: [`splittable`] follows the batch axis (axis 0 of every input, one symbol)
//! through the typed model, op by op: it must reach every output as axis 0, and every op on
//! the way must be one known to work item by item along it ([`independent`]: elementwise ops,
//! einsums, axis moves, and normalizations, pools, gathers and slices along other axes). tract's
//! axes mappings say where the axis goes, not whether an op mixes along it (a softmax maps its
//! own axis), so ops outside that list stop the split. Models with fixed batch sizes,
//! recurrent loops or anything else run whole, as before; so do models without matrix products
//! or convolutions (`fast::has_products`), whose runs are too short to hand off.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::axes::Axis;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Gather, Slice, TypedConcat};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool, SumPool};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{Reduce, RmsNorm, Softmax};

use crate::linger;

/// Whether every output's item `i` (along axis 0) depends only on item `i` of every input.
pub fn splittable(model: &TypedModel) -> TractResult<bool> {
    let inputs = model.input_outlets()?;
    let Some(first) = inputs.first() else { return Ok(false) };
    // The batch: a symbol, axis 0 of every input.
    let batch = model.outlet_fact(*first)?.shape.iter().next().cloned();
    let Some(batch @ TDim::Sym(_)) = batch else { return Ok(false) };
    for &input in inputs {
        if model.outlet_fact(input)?.shape.iter().next() != Some(&batch) {
            return Ok(false);
        }
    }
    // The batch axis's position in each outlet that carries it.
    let mut axis: HashMap<OutletId, usize> = inputs.iter().map(|&i| (i, 0)).collect();
    for id in model.eval_order()? {
        let node = model.node(id);
        if inputs.contains(&OutletId::new(id, 0)) {
            continue;
        }
        let carried: Vec<(usize, usize)> =
            node.inputs.iter().enumerate().filter_map(|(slot, i)| axis.get(i).map(|&a| (slot, a))).collect();
        let Some(&(slot, position)) = carried.first() else { continue };
        let Some(outputs) = follow(model, node, slot, position, &axis)? else { return Ok(false) };
        for (out, a) in outputs {
            axis.insert(OutletId::new(id, out), a);
        }
    }
    let outputs = model.output_outlets()?;
    for output in outputs {
        let at_zero = axis.get(output) == Some(&0);
        if !at_zero || model.outlet_fact(*output)?.shape.iter().next() != Some(&batch) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Where `node` carries the batch axis that its input `slot` has at `position`: the outputs
/// and their axis, or `None` when the node reduces or mixes along it, or reads an input that
/// is along the same axis but not the same items.
fn follow(
    model: &TypedModel,
    node: &TypedNode,
    slot: usize,
    position: usize,
    carried: &HashMap<OutletId, usize>,
) -> TractResult<Option<Vec<(usize, usize)>>> {
    let (input_facts, output_facts) = model.node_facts(node.id)?;
    // tract's convolutions and pools map no axis (their mapping is left disconnected), though
    // with an N axis they work image by image.
    let per_image = node.op_as::<Conv>().map(|c| &c.pool_spec).or(node.op_as::<MaxPool>().map(|p| &p.pool_spec));
    let per_image = per_image.or(node.op_as::<SumPool>().map(|p| &p.pool_spec));
    if let Some(spec) = per_image {
        let others_plain = node.inputs.iter().skip(1).all(|i| !carried.contains_key(i));
        let ok = slot == 0 && position == 0 && spec.data_format.has_n() && others_plain;
        return Ok(ok.then(|| (0..node.outputs.len()).map(|o| (o, 0)).collect()));
    }
    if !independent(node, slot, position) {
        return Ok(None);
    }
    let mapping = node.op.axes_mapping(&input_facts, &output_facts)?;
    let Ok(info): Result<&Axis, _> = mapping.axis((InOut::In(slot), position)) else { return Ok(None) };
    // Every other input is either along the same axis (carrying the same items) or of size 1
    // there (broadcast); none may carry the batch elsewhere.
    for (j, input) in node.inputs.iter().enumerate() {
        let linked = info.inputs.get(j).and_then(|p| p.first().copied());
        let fine = match (linked, carried.get(input)) {
            (Some(p), Some(&c)) => p == c,
            (Some(p), None) => input_facts[j].shape.get(p).is_some_and(|d| d.is_one()),
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if !fine {
            return Ok(None);
        }
    }
    let outputs: Vec<(usize, usize)> =
        info.outputs.iter().enumerate().filter_map(|(o, p)| p.first().map(|&a| (o, a))).collect();
    Ok((outputs.len() == node.outputs.len()).then_some(outputs))
}

/// Whether `node` computes item by item along axis `position` of its input `slot`, so that its
/// axes mapping says where that axis goes and nothing more is needed.
fn independent(node: &TypedNode, slot: usize, position: usize) -> bool {
    let op = &node.op;
    let pointwise = op.is::<ElementWiseOp>()
        || op.is::<TypedBinOp>()
        || op.is::<Cast>()
        || op.is::<AxisOp>()
        // An einsum axis kept by an operand and the output is a batch axis of the product.
        || op.is::<EinSum>();
    if pointwise {
        return true;
    }
    if let Some(op) = node.op_as::<Softmax>() {
        return !op.axes.contains(&position);
    }
    if let Some(op) = node.op_as::<Reduce>() {
        return !op.axes.contains(&position);
    }
    if let Some(op) = node.op_as::<RmsNorm>() {
        return op.axis != position;
    }
    if let Some(op) = node.op_as::<Gather>() {
        return slot == 1 || op.axis != position; // the indices' axes, or the data's others
    }
    if let Some(op) = node.op_as::<Slice>() {
        return op.axis != position;
    }
    if let Some(op) = node.op_as::<TypedConcat>() {
        return op.axis != position;
    }
    false
}

/// Cuts `values` (every input has the batch at axis 0, `items` long) into `parts` slices.
pub fn cut(values: &TVec<TValue>, items: usize, parts: usize) -> TractResult<Vec<TVec<TValue>>> {
    let per = items.div_ceil(parts);
    (0..items)
        .step_by(per)
        .map(|start| {
            let end = (start + per).min(items);
            values.iter().map(|v| Ok(v.slice(0, start, end)?.into_tvalue())).collect::<TractResult<TVec<_>>>()
        })
        .collect()
}

/// What one slice's run gives: its outputs.
type SliceResult = TractResult<TVec<TValue>>;

/// The run of one slice: the plan's run, owned so that pool threads may hold it.
pub type RunSlice = Arc<dyn Fn(TVec<TValue>) -> SliceResult + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the slices through `run` on the calling thread and up to `helpers` threads of `pool`,
/// and joins the outputs along axis 0.
///
/// Each slice counts as a run in flight ([`linger::counted_run`]), so that while slices run
/// side by side their ops keep to their own thread ([`linger::alone`]); the last slice left
/// shares again. Uncounted, every slice's products also handed work to the pool the other
/// slices were running on: the MiniLM-shaped encoder at batch 16 / 32 on 2 threads took 258 /
/// 564 ms against 234 / 473 counted (int8: 99 / 214 against 84 / 189).
///
/// The slices are shared out one at a time ([`linger::share`]), because waking a sleeping pool
/// thread costs tens of µs on a VM, sometimes more than a CNN's slice (a traced 8-image run: the
/// helper started its 4 images after the caller had finished its own, so the split ran slower
/// than one thread). A helper that wakes late finds the slices done and returns.
pub fn run_parts(pool: &rayon::ThreadPool, helpers: usize, parts: Vec<TVec<TValue>>, run: RunSlice) -> SliceResult {
    let n = parts.len();
    let parts: Arc<Vec<Mutex<Option<TVec<TValue>>>>> = Arc::new(parts.into_iter().map(|p| Mutex::new(Some(p))).collect());
    let results: Arc<Vec<Mutex<Option<SliceResult>>>> = Arc::new((0..n).map(|_| Mutex::new(None)).collect());
    let outs = Arc::clone(&results);
    // A panicking slice leaves its result empty: it reads as an error below.
    let _ = linger::share(Some(pool), helpers, n, move |i| {
        if let Some(part) = lock(&parts[i]).take() {
            *lock(&outs[i]) = Some(linger::counted_run(|| run(part)));
        }
    });
    let results: Vec<TVec<TValue>> = results
        .iter()
        .map(|r| lock(r).take().unwrap_or_else(|| Err(format_err!("a slice of the batch panicked"))))
        .collect::<TractResult<_>>()?;
    let Some(first) = results.first() else { bail!("no slice to run") };
    (0..first.len())
        .map(|o| {
            let pieces: Vec<Tensor> = results.iter().map(|r| r[o].clone().into_tensor()).collect();
            Ok(Tensor::stack_tensors(0, &pieces)?.into_tvalue())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::einsum::EinSum;
    use tract_onnx::tract_core::ops::math::Add;
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer, Softmax, SoftmaxKind};

    use super::*;

    /// A model of one source of `shape` (its first dim the symbol N when `symbolic`), then
    /// `wire` on it.
    fn model(
        symbolic: bool,
        shape: &[usize],
        wire: impl FnOnce(&mut TypedModel, OutletId) -> TractResult<OutletId>,
    ) -> TractResult<TypedModel> {
        let mut model = TypedModel::default();
        let mut dims: TVec<TDim> = shape.iter().map(|&d| d.into()).collect();
        if symbolic {
            dims[0] = model.symbols.sym("N").into();
        }
        let x = model.add_source("x", f32::fact(&*dims))?;
        let y = wire(&mut model, x)?;
        model.select_output_outlets(&[y])?;
        Ok(model)
    }

    fn add_const(model: &mut TypedModel, x: OutletId, shape: &[usize]) -> TractResult<OutletId> {
        let c = model.add_const("c", Tensor::zero::<f32>(shape)?)?;
        Ok(model.wire_node("add", TypedBinOp(Box::new(Add), None), &[x, c])?[0])
    }

    #[test]
    fn elementwise_and_per_row_ops_split() -> TractResult<()> {
        assert!(splittable(&model(true, &[2, 4], |m, x| add_const(m, x, &[1, 4]))?)?);
        // Softmax along the features, and a matmul of each row by weights.
        let softmax = |m: &mut TypedModel, x| -> TractResult<OutletId> {
            let op = Softmax::new(tvec![1], None, SoftmaxKind::Softmax);
            Ok(m.wire_node("softmax", op, &[x])?[0])
        };
        assert!(splittable(&model(true, &[2, 4], softmax)?)?);
        let matmul = |m: &mut TypedModel, x| -> TractResult<OutletId> {
            let w = m.add_const("w", Tensor::zero::<f32>(&[4, 3])?)?;
            Ok(m.wire_node("mm", EinSum::new("nk,km->nm".parse()?, f32::datum_type()), &[x, w])?[0])
        };
        assert!(splittable(&model(true, &[2, 4], matmul)?)?);
        Ok(())
    }

    #[test]
    fn ops_across_the_batch_or_fixed_batches_do_not_split() -> TractResult<()> {
        // A fixed batch size: the plan is built for it.
        assert!(!splittable(&model(false, &[2, 4], |m, x| add_const(m, x, &[1, 4]))?)?);
        // A sum over the batch.
        let sum = |m: &mut TypedModel, x| -> TractResult<OutletId> {
            Ok(m.wire_node("sum", Reduce::new(tvec![0], Reducer::Sum), &[x])?[0])
        };
        assert!(!splittable(&model(true, &[2, 4], sum)?)?);
        // Softmax along the batch.
        let softmax = |m: &mut TypedModel, x| -> TractResult<OutletId> {
            let op = Softmax::new(tvec![0], None, SoftmaxKind::Softmax);
            Ok(m.wire_node("softmax", op, &[x])?[0])
        };
        assert!(!splittable(&model(true, &[2, 4], softmax)?)?);
        // Every row against every other: x x^T.
        let gram = |m: &mut TypedModel, x| -> TractResult<OutletId> {
            Ok(m.wire_node("gram", EinSum::new("ak,bk->ab".parse()?, f32::datum_type()), &[x, x])?[0])
        };
        assert!(!splittable(&model(true, &[2, 4], gram)?)?);
        // A constant as long as the batch would be (not a broadcast): items do not line up.
        assert!(!splittable(&model(true, &[2, 4], |m, x| add_const(m, x, &[2, 4]))?)?);
        Ok(())
    }

    /// Slices of 1..=n items, each value its item's index.
    fn numbered(n: usize) -> TractResult<TVec<TValue>> {
        Ok(tvec![Tensor::from_shape(&[n, 2], &(0..2 * n).map(|i| (i / 2) as f32).collect::<Vec<_>>())?.into_tvalue()])
    }

    #[test]
    fn slices_shared_out_come_back_in_order_and_a_panic_is_an_error() -> TractResult<()> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
        let double: RunSlice = Arc::new(|part: TVec<TValue>| {
            let t = part[0].clone().into_tensor();
            let v: Vec<f32> = t.try_as_plain_ram()?.as_slice::<f32>()?.iter().map(|x| x * 2.0).collect();
            Ok(tvec![Tensor::from_shape(t.shape(), &v)?.into_tvalue()])
        });
        // Every count of slices and of helpers, including more helpers than slices.
        for (items, parts, helpers) in [(7, 7, 1), (8, 3, 2), (5, 5, 4), (2, 2, 0), (9, 9, 1)] {
            let values = numbered(items)?;
            let out = run_parts(&pool, helpers, cut(&values, items, parts)?, Arc::clone(&double))?;
            let got = out[0].clone().into_tensor();
            assert_eq!(got.shape(), &[items, 2]);
            let want: Vec<f32> = (0..2 * items).map(|i| (i / 2) as f32 * 2.0).collect();
            assert_eq!(got.try_as_plain_ram()?.as_slice::<f32>()?, &want[..], "{items} items in {parts}");
        }
        // A slice that panics (on whichever thread ran it) fails the run; the pool lives on.
        let third: RunSlice = Arc::new(|part: TVec<TValue>| {
            let first = part[0].try_as_plain_ram()?.as_slice::<f32>()?[0];
            assert!(first != 3.0, "slice 3 fails");
            Ok(part)
        });
        let err = run_parts(&pool, 1, cut(&numbered(6)?, 6, 6)?, third).unwrap_err();
        assert!(format!("{err}").contains("panicked"), "{err}");
        let again = run_parts(&pool, 1, cut(&numbered(4)?, 4, 4)?, double)?;
        assert_eq!(again[0].shape(), &[4, 2]);
        Ok(())
    }

    /// Two slices side by side each see another run in flight, so their ops do not hand work to
    /// the pool the other slice runs on.
    #[test]
    fn slices_side_by_side_count_as_runs_in_flight() -> TractResult<()> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build()?;
        let both = Arc::new(std::sync::Barrier::new(2));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (b, s) = (Arc::clone(&both), Arc::clone(&seen));
        let run: RunSlice = Arc::new(move |part: TVec<TValue>| {
            // The caller's slice and the helper's, both in flight while each looks.
            b.wait();
            let alone = linger::alone();
            b.wait();
            lock(&s).push(alone);
            Ok(part)
        });
        run_parts(&pool, 1, cut(&numbered(2)?, 2, 2)?, run)?;
        assert_eq!(*lock(&seen), vec![false, false]);
        Ok(())
    }

    #[test]
    fn callers_at_once_share_lingering_helpers_and_every_slice_runs() -> TractResult<()> {
        // Back-to-back and concurrent split runs: helpers that linger after one run take the
        // slices of the next (linger.rs's claims); every run must get all its slices, in order.
        let pool = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(2).build()?);
        let callers: Vec<_> = (0..4)
            .map(|c| {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || -> TractResult<()> {
                    let plus: RunSlice = Arc::new(move |part: TVec<TValue>| {
                        let t = part[0].clone().into_tensor();
                        let v: Vec<f32> = t.try_as_plain_ram()?.as_slice::<f32>()?.iter().map(|x| x + c as f32).collect();
                        Ok(tvec![Tensor::from_shape(t.shape(), &v)?.into_tvalue()])
                    });
                    for round in 0..300 {
                        let items = 2 + round % 7;
                        let out = run_parts(&pool, 1 + round % 2, cut(&numbered(items)?, items, items.min(4))?, Arc::clone(&plus))?;
                        let want: Vec<f32> = (0..2 * items).map(|i| (i / 2) as f32 + c as f32).collect();
                        assert_eq!(out[0].clone().into_tensor().try_as_plain_ram()?.as_slice::<f32>()?, &want[..]);
                    }
                    Ok(())
                })
            })
            .collect();
        for caller in callers {
            caller.join().map_err(|_| format_err!("a caller panicked"))??;
        }
        Ok(())
    }
}
