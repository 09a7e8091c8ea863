//! The runnable plans of a model: one plan for every input shape where tract's symbolic analysis
//! copes with the model's dynamic axes, or else one plan per concrete input shape, made at the
//! first run of that shape and kept in a bounded cache.
//!
//! The symbolic analysis gives up on some graphs that real exporters write (shape arithmetic
//! over several symbols, ranges of symbolic length); with every dim a number the same graph
//! types and optimizes. A per-shape plan costs one optimization at the first run of each new
//! shape, and memory for the weights that optimization repacks, so the cache holds
//! [`SHAPE_PLANS`] plans, least recently used evicted first.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::precision::Precision;

/// How many per-shape plans a model keeps.
pub const SHAPE_PLANS: usize = 16;

type Plan = Arc<TypedRunnableModel>;

#[derive(Debug)]
pub(crate) enum Plans {
    /// One plan for every shape the model accepts.
    Symbolic(Plan),
    /// A plan per concrete input shape (and type).
    PerShape(ShapePlans),
}

/// The key of a per-shape plan: every input's type and shape.
type ShapeKey = Vec<(DatumType, TVec<usize>)>;

#[derive(Debug)]
pub(crate) struct ShapePlans {
    /// The model as loaded, before typing: its inputs still symbolic.
    model: InferenceModel,
    precision: Precision,
    options: RunOptions,
    /// Most recently used first.
    cache: Mutex<Vec<(ShapeKey, Plan)>>,
}

impl Plans {
    /// The plan that runs inputs of these types and shapes.
    pub(crate) fn plan_for(&self, values: &[TValue]) -> TractResult<Plan> {
        match self {
            Plans::Symbolic(plan) => Ok(Arc::clone(plan)),
            Plans::PerShape(plans) => plans.plan_for(values),
        }
    }

    pub(crate) fn planning(&self) -> Planning {
        match self {
            Plans::Symbolic(_) => Planning::Symbolic,
            Plans::PerShape(_) => Planning::PerShape,
        }
    }

    /// Per-shape plans cached now (0 for a symbolic plan).
    pub(crate) fn cached(&self) -> usize {
        match self {
            Plans::Symbolic(_) => 0,
            Plans::PerShape(plans) => plans.lock().len(),
        }
    }
}

/// How a model's runs are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// One plan for every input shape.
    Symbolic,
    /// A plan per concrete input shape, made at its first run ([`SHAPE_PLANS`] kept).
    PerShape,
}

impl Planning {
    pub fn name(self) -> &'static str {
        match self {
            Planning::Symbolic => "symbolic",
            Planning::PerShape => "per-shape",
        }
    }
}

impl ShapePlans {
    pub(crate) fn new(model: InferenceModel, precision: Precision, options: RunOptions) -> ShapePlans {
        ShapePlans { model, precision, options, cache: Mutex::new(Vec::new()) }
    }

    /// The cache stays whole whatever a panicking holder did (it only moves whole entries).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ShapeKey, Plan)>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn plan_for(&self, values: &[TValue]) -> TractResult<Plan> {
        let key: ShapeKey = values.iter().map(|v| (v.datum_type(), v.shape().into())).collect();
        {
            let mut cache = self.lock();
            if let Some(pos) = cache.iter().position(|(k, _)| *k == key) {
                let entry = cache.remove(pos);
                let plan = Arc::clone(&entry.1);
                cache.insert(0, entry);
                return Ok(plan);
            }
        }
        // Made outside the lock: other shapes keep running meanwhile. Two first runs of one
        // new shape at once both make it; the second replaces the first in the cache.
        let plan = self.make(&key)?;
        let mut cache = self.lock();
        cache.retain(|(k, _)| *k != key);
        cache.insert(0, (key, Arc::clone(&plan)));
        cache.truncate(SHAPE_PLANS);
        Ok(plan)
    }

    fn make(&self, key: &ShapeKey) -> TractResult<Plan> {
        let mut model = self.model.clone();
        for (ix, (dt, shape)) in key.iter().enumerate() {
            model.set_input_fact(ix, InferenceFact::dt_shape(*dt, shape.iter().copied().collect::<TVec<usize>>()))?;
        }
        let (typed, _, _) = super::load::optimize(model, self.precision)?;
        typed.into_runnable_with_options(&self.options)
    }
}
