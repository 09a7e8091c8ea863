//! The runnable plans of a model: one plan for every input shape where tract's symbolic analysis
//! copes with the model's dynamic axes, or else one plan per concrete input shape, made at the
//! first run of that shape and kept in a bounded cache. Models that convolve over symbolic dims
//! are planned per shape too: the fast convolutions need every dim known (load.rs, `Optimized`).
//!
//! The symbolic analysis gives up on some graphs that real exporters write (shape arithmetic
//! over several symbols, ranges of symbolic length); with every dim a number the same graph
//! types and optimizes. A per-shape plan costs one optimization at the first run of each new
//! shape, and memory for the weights that optimization repacks, so the cache holds
//! [`SHAPE_PLANS`] plans (fewer for weights over 64 MiB: `PLAN_WEIGHTS_BUDGET`), least recently
//! used evicted first. Small integer inputs (axes, sizes,
//! pads given at run time) key plans by their values too: tract plans with them known.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::precision::Precision;

/// How many per-shape plans a model keeps at most.
pub const SHAPE_PLANS: usize = 16;

/// Each plan holds its own copy of the weights, packed for its products: a model keeps fewer
/// plans when its weights are large, at most this many bytes of weights over its plans (and at
/// least two plans).
const PLAN_WEIGHTS_BUDGET: usize = 1 << 30;

type Plan = Arc<TypedRunnableModel>;

/// A model's plans: a symbolic plan where tract's analysis made one, and plans per shape where
/// it did not, or where the symbolic plan failed on a shape that a per-shape plan runs (tract's
/// symbolic analysis can be wrong as well as give up); from then on every shape is planned
/// on its own.
#[derive(Debug)]
pub(crate) struct Plans {
    symbolic: Option<Plan>,
    per_shape: Option<Arc<ShapePlans>>,
    /// Set once the symbolic plan failed where a per-shape one ran.
    symbolic_failed: AtomicBool,
}

/// The key of a per-shape plan: every input's type and shape, and the values of the small
/// integer inputs (see [`is_small_integer`]).
type ShapeKey = Vec<(DatumType, TVec<usize>, Option<Vec<i64>>)>;

/// Most elements of an integer input whose values key its plans.
const VALUE_KEYED: usize = 16;

/// An integer scalar or vector of at most [`VALUE_KEYED`] elements: the axes, sizes, pads or
/// repeats that an ONNX op reads as a parameter from an input, which tract must know to plan.
/// A plan is made per value of such inputs, as per shape.
fn is_small_integer(dt: DatumType, shape: &[usize]) -> bool {
    dt.is_integer() && shape.len() <= 1 && shape.iter().product::<usize>() <= VALUE_KEYED
}

#[derive(Debug)]
pub(crate) struct ShapePlans {
    /// The model as loaded, before typing: its inputs still symbolic.
    model: InferenceModel,
    precision: Precision,
    options: RunOptions,
    /// How many plans are kept: [`SHAPE_PLANS`], fewer for large weights.
    capacity: usize,
    /// Most recently used first.
    cache: Mutex<Vec<(ShapeKey, Plan)>>,
}

impl Plans {
    pub(crate) fn symbolic(plan: Plan, per_shape: Option<ShapePlans>) -> Plans {
        Plans { symbolic: Some(plan), per_shape: per_shape.map(Arc::new), symbolic_failed: AtomicBool::new(false) }
    }

    pub(crate) fn per_shape(plans: ShapePlans) -> Plans {
        Plans { symbolic: None, per_shape: Some(Arc::new(plans)), symbolic_failed: AtomicBool::new(false) }
    }

    fn symbolic_plan(&self) -> Option<&Plan> {
        self.symbolic.as_ref().filter(|_| !self.symbolic_failed.load(Ordering::Relaxed))
    }

    /// The plan that runs inputs of these types and shapes.
    pub(crate) fn plan_for(&self, values: &[TValue]) -> TractResult<Plan> {
        match (self.symbolic_plan(), &self.per_shape) {
            (Some(plan), _) => Ok(Arc::clone(plan)),
            (None, Some(plans)) => plans.plan_for(values),
            (None, None) => Err(TractError::msg("the model has no plan")),
        }
    }

    /// The per-shape plans, when they are what runs (no symbolic plan, or it failed): the
    /// slices of a split batch each take the plan of their own shape.
    pub(crate) fn shape_plans(&self) -> Option<Arc<ShapePlans>> {
        if self.symbolic_plan().is_some() { None } else { self.per_shape.clone() }
    }

    /// Whether a failed symbolic plan has per-shape plans to give way to.
    pub(crate) fn can_fall_back(&self) -> bool {
        self.symbolic_plan().is_some() && self.per_shape.is_some()
    }

    /// After the symbolic plan failed on `values`: the per-shape plan to try instead, if any.
    pub(crate) fn fallback_for(&self, values: &[TValue]) -> Option<TractResult<Plan>> {
        self.symbolic_plan()?;
        Some(self.per_shape.as_ref()?.plan_for(values))
    }

    /// The per-shape plan ran where the symbolic one failed: plan per shape from now on.
    pub(crate) fn symbolic_was_wrong(&self) {
        self.symbolic_failed.store(true, Ordering::Relaxed);
    }

    pub(crate) fn planning(&self) -> Planning {
        if self.symbolic_plan().is_some() { Planning::Symbolic } else { Planning::PerShape }
    }

    /// Per-shape plans cached now.
    pub(crate) fn cached(&self) -> usize {
        self.per_shape.as_ref().map_or(0, |p| p.lock().len())
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
    pub(crate) fn new(model: InferenceModel, precision: Precision, options: RunOptions, weight_bytes: usize) -> ShapePlans {
        let capacity = (PLAN_WEIGHTS_BUDGET / weight_bytes.max(1)).clamp(2, SHAPE_PLANS);
        ShapePlans { model, precision, options, capacity, cache: Mutex::new(Vec::new()) }
    }

    /// The cache stays whole whatever a panicking holder did (it only moves whole entries).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(ShapeKey, Plan)>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn plan_for(&self, values: &[TValue]) -> TractResult<Plan> {
        let key = values
            .iter()
            .map(|v| {
                let values = if is_small_integer(v.datum_type(), v.shape()) {
                    let t = v.cast_to::<i64>()?;
                    Some(t.try_as_plain_ram()?.as_slice::<i64>()?.to_vec())
                } else {
                    None
                };
                Ok((v.datum_type(), v.shape().into(), values))
            })
            .collect::<TractResult<ShapeKey>>()?;
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
        cache.truncate(self.capacity);
        Ok(plan)
    }

    fn make(&self, key: &ShapeKey) -> TractResult<Plan> {
        let mut model = self.model.clone();
        for (ix, (dt, shape, values)) in key.iter().enumerate() {
            let fact = match values {
                Some(values) => InferenceFact::from(tensor1(values).cast_to_dt(*dt)?.into_owned().into_shape(shape)?),
                None => InferenceFact::dt_shape(*dt, shape.iter().copied().collect::<TVec<usize>>()),
            };
            model.set_input_fact(ix, fact)?;
        }
        super::load::optimize(model, self.precision)?.model.into_runnable_with_options(&self.options)
    }
}
