//! Binding a run's feeds to the model's inputs: every check happens before any copy, so a bad
//! call costs nothing and leaves the model untouched.

use std::collections::HashMap;

use tract_onnx::prelude::*;

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::{Dim, Feed, TensorInfo, element_count, shape_string};

use super::TractModel;
use super::indices::check_indices;

/// Values the symbols of input shapes (`N`, `S`) took in one run.
pub(crate) type Bindings = HashMap<String, (usize, String)>;

/// Checks one tensor against its declared fact, recording symbol values in `bindings`.
pub(crate) fn check_tensor(
    info: &TensorInfo,
    dtype: DType,
    shape: &[usize],
    byte_len: usize,
    bindings: &mut Bindings,
) -> Result<()> {
    let name = &info.name;
    if dtype != info.dtype {
        return Err(Error::input_dtype(format!(
            "input '{name}': expected {}, got {dtype}",
            info.dtype
        )));
    }
    let mismatch = || {
        Error::input_shape(format!(
            "input '{name}': expected shape {}, got {}",
            shape_string(&info.shape),
            shape_string(shape)
        ))
    };
    if shape.len() != info.shape.len() {
        return Err(mismatch());
    }
    for (axis, (want, &got)) in info.shape.iter().zip(shape).enumerate() {
        match want {
            Dim::Fixed(n) if *n != got => return Err(mismatch()),
            Dim::Symbol(s) if is_plain_symbol(s) => match bindings.get(s) {
                Some((v, by)) if *v != got => {
                    return Err(Error::input_shape(format!(
                        "input '{name}': dimension {axis} is '{s}', which input '{by}' set to {v}, but got {got} (shape {})",
                        shape_string(shape)
                    )));
                }
                Some(_) => {}
                None => {
                    bindings.insert(s.clone(), (got, name.clone()));
                }
            },
            _ => {}
        }
    }
    let count = element_count(name, shape)?;
    let need = count.checked_mul(dtype.size());
    if need != Some(byte_len) {
        return Err(Error::input_shape(format!(
            "input '{name}': shape {} needs {count} elements, but the data has {} ({dtype})",
            shape_string(shape),
            byte_len / dtype.size()
        )));
    }
    Ok(())
}

/// An expression such as `N+1` is left for the engine to check; a bare name is checked here.
fn is_plain_symbol(s: &str) -> bool {
    s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Copies a checked input into an engine tensor: the one copy an engine that owns its tensors
/// needs. Booleans are normalized, since any nonzero byte means true to the caller but tract's
/// `bool` must be 0 or 1.
pub(crate) fn to_tensor(dtype: DType, shape: &[usize], data: &[u8]) -> Result<Tensor> {
    let make = |bytes: &[u8]| {
        // SAFETY: the byte length was checked against shape and dtype; every bit pattern is a
        // valid value of the numeric types, and booleans are normalized to 0/1 first.
        unsafe { Tensor::from_raw_dt(dtype.to_tract(), shape, bytes) }
            .map_err(|e| Error::engine(format!("cannot build input tensor: {e:#}")))
    };
    if dtype == DType::Bool {
        let normalized: Vec<u8> = data.iter().map(|&b| u8::from(b != 0)).collect();
        make(&normalized)
    } else {
        make(data)
    }
}

/// Where the value of an input comes from when the caller does not feed it.
pub(crate) trait Fallback {
    fn value(&self, input: usize, bindings: &Bindings) -> Result<Option<TValue>>;
}

/// No fallback: every input must be fed.
pub(crate) struct NoFallback;
impl Fallback for NoFallback {
    fn value(&self, _: usize, _: &Bindings) -> Result<Option<TValue>> {
        Ok(None)
    }
}

impl TractModel {
    /// Maps feeds to model inputs, checks all of them, then copies them into engine tensors.
    pub(crate) fn bind(&self, feeds: &[Feed<'_>], fallback: &dyn Fallback) -> Result<TVec<TValue>> {
        let mut slots: Vec<Option<&Feed<'_>>> = vec![None; self.inputs.len()];
        for feed in feeds {
            let ix = self.input_index(feed.name).ok_or_else(|| self.unknown_input(feed.name))?;
            if slots[ix].replace(feed).is_some() {
                return Err(Error::input_name(format!("input '{}' is given twice", feed.name)));
            }
        }
        let mut bindings = Bindings::new();
        for (info, feed) in self.inputs.iter().zip(&slots) {
            if let Some(f) = feed {
                let t = &f.tensor;
                check_tensor(info, t.dtype, t.shape, t.data.len(), &mut bindings)?;
            }
        }
        for limit in &self.index_limits {
            if let Some(f) = slots[limit.input] {
                check_indices(limit, f.name, f.tensor.dtype, f.tensor.data)?;
            }
        }
        let mut values = TVec::with_capacity(self.inputs.len());
        for (ix, (info, feed)) in self.inputs.iter().zip(&slots).enumerate() {
            let value = match feed {
                Some(f) => to_tensor(f.tensor.dtype, f.tensor.shape, f.tensor.data)?.into_tvalue(),
                None => fallback.value(ix, &bindings)?.ok_or_else(|| self.missing_input(info))?,
            };
            values.push(value);
        }
        Ok(values)
    }

    pub(crate) fn unknown_input(&self, name: &str) -> Error {
        Error::input_name(format!(
            "the model has no input named '{name}'; its inputs are {}",
            self.input_list()
        ))
    }

    pub(crate) fn missing_input(&self, info: &TensorInfo) -> Error {
        Error::input_name(format!("missing input {info}; the model's inputs are {}", self.input_list()))
    }

    fn input_list(&self) -> String {
        let names: Vec<String> = self.inputs.iter().map(|i| i.to_string()).collect();
        names.join(", ")
    }
}
