//! Faster kernels for the ops tract is slow at on small images, swapped into the typed model
//! before tract optimizes it.
//!
//! Why: on a small CNN (tests' cnn.onnx, 32x32 images) tract spent a third of each run in its
//! stride-2 max-pool (a scalar loop with bounds checks per tap) and a quarter in im2col, and ran
//! 10x slower than onnxruntime. Here f32 channels-first `MaxPool` and `Conv` get direct loops:
//! pooling folds each kernel tap over a row span, compiled for the CPU's widest vectors, and
//! convolution is im2col into one `gemm` call per image (the AVX-512 gemm candle uses).
//!
//! Only configurations these kernels cover exactly are swapped (f32, channels first, 1-D or
//! 2-D, one group, constant weights, no index output); every other op stays tract's. The
//! swapped ops are checked against tract's own on a grid of shapes, strides, dilations and
//! paddings (tests below), and the ONNX conformance list runs through them.

mod conv;
mod geometry;
mod maxpool;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool};

/// Replaces every op of `model` that a fast kernel covers. Run on the decluttered model: the
/// ops keep their inputs and outputs, so tract's optimizer plans around them.
pub fn substitute(model: &mut TypedModel) -> TractResult<()> {
    let order = model.eval_order()?;
    for id in order {
        let node = model.node(id);
        let patch = if let Some(op) = node.op_as::<MaxPool>() {
            maxpool::FastMaxPool::replacing(model, node, op)?
        } else if let Some(op) = node.op_as::<Conv>() {
            conv::FastConv::replacing(model, node, op)?
        } else {
            None
        };
        if let Some(patch) = patch {
            patch.apply(model)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
