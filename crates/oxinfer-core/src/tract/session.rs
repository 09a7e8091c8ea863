//! Stateful streaming: a session feeds some outputs of each run back as inputs of the next
//! (Silero VAD's `stateN` → `state`, an RNN's `hn` → `h`), and can pin constant inputs.

use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::cancel::Cancel;
use crate::error::{Error, Result};
use crate::tensor::{Dim, Feed, OutputTensor, TensorInfo, shape_string};

use super::TractModel;
use super::bind::{Bindings, Fallback, check_tensor, to_tensor};

#[derive(Debug, Clone, Default)]
pub struct SessionOptions<'a> {
    /// `(output, input)` pairs to carry. `None`: found by name (see [`carry_pairs`]).
    pub carry: Option<Vec<(String, String)>>,
    /// Inputs fed on every run unless the run feeds them itself (Silero's `sr`).
    pub constants: Vec<Feed<'a>>,
}

#[derive(Debug)]
pub struct TractSession {
    model: Arc<TractModel>,
    /// `(output index, input index)`.
    carry: Vec<(usize, usize)>,
    /// By input index.
    constants: Vec<Option<TValue>>,
    /// The carried values by input index; `None` until the first run (then zeros).
    state: Mutex<Vec<Option<TValue>>>,
}

impl TractSession {
    pub fn new(model: Arc<TractModel>, options: SessionOptions<'_>) -> Result<TractSession> {
        let carry = match &options.carry {
            Some(pairs) => explicit_pairs(&model, pairs)?,
            None => carry_pairs(&model.inputs, &model.outputs),
        };
        let mut constants = vec![None; model.inputs.len()];
        for feed in &options.constants {
            let ix = model.input_index(feed.name).ok_or_else(|| model.unknown_input(feed.name))?;
            let t = &feed.tensor;
            check_tensor(&model.inputs[ix], t.dtype, t.shape, t.data.len(), &mut Bindings::new())?;
            constants[ix] = Some(to_tensor(t.dtype, t.shape, t.data)?.into_tvalue());
        }
        let state = Mutex::new(vec![None; model.inputs.len()]);
        Ok(TractSession { model, carry, constants, state })
    }

    /// The carried `(output, input)` name pairs.
    pub fn carried(&self) -> Vec<(String, String)> {
        self.carry
            .iter()
            .map(|&(o, i)| (self.model.outputs[o].name.clone(), self.model.inputs[i].name.clone()))
            .collect()
    }

    /// Runs one step. Runs of one session are serialized; the state advances only when a run
    /// succeeds, so a failed call leaves the session as it was.
    pub fn run(&self, feeds: &[Feed<'_>]) -> Result<Vec<OutputTensor>> {
        self.run_cancellable(feeds, &Cancel::never())
    }

    /// [`run`](Self::run), stopping with ERR_ABORTED before its next op once `cancel` is set
    /// (the carried state is then left as it was).
    pub fn run_cancellable(&self, feeds: &[Feed<'_>], cancel: &Cancel) -> Result<Vec<OutputTensor>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let fallback = SessionFallback { session: self, state: &state };
        let outputs = self.model.run_with(feeds, &fallback, cancel)?;
        for &(o, i) in &self.carry {
            state[i] = Some(TValue::from_const(Arc::clone(outputs[o].storage())));
        }
        Ok(outputs)
    }

    /// Forgets the carried state: the next run starts from zeros again.
    pub fn reset(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.iter_mut().for_each(|s| *s = None);
    }

    pub fn model(&self) -> &Arc<TractModel> {
        &self.model
    }
}

struct SessionFallback<'s> {
    session: &'s TractSession,
    state: &'s [Option<TValue>],
}

impl Fallback for SessionFallback<'_> {
    fn value(&self, input: usize, bindings: &Bindings) -> Result<Option<TValue>> {
        if let Some(v) = &self.state[input] {
            return Ok(Some(v.clone()));
        }
        if let Some(v) = &self.session.constants[input] {
            return Ok(Some(v.clone()));
        }
        if !self.session.carry.iter().any(|&(_, i)| i == input) {
            return Ok(None);
        }
        // First step of a carried input: zeros, its symbols taken from this run's feeds.
        let info = &self.session.model.inputs[input];
        let shape = info
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Some(*n),
                Dim::Symbol(s) => bindings.get(s).map(|(v, _)| *v),
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                Error::input_name(format!(
                    "session input '{}' has no value yet and its shape {} cannot be resolved from \
                     this run's inputs; feed it in the first run",
                    info.name,
                    shape_string(&info.shape)
                ))
            })?;
        let zeros = Tensor::zero_dt(info.dtype.to_tract(), &shape)
            .map_err(|e| Error::engine(format!("cannot make the initial '{}': {e:#}", info.name)))?;
        Ok(Some(zeros.into_tvalue()))
    }
}

fn explicit_pairs(model: &TractModel, pairs: &[(String, String)]) -> Result<Vec<(usize, usize)>> {
    pairs
        .iter()
        .map(|(out, inp)| {
            let o = model.outputs.iter().position(|x| &x.name == out).ok_or_else(|| {
                let names: Vec<&str> = model.outputs.iter().map(|x| x.name.as_str()).collect();
                Error::input_name(format!(
                    "session carry: the model has no output named '{out}'; its outputs are {}",
                    names.join(", ")
                ))
            })?;
            let i = model.input_index(inp).ok_or_else(|| model.unknown_input(inp))?;
            let (oi, ii) = (&model.outputs[o], &model.inputs[i]);
            if oi.dtype != ii.dtype {
                return Err(Error::input_dtype(format!(
                    "session carry: output '{out}' is {} but input '{inp}' is {}",
                    oi.dtype, ii.dtype
                )));
            }
            Ok((o, i))
        })
        .collect()
}

/// Pairs found by the naming conventions of exported recurrent models: an output named
/// `{input}N`, `{input}n`, `{input}_out`, `{input}_next`, `next_{input}`, or `present{x}` for
/// an input `past{x}`, of the same dtype.
pub fn carry_pairs(inputs: &[TensorInfo], outputs: &[TensorInfo]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let n = &input.name;
        let mut candidates = vec![
            format!("{n}N"),
            format!("{n}n"),
            format!("{n}_out"),
            format!("{n}_next"),
            format!("next_{n}"),
        ];
        if let Some(rest) = n.strip_prefix("past") {
            candidates.push(format!("present{rest}"));
        }
        if let Some(o) = outputs
            .iter()
            .position(|out| out.dtype == input.dtype && candidates.contains(&out.name))
        {
            pairs.push((o, i));
        }
    }
    pairs
}
