//! `NativeTractModel` and `NativeTractSession`: the tract engine as JS classes. Heavy work
//! (load, run, runBatch) runs as AsyncTasks on the libuv pool; only `runSync` blocks.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use oxinfer_core::precision::Precision;
use oxinfer_core::cache::Held;
use oxinfer_core::tract::{InputSpec, LoadOptions, ModelSource, SessionOptions, TractModel, TractSession};
use oxinfer_core::{Cancel, DType, Dim, Error, ErrorCode, TensorInfo};

use crate::cancel::{Cancellable, NativeCancelToken, cancel_of};
use crate::error::{IntoJs, to_js};
use crate::packed::{PackedFeeds, PackedOutputs};
use crate::tensor::{Converted, NativeFeed, NativeOutput, TensorData, to_native_outputs};

#[napi(object)]
pub struct NativeTensorInfo {
    pub name: String,
    pub dtype: String,
    /// Fixed sizes as numbers, symbolic dims as strings.
    pub shape: Vec<Either<i64, String>>,
}

fn info_to_js(info: &TensorInfo) -> NativeTensorInfo {
    NativeTensorInfo {
        name: info.name.clone(),
        dtype: info.dtype.name().to_string(),
        shape: info
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => Either::A(*n as i64),
                Dim::Symbol(s) => Either::B(s.clone()),
            })
            .collect(),
    }
}

#[napi(object)]
pub struct NativeInputSpec {
    pub name: String,
    pub dtype: Option<String>,
    pub shape: Option<Vec<Either<i64, String>>>,
}

#[napi(object, object_to_js = false)]
pub struct NativeLoadOptions {
    pub inputs: Option<Vec<NativeInputSpec>>,
    pub threads: Option<u32>,
    /// Inputs fixed to a value at load time.
    pub constants: Option<Vec<NativeFeed>>,
    /// Load through the model cache (default true).
    pub cache: Option<bool>,
    /// Products by constant weights: 'float32' (default) or 'bfloat16'.
    pub precision: Option<String>,
    /// External data files of a model given as bytes.
    pub external_data: Option<Vec<NativeExternalData>>,
}

/// One external data file: the location the model names, and its bytes or a path to read them from.
#[napi(object, object_to_js = false)]
pub struct NativeExternalData {
    pub path: String,
    #[napi(ts_type = "string | Uint8Array")]
    pub data: Either<String, Uint8Array>,
}

#[napi(object)]
pub struct NativeOpCount {
    pub op: String,
    pub count: u32,
}

fn input_specs(o: &NativeLoadOptions) -> napi::Result<Vec<(String, InputSpec)>> {
    let mut inputs = Vec::new();
    for spec in o.inputs.iter().flatten() {
        let dtype = spec.dtype.as_deref().map(str::parse::<DType>).transpose().js()?;
        let shape = match &spec.shape {
            None => None,
            Some(dims) => Some(
                dims.iter()
                    .map(|d| match d {
                        Either::A(n) => usize::try_from(*n).map(Dim::Fixed).map_err(|_| {
                            to_js(Error::input_shape(format!(
                                "load option inputs.{}.shape: dimension {n} is negative",
                                spec.name
                            )))
                        }),
                        Either::B(s) => Ok(Dim::Symbol(s.clone())),
                    })
                    .collect::<napi::Result<Vec<Dim>>>()?,
            ),
        };
        inputs.push((spec.name.clone(), InputSpec { dtype, shape }));
    }
    Ok(inputs)
}

fn precision(o: &NativeLoadOptions) -> napi::Result<Precision> {
    match o.precision.as_deref() {
        None => Ok(Precision::Float32),
        Some(name) => Precision::parse(name).ok_or_else(|| {
            to_js(Error::model_load(format!("load option precision must be 'float32', 'bfloat16' or 'int8', got '{name}'")))
        }),
    }
}

pub struct LoadTask {
    source: Either<String, Uint8Array>,
    inputs: Vec<(String, InputSpec)>,
    threads: Option<usize>,
    precision: Precision,
    constants: Vec<NativeFeed>,
    cache: bool,
    external_data: Vec<NativeExternalData>,
}

