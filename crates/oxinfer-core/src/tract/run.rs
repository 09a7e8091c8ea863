//! One run: bind, execute on the shared plan, wrap the outputs.

use crate::cancel::{Cancel, Cancelled};
use crate::error::{Error, ErrorCode, Result, chain};
use crate::panic::guard;
use crate::tensor::{Feed, OutputTensor};
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::TractModel;
use super::bind::{Fallback, NoFallback};
use super::split;
use crate::threads::tract_executor;
use tract_linalg::multithread::Executor;

/// Slices a split batch is cut into, per thread: more than one, so that a helper that wakes
/// late still takes a share (see split::run_parts), and few, because each slice is a plan run
/// of its own (encoder batch 32 on 2 threads, node, slices counted as runs: 1, 2 and 4 slices
/// per thread took 482, 473 and 472 ms; at batch 16, 237, 234 and 235 ms).
const SLICES_PER_THREAD: usize = 2;

/// How many slices a run of `items` independent batch items is cut into on `threads` threads,
/// with `in_flight` other runs under way: none (1) once every thread already has a run. Then
/// slices would only cost a plan pass each and undo what stacking saved (each pass streams the
/// weights): a Batcher's 16 requests of 16-128 tokens, run as 8 padded pairs side by side,
/// took 174-186 ms split and 151-163 ms whole (as 16 plain runs: 151-166 ms); 8 concurrent
/// batch-2 calls of 64 tokens 160-171 ms split, 146-149 whole. A batch left running whole
/// when the others end still shares its ops' work with the pool, as any lone run does
/// (linger::alone).
fn slices(threads: usize, items: usize, in_flight: usize) -> usize {
    if threads < 2 || in_flight >= threads { 1 } else { (threads * SLICES_PER_THREAD).min(items) }
}

impl TractModel {
    /// Runs the model once. Safe to call from many threads at once: each call gets its own
    /// execution state over the shared plan.
    pub fn run(&self, feeds: &[Feed<'_>]) -> Result<Vec<OutputTensor>> {
        self.run_cancellable(feeds, &Cancel::never())
    }

    /// [`run`](Self::run), stopping with ERR_ABORTED before its next op once `cancel` is set.
    pub fn run_cancellable(&self, feeds: &[Feed<'_>], cancel: &Cancel) -> Result<Vec<OutputTensor>> {
        self.run_with(feeds, &NoFallback, cancel)
    }

    pub(crate) fn run_with(
        &self,
        feeds: &[Feed<'_>],
        fallback: &dyn Fallback,
        cancel: &Cancel,
    ) -> Result<Vec<OutputTensor>> {
        let values = self.bind(feeds, fallback)?;
        self.execute(values, cancel)
    }

    pub(crate) fn execute(&self, values: TVec<TValue>, cancel: &Cancel) -> Result<Vec<OutputTensor>> {
        let outputs = guard(ErrorCode::Engine, "running the model", || {
            self.run_plan(values, cancel).map_err(|e| {
                if e.chain().any(|c| c.is::<Cancelled>()) {
                    Error::aborted()
                } else {
                    Error::engine(format!("the model failed to run: {}", chain(&e)))
                }
            })
        })?;
        self.wrap_outputs(outputs)
    }

    /// One pass of the plan, or, for a model whose batch items are independent, one pass per
    /// slice of the batch on the model's threads at once (see split.rs). Where the symbolic plan
    /// fails and a plan for these very shapes runs, the model plans per shape from then on
    /// (plans.rs).
    fn run_plan(&self, values: TVec<TValue>, cancel: &Cancel) -> TractResult<TVec<TValue>> {
        // The inputs are kept for a retry only where a per-shape plan could take over.
        if !self.plans.can_fall_back() {
            return self.run_on(values, cancel);
        }
        let first = self.run_on(values.clone(), cancel);
        let Err(e) = first else { return first };
        if e.chain().any(|c| c.is::<Cancelled>()) {
            return Err(e);
        }
        match self.plans.fallback_for(&values) {
            Some(Ok(plan)) => {
                let retried = crate::linger::counted_run(|| run_until(&plan, values, cancel))?;
                self.plans.symbolic_was_wrong();
                Ok(retried)
            }
            _ => Err(e),
        }
    }

    /// A run on the current plans: the plan for these inputs, or, for a batch split across
    /// threads, the plan for each slice (a per-shape model makes no plan for the whole batch).
    fn run_on(&self, values: TVec<TValue>, cancel: &Cancel) -> TractResult<TVec<TValue>> {
        let items = if self.split { values.first().and_then(|v| v.shape().first().copied()).unwrap_or(0) } else { 0 };
        let parts = slices(self.threads, items, crate::linger::in_flight());
        // The executor (a lookup under a lock) only for a run that splits: most runs do not.
        if parts > 1 {
            if let Executor::MultiThread(pool) = tract_executor(self.threads) {
                let cancel = cancel.clone();
                let run: split::RunSlice = match self.plans.shape_plans() {
                    // A slice's shape is not the batch's: it runs on the plan for its own.
                    Some(plans) => Arc::new(move |part| run_until(&plans.plan_for(&part)?, part, &cancel)),
                    None => {
                        let plan = self.plans.plan_for(&values)?;
                        Arc::new(move |part| run_until(&plan, part, &cancel))
                    }
                };
                return split::run_parts(&pool, self.threads - 1, split::cut(&values, items, parts)?, run);
            }
        }
        let plan = self.plans.plan_for(&values)?;
        crate::linger::counted_run(|| run_until(&plan, values, cancel))
    }
}

/// One pass of `plan`, looking at `cancel` before each op: a run whose caller has gone stops
/// within one op (the flag is one atomic load per op; `Cancel::never` not even that).
fn run_until(plan: &Arc<TypedRunnableModel>, values: TVec<TValue>, cancel: &Cancel) -> TractResult<TVec<TValue>> {
    plan.spawn()?.run_plan_with_eval(values, |ctx, state, node, inputs| {
        if cancel.is_set() {
            return Err(TractError::new(Cancelled));
        }
        tract_onnx::tract_core::plan::eval(ctx, state, node, inputs)
    })
}

#[cfg(test)]
mod tests {
    use super::slices;

    #[test]
    fn a_batch_splits_only_while_a_thread_has_no_run() {
        // Alone on two threads: two slices per thread, never more than the items.
        assert_eq!(slices(2, 16, 0), 4);
        assert_eq!(slices(2, 3, 0), 3);
        assert_eq!(slices(2, 16, 1), 4);
        // Both threads already running something: whole.
        assert_eq!(slices(2, 16, 2), 1);
        assert_eq!(slices(4, 16, 7), 1);
        // One thread, or one item: nothing to split.
        assert_eq!(slices(1, 16, 0), 1);
        assert_eq!(slices(2, 1, 0), 1);
    }
}
