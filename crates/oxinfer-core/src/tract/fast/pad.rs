//! tract's `Pad` of f32 values along the last axis only (constant, reflect or edge), as one
//! copy per row.
//!
//! Why: tract's Pad fills a whole ndarray with the constant, then assigns the input through a
//! sliced view, and reflects value by value through more views. Silero VAD's frame (a 64-value
//! reflect pad of its STFT input, then a zero pad before each 1-D convolution, which tract's
//! optimizer adds) spent 16 of its 60 µs in Pads. These run after tract's optimizer
//! (`substitute_optimized`), so they also replace the pads it adds for convolutions.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Fill {
    /// The constant's f32 bits (bits: the op must be `Eq` and `Hash`).
    Constant(u32),
    Reflect,
    Edge,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastPad {
    /// Values added before and after each row (the last axis).
    before: usize,
    after: usize,
    fill: Fill,
    /// tract's op, for rows too short to reflect or repeat (its errors and results stay).
    tract: Pad,
}

impl FastPad {
    /// The patch that puts a FastPad in place of `op`, when it pads f32 values along the last
    /// axis only.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Pad) -> TractResult<Option<TypedModelPatch>> {
        let fact = model.outlet_fact(node.inputs[0])?;
        let Some((&(before, after), others)) = op.pads.split_last() else { return Ok(None) };
        if fact.datum_type != f32::datum_type() || others.iter().any(|&p| p != (0, 0)) || op.pads.len() != fact.rank() {
            return Ok(None);
        }
        let fill = match &op.mode {
            PadMode::Constant(k) if k.len() == 1 => Fill::Constant(k.cast_to_scalar::<f32>()?.to_bits()),
            PadMode::Constant(_) => return Ok(None),
            PadMode::Reflect => Fill::Reflect,
            PadMode::Edge => Fill::Edge,
        };
        let fast = FastPad { before, after, fill, tract: op.clone() };
        Ok(Some(TypedModelPatch::replace_single_op(model, node, &node.inputs, fast)?))
    }
}

impl Op for FastPad {
    fn name(&self) -> StaticName {
        "FastPad".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("last axis: {} before, {} after, {:?}", self.before, self.after, self.fill)])
    }

    op_as_typed_op!();
}

impl TypedOp for FastPad {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.tract.output_facts(inputs)
    }

    as_op!();
}

impl EvalOp for FastPad {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let shape = inputs[0].shape();
        let (b, a) = (self.before, self.after);
        let len = shape.last().copied().unwrap_or(0);
        // Reflection reads len - 1 values away from each end, repetition one.
        let short = match self.fill {
            Fill::Reflect => b >= len || a >= len,
            Fill::Edge => len == 0 && b + a > 0,
            Fill::Constant(_) => false,
        };
        if short || shape.is_empty() {
            return self.tract.eval(ctx, inputs);
        }
        let input = args_1!(inputs);
        let mut out_shape: TVec<usize> = input.shape().into();
        let wide = len + b + a;
        *out_shape.last_mut().expect("rank >= 1 (checked above)") = wide;
        // SAFETY: every value of every output row is written below (before, the row, after).
        let mut output = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        if let Fill::Constant(bits) = self.fill {
            // One fill, then the rows: per-row fills of a value or two ran as slow scalar loops.
            y.fill(f32::from_bits(bits));
            if len > 0 {
                for (row, out) in x.chunks_exact(len).zip(y.chunks_exact_mut(wide)) {
                    out[b..b + len].copy_from_slice(row);
                }
            }
        } else if len == 0 {
            y.fill(0.0);
        } else {
            for (row, out) in x.chunks_exact(len).zip(y.chunks_exact_mut(wide)) {
                let (head, rest) = out.split_at_mut(b);
                let (mid, tail) = rest.split_at_mut(len);
                mid.copy_from_slice(row);
                match self.fill {
                    Fill::Constant(_) => {}
                    Fill::Edge => {
                        head.fill(row[0]);
                        tail.fill(row[len - 1]);
                    }
                    Fill::Reflect => {
                        // head[i] = row[b - i], tail[i] = row[len - 2 - i] (b, a < len).
                        for (i, v) in head.iter_mut().enumerate() {
                            *v = row[b - i];
                        }
                        for (i, v) in tail.iter_mut().enumerate() {
                            *v = row[len - 2 - i];
                        }
                    }
                }
            }
        }
        drop(out_view);
        Ok(tvec!(output.into_tvalue()))
    }
}
