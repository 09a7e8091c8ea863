//! An activation that bounds a convolution's outputs, folded into the kernel that writes them:
//! ReLU (`max(x, 0)`), ReLU6 and every ONNX `Clip` with constant bounds (tract writes them as a
//! `Max` and / or a `Min` by a scalar). Applied while the values are still in registers, it saves
//! one pass over the output, which on a small CNN's planes costs as much as the convolution.

use std::hash::{Hash, Hasher};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::BinMiniOp;
use tract_onnx::tract_core::ops::math::{Max, Min};

use super::sole_binary_reader;

/// `min(max(x, lo), hi)`, `lo <= hi` (either may be infinite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clamp {
    pub lo: f32,
    pub hi: f32,
}

// Bounds are never NaN (`after` takes only ordered ones), so bitwise equality is equality.
impl Eq for Clamp {}

impl Hash for Clamp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.lo.to_bits().hash(state);
        self.hi.to_bits().hash(state);
    }
}

impl std::fmt::Display for Clamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "then clamp to [{}, {}]", self.lo, self.hi)
    }
}

impl Clamp {
    /// The `Max` and / or `Min` by a scalar constant that alone read `node`'s output (the second
    /// alone reading the first's), with the node whose output the clamp ends at.
    pub fn after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(Clamp, usize)>> {
        let Some((first, lo, hi)) = bound_after(model, node)? else { return Ok(None) };
        let (mut clamp, mut last) = (Clamp { lo, hi }, first);
        if let Some((second, lo, hi)) = bound_after(model, model.node(first))? {
            // A Max after a Max (or a Min after a Min) is not a clamp: stop at the first.
            let both = (clamp.lo == f32::NEG_INFINITY) != (lo == f32::NEG_INFINITY);
            let lo = clamp.lo.max(lo);
            let hi = clamp.hi.min(hi);
            if both && lo <= hi {
                (clamp, last) = (Clamp { lo, hi }, second);
            }
        }
        Ok(Some((clamp, last)))
    }

    /// `v.max(lo).min(hi)` for each of eight values (a NaN becomes `lo`), written as the selects
    /// that compile to one vector max and min: `f32::max`'s NaN handling kept the compiler from
    /// vectorizing it.
    #[inline(always)]
    pub fn lanes(&self, v: &[f32; 8]) -> [f32; 8] {
        let (lo, hi) = ([self.lo; 8], [self.hi; 8]);
        let mut out = [0f32; 8];
        for l in 0..8 {
            let x = if v[l] > lo[l] { v[l] } else { lo[l] };
            out[l] = if x < hi[l] { x } else { hi[l] };
        }
        out
    }
}

/// A `Max` (lower bound) or `Min` (upper bound) by a scalar f32 constant that alone reads
/// `node`'s output and keeps its shape: its node and the bounds it sets.
fn bound_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<(usize, f32, f32)>> {
    if let Some(v) = scalar_operand::<Max>(model, node)? {
        return Ok(v.map(|(id, v)| (id, v, f32::INFINITY)));
    }
    Ok(scalar_operand::<Min>(model, node)?.flatten().map(|(id, v)| (id, f32::NEG_INFINITY, v)))
}

/// `None` when no `B` alone reads `node`; `Some(None)` when one does with an operand that is not
/// a usable scalar constant.
fn scalar_operand<B: BinMiniOp>(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Option<(usize, f32)>>> {
    let Some((next, other)) = sole_binary_reader::<B>(model, node)? else { return Ok(None) };
    let scalar = model.outlet_fact(other)?.konst.as_ref().and_then(|k| {
        (k.datum_type() == f32::datum_type() && k.len() == 1)
            .then(|| k.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.first().copied())
            .flatten()
    });
    let same_shape = model.outlet_fact(OutletId::new(next.id, 0))?.shape == model.outlet_fact(OutletId::new(node.id, 0))?.shape;
    Ok(Some(scalar.filter(|v| !v.is_nan() && same_shape).map(|v| (next.id, v))))
}
