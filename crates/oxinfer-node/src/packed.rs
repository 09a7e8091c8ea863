//! The wire format of `run` / `runSync`: feeds and outputs as flat arrays instead of objects.
//!
//! Why: on a microsecond-scale model the objects cost more than the engine. Reading a
//! `{ name, dtype, shape, data }` object takes four property lookups, each through a key string
//! that V8 must internalize, plus two string conversions; building one costs as much again.
//! Here a run takes its typed arrays in an array and everything else as numbers in one
//! Int32Array, and hands back its outputs' typed arrays and their dims in one array.
//!
//! Feeds: `data[i]` is the i-th feed's typed array; `meta` holds, for each feed in turn,
//! `[input index, dtype code, rank, dim 0, dim 1, ...]`. Outputs, in the model's output order:
//! `[data 0, data 1, ..., meta]` where `meta` is an Array of numbers holding, for each output,
//! `[dtype code, rank, dim 0, ...]`. Dtype codes index [`DType::ALL`] (`dtypeNames()` in JS).

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use oxinfer_core::{DType, Error, ErrorCode, Feed, OutputTensor, TensorInfo};

use crate::error::js_error;
use crate::tensor::{OutputData, TensorData};

/// Dtype names by code, for the TypeScript side of the wire format.
#[napi]
pub fn dtype_names() -> Vec<String> {
    DType::ALL.iter().map(|d| d.name().to_string()).collect()
}

fn dtype_code(d: DType) -> usize {
    DType::ALL.iter().position(|&x| x == d).unwrap_or(usize::MAX)
}

/// Feeds decoded from the wire format, holding their typed arrays alive.
pub struct PackedFeeds {
    data: Vec<TensorData>,
    /// Per feed: (input index, dtype, shape).
    heads: Vec<(usize, DType, Vec<usize>)>,
}

fn bad(code: ErrorCode, what: impl Into<String>) -> napi::Error {
    js_error(code, what)
}

impl PackedFeeds {
    /// Decodes `meta` against a model with `input_count` inputs. Everything is checked: a
    /// malformed message is an error, never a panic.
    pub fn new(data: Vec<TensorData>, meta: &[i32], input_count: usize) -> napi::Result<Self> {
        let mut heads = Vec::with_capacity(data.len());
        let mut at = 0;
        let mut next = |what: &str| -> napi::Result<i32> {
            let v = meta.get(at).copied().ok_or_else(|| {
                bad(ErrorCode::InputShape, format!("feed description ends early (missing {what})"))
            })?;
            at += 1;
            Ok(v)
        };
        for _ in 0..data.len() {
            let index = usize::try_from(next("an input index")?)
                .ok()
                .filter(|&i| i < input_count)
                .ok_or_else(|| bad(ErrorCode::InputName, "feed names an input the model does not have"))?;
            let dtype = usize::try_from(next("a dtype")?)
                .ok()
                .and_then(|c| DType::ALL.get(c).copied())
                .ok_or_else(|| bad(ErrorCode::InputDtype, "feed has an unknown dtype code"))?;
            let rank = usize::try_from(next("a rank")?)
                .map_err(|_| bad(ErrorCode::InputShape, "feed has a negative rank"))?;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                let d = usize::try_from(next("a dimension")?)
                    .map_err(|_| bad(ErrorCode::InputShape, "feed shape has a negative dimension"))?;
                shape.push(d);
            }
            heads.push((index, dtype, shape));
        }
        if at != meta.len() {
            return Err(bad(ErrorCode::InputShape, "feed description has trailing values"));
        }
        Ok(PackedFeeds { data, heads })
    }

    /// The feeds, named after the model's inputs.
    pub fn feeds<'a>(&'a self, inputs: &'a [TensorInfo]) -> Vec<Feed<'a>> {
        self.heads
            .iter()
            .zip(&self.data)
            .map(|((index, dtype, shape), data)| Feed::new(&inputs[*index].name, *dtype, shape, data.bytes()))
            .collect()
    }
}

/// A run's outputs on their way to JS in the wire format.
pub struct PackedOutputs(pub Vec<OutputTensor>);

impl TypeName for PackedOutputs {
    fn type_name() -> &'static str {
        "Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for PackedOutputs {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let outputs = val.0;
        let mut meta: Vec<f64> = Vec::with_capacity(outputs.len() * 4);
        for t in &outputs {
            meta.push(dtype_code(t.dtype) as f64);
            meta.push(t.shape.len() as f64);
            meta.extend(t.shape.iter().map(|&d| d as f64));
        }
        let n = outputs.len();
        let mut array = std::ptr::null_mut();
        // SAFETY: plain napi calls on the env we were given; every status is checked.
        unsafe {
            check(sys::napi_create_array_with_length(env, n + 1, &mut array))?;
            for (i, t) in outputs.into_iter().enumerate() {
                let data = OutputData::to_napi_value(env, OutputData(t))?;
                check(sys::napi_set_element(env, array, i as u32, data))?;
            }
            let meta = Vec::<f64>::to_napi_value(env, meta)?;
            check(sys::napi_set_element(env, array, n as u32, meta))?;
        }
        Ok(array)
    }
}

fn check(status: sys::napi_status) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(crate::error::to_js(Error::engine(format!("cannot build the outputs (napi status {status})"))))
    }
}