impl Task for LoadTask {
    type Output = Held<TractModel>;
    type JsValue = NativeTractModel;

    fn compute(&mut self) -> napi::Result<Held<TractModel>> {
        let source = match &self.source {
            Either::A(path) => ModelSource::Path(std::path::Path::new(path)),
            Either::B(bytes) => ModelSource::Bytes(bytes),
        };
        let converted = Converted::new(&self.constants)?;
        // Files named by path are read here, off the JS thread.
        let read: Vec<Vec<u8>> = self
            .external_data
            .iter()
            .filter_map(|f| match &f.data {
                Either::A(path) => Some(std::fs::read(path).map_err(|e| {
                    Error::model_load(format!("load option externalData '{}': cannot read '{path}': {e}", f.path))
                })),
                Either::B(_) => None,
            })
            .collect::<std::result::Result<_, Error>>()
            .js()?;
        let mut read_iter = read.iter();
        let external_data = self
            .external_data
            .iter()
            .map(|f| match &f.data {
                Either::A(_) => (f.path.clone(), read_iter.next().map(|v| &v[..]).unwrap_or(&[])),
                Either::B(bytes) => (f.path.clone(), &bytes[..]),
            })
            .collect();
        let options = LoadOptions {
            inputs: self.inputs.clone(),
            constants: converted.feeds(&self.constants),
            threads: self.threads,
            precision: self.precision,
            external_data,
        };
        Held::load(
            self.cache,
            || TractModel::load_cached(source, &options),
            || TractModel::load(source, &options),
        )
        .js()
    }

    fn resolve(&mut self, _env: Env, model: Held<TractModel>) -> napi::Result<NativeTractModel> {
        Ok(NativeTractModel::new(model))
    }
}

/// Loads an ONNX model from a file path or its bytes, off the JS thread.
#[napi(ts_return_type = "Promise<NativeTractModel>")]
pub fn load_tract_model(
    #[napi(ts_arg_type = "string | Uint8Array")] source: Either<String, Uint8Array>,
    options: NativeLoadOptions,
    cancel: Option<&NativeCancelToken>,
) -> napi::Result<AsyncTask<Cancellable<LoadTask>>> {
    let task = LoadTask {
        source,
        inputs: input_specs(&options)?,
        threads: options.threads.map(|t| t as usize),
        precision: precision(&options)?,
        constants: options.constants.unwrap_or_default(),
        cache: options.cache.unwrap_or(true),
        external_data: options.external_data.unwrap_or_default(),
    };
    Ok(Cancellable::new(task, cancel))
}

#[napi]
pub struct NativeTractModel {
    model: Mutex<Option<Held<TractModel>>>,
    inputs: Arc<[TensorInfo]>,
    outputs: Vec<TensorInfo>,
    sha256: String,
    ops: Vec<(String, usize)>,
    threads: usize,
    precision: Precision,
}

impl NativeTractModel {
    fn new(held: Held<TractModel>) -> Self {
        let model = held.model();
        NativeTractModel {
            inputs: model.inputs().into(),
            outputs: model.outputs().to_vec(),
            sha256: model.sha256().to_string(),
            ops: model.ops().iter().map(|o| (o.op.clone(), o.count)).collect(),
            threads: model.threads(),
            precision: model.precision(),
            model: Mutex::new(Some(held)),
        }
    }

    fn get(&self) -> napi::Result<Arc<TractModel>> {
        let slot = self.model.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|h| Arc::clone(h.model())).ok_or_else(|| to_js(Error::disposed("the model")))
    }
}

/// Something that runs one set of feeds: a model, or a session of one.
pub trait Runs: Send + Sync + 'static {
    fn run_feeds(&self, feeds: &[oxinfer_core::Feed<'_>], cancel: &Cancel) -> oxinfer_core::Result<Vec<oxinfer_core::OutputTensor>>;
}

impl Runs for TractModel {
    fn run_feeds(&self, feeds: &[oxinfer_core::Feed<'_>], cancel: &Cancel) -> oxinfer_core::Result<Vec<oxinfer_core::OutputTensor>> {
        self.run_cancellable(feeds, cancel)
    }
}

impl Runs for TractSession {
    fn run_feeds(&self, feeds: &[oxinfer_core::Feed<'_>], cancel: &Cancel) -> oxinfer_core::Result<Vec<oxinfer_core::OutputTensor>> {
        self.run_cancellable(feeds, cancel)
    }
}

/// One run of a model or a session on the libuv pool, in the wire format of packed.rs.
pub struct RunTask<R: Runs> {
    target: Arc<R>,
    inputs: Arc<[TensorInfo]>,
    feeds: PackedFeeds,
    cancel: Cancel,
}

impl<R: Runs> RunTask<R> {
    fn new(target: Arc<R>, inputs: &Arc<[TensorInfo]>, data: Vec<TensorData>, meta: &[i32], cancel: Cancel) -> napi::Result<Self> {
        let feeds = PackedFeeds::new(data, meta, inputs.len())?;
        Ok(RunTask { target, inputs: Arc::clone(inputs), feeds, cancel })
    }

    fn run(&self) -> napi::Result<PackedOutputs> {
        self.target.run_feeds(&self.feeds.feeds(&self.inputs), &self.cancel).js().map(PackedOutputs)
    }
}

impl<R: Runs> Task for RunTask<R> {
    type Output = PackedOutputs;
    type JsValue = PackedOutputs;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        self.run()
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(out)
    }
}

pub struct BatchTask {
    model: Arc<TractModel>,
    requests: Vec<Vec<NativeFeed>>,
    cancel: Cancel,
}

impl Task for BatchTask {
    type Output = Vec<Vec<oxinfer_core::OutputTensor>>;
    type JsValue = Vec<Vec<NativeOutput>>;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let converted =
            self.requests.iter().map(|r| Converted::new(r)).collect::<napi::Result<Vec<_>>>()?;
        let feeds: Vec<_> =
            converted.iter().zip(&self.requests).map(|(c, r)| c.feeds(r)).collect();
        self.model.run_batch_cancellable(&feeds, &self.cancel).js()
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> napi::Result<Self::JsValue> {
        Ok(out.into_iter().map(to_native_outputs).collect())
    }
}

#[napi(object, object_to_js = false)]
pub struct NativeSessionOptions {
    /// `[output, input]` pairs; absent: found by naming convention.
    pub carry: Option<Vec<Vec<String>>>,
    pub constants: Option<Vec<NativeFeed>>,
}

#[napi]
impl NativeTractModel {
    #[napi(getter)]
    pub fn inputs(&self) -> Vec<NativeTensorInfo> {
        self.inputs.iter().map(info_to_js).collect()
    }

    #[napi(getter)]
    pub fn outputs(&self) -> Vec<NativeTensorInfo> {
        self.outputs.iter().map(info_to_js).collect()
    }

    /// 'symbolic' (one plan for every input shape) or 'per-shape' (a plan per new shape).
    #[napi(getter, ts_return_type = "'symbolic' | 'per-shape'")]
    pub fn planning(&self) -> napi::Result<&'static str> {
        Ok(self.get()?.planning().name())
    }

    #[napi(getter)]
    pub fn sha256(&self) -> String {
        self.sha256.clone()
    }

    #[napi(getter)]
    pub fn threads(&self) -> u32 {
        self.threads as u32
    }

    /// 'float32' or 'bfloat16': what its products by constant weights run in on this CPU.
    #[napi(getter, ts_return_type = "'float32' | 'bfloat16'")]
    pub fn precision(&self) -> &'static str {
        self.precision.name()
    }

    #[napi(getter)]
    pub fn ops(&self) -> Vec<NativeOpCount> {
        self.ops.iter().map(|(op, n)| NativeOpCount { op: op.clone(), count: *n as u32 }).collect()
    }

    /// Runs on the libuv pool. Feeds and outputs in the wire format of packed.rs.
    #[napi(ts_return_type = "Promise<unknown[]>")]
    pub fn run(
        &self,
        #[napi(ts_arg_type = "ArrayBufferView[]")] data: Vec<TensorData>,
        meta: Int32Array,
        cancel: Option<&NativeCancelToken>,
    ) -> napi::Result<AsyncTask<RunTask<TractModel>>> {
        Ok(AsyncTask::new(RunTask::new(self.get()?, &self.inputs, data, &meta, cancel_of(cancel))?))
    }

    /// Runs on the calling thread. Feeds and outputs in the wire format of packed.rs.
    #[napi(ts_return_type = "unknown[]")]
    pub fn run_sync(
        &self,
        #[napi(ts_arg_type = "ArrayBufferView[]")] data: Vec<TensorData>,
        meta: Int32Array,
    ) -> napi::Result<PackedOutputs> {
        RunTask::new(self.get()?, &self.inputs, data, &meta, Cancel::never())?.run()
    }

    #[napi(ts_return_type = "Promise<NativeOutput[][]>")]
    pub fn run_batch(
        &self,
        requests: Vec<Vec<NativeFeed>>,
        cancel: Option<&NativeCancelToken>,
    ) -> napi::Result<AsyncTask<BatchTask>> {
        Ok(AsyncTask::new(BatchTask { model: self.get()?, requests, cancel: cancel_of(cancel) }))
    }

    #[napi]
    pub fn session(&self, options: NativeSessionOptions) -> napi::Result<NativeTractSession> {
        let model = self.get()?;
        let carry = match options.carry {
            None => None,
            Some(pairs) => Some(
                pairs
                    .into_iter()
                    .map(|p| match <[String; 2]>::try_from(p) {
                        Ok([o, i]) => Ok((o, i)),
                        Err(_) => Err(to_js(Error::input_name(
                            "session carry: each entry must be an [output, input] pair",
                        ))),
                    })
                    .collect::<napi::Result<Vec<_>>>()?,
            ),
        };
        let constants = options.constants.unwrap_or_default();
        let converted = Converted::new(&constants)?;
        let session = TractSession::new(
            model,
            SessionOptions { carry, constants: converted.feeds(&constants) },
        )
        .js()?;
        Ok(NativeTractSession { session: Arc::new(session), inputs: Arc::clone(&self.inputs) })
    }

    /// Frees the model once in-flight runs finish; later calls fail with ERR_DISPOSED.
    #[napi]
    pub fn dispose(&self) {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}

#[napi]
pub struct NativeTractSession {
    session: Arc<TractSession>,
    /// The model's inputs, which the wire format's input indices refer to.
    inputs: Arc<[TensorInfo]>,
}

#[napi]
impl NativeTractSession {
    /// One step on the libuv pool. Feeds and outputs in the wire format of packed.rs.
    #[napi(ts_return_type = "Promise<unknown[]>")]
    pub fn run(
        &self,
        #[napi(ts_arg_type = "ArrayBufferView[]")] data: Vec<TensorData>,
        meta: Int32Array,
        cancel: Option<&NativeCancelToken>,
    ) -> napi::Result<AsyncTask<RunTask<TractSession>>> {
        let task = RunTask::new(Arc::clone(&self.session), &self.inputs, data, &meta, cancel_of(cancel))?;
        Ok(AsyncTask::new(task))
    }

    /// One step on the calling thread. Feeds and outputs in the wire format of packed.rs.
    #[napi(ts_return_type = "unknown[]")]
    pub fn run_sync(
        &self,
        #[napi(ts_arg_type = "ArrayBufferView[]")] data: Vec<TensorData>,
        meta: Int32Array,
    ) -> napi::Result<PackedOutputs> {
        RunTask::new(Arc::clone(&self.session), &self.inputs, data, &meta, Cancel::never())?.run()
    }

    #[napi]
    pub fn reset(&self) {
        self.session.reset()
    }

    /// `[output, input]` pairs carried from one run to the next.
    #[napi(getter)]
    pub fn carried(&self) -> Vec<Vec<String>> {
        self.session.carried().into_iter().map(|(o, i)| vec![o, i]).collect()
    }
}

/// The stable error codes, so the TypeScript layer can check it knows them all.
#[napi]
pub fn error_codes() -> Vec<String> {
    ErrorCode::ALL.iter().map(|c| c.as_str().to_string()).collect()
}
