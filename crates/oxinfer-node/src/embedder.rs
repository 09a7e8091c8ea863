//! `NativeCandleEmbedder`: the candle sentence embedder as a JS class. Load and embed run as
//! AsyncTasks on the libuv pool; a `NativeCancelToken` stops a long embed before its next encoder layer.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use oxinfer_core::cache::Held;
use oxinfer_core::candle::{DeviceKind, Embedder, EmbedderOptions, Embeddings, Pooling, Precision, TokenData};
use oxinfer_core::{Cancel, Error};

use crate::cancel::{Cancellable, NativeCancelToken, cancel_of};
use crate::error::{IntoJs, to_js};

#[napi(object)]
pub struct NativeEmbedderOptions {
    pub device: Option<String>,
    pub dtype: Option<String>,
    pub max_length: Option<u32>,
    pub pooling: Option<String>,
    pub normalize: Option<bool>,
    pub threads: Option<u32>,
    /// Load through the model cache (default true).
    pub cache: Option<bool>,
}

fn core_options(o: &NativeEmbedderOptions) -> napi::Result<EmbedderOptions> {
    Ok(EmbedderOptions {
        device: o.device.as_deref().map(str::parse::<DeviceKind>).transpose().js()?,
        dtype: o.dtype.as_deref().map(str::parse::<Precision>).transpose().js()?,
        max_length: o.max_length.map(|n| n as usize),
        pooling: o.pooling.as_deref().map(str::parse::<Pooling>).transpose().js()?,
        normalize: o.normalize,
        threads: o.threads.map(|n| n as usize),
    })
}

pub struct EmbedderLoadTask {
    dir: String,
    options: EmbedderOptions,
    cache: bool,
}

impl Task for EmbedderLoadTask {
    type Output = Held<Embedder>;
    type JsValue = NativeCandleEmbedder;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        let dir = std::path::Path::new(&self.dir);
        Held::load(
            self.cache,
            || Embedder::load_cached(dir, &self.options),
            || Embedder::load(dir, &self.options),
        )
        .js()
    }

    fn resolve(&mut self, _env: Env, held: Self::Output) -> napi::Result<Self::JsValue> {
        let m = held.model();
        Ok(NativeCandleEmbedder {
            dims: m.dims() as u32,
            max_length: m.max_length() as u32,
            device: m.device().to_string(),
            dtype: m.precision().name().to_string(),
            pooling: m.pooling().name().to_string(),
            normalize: m.normalize(),
            threads: m.threads() as u32,
            model: Mutex::new(Some(held)),
        })
    }
}

/// Loads a model folder (config.json, tokenizer.json, model.safetensors) off the JS thread.
#[napi(ts_return_type = "Promise<NativeCandleEmbedder>")]
pub fn load_candle_embedder(
    dir: String,
    options: NativeEmbedderOptions,
    cancel: Option<&NativeCancelToken>,
) -> napi::Result<AsyncTask<Cancellable<EmbedderLoadTask>>> {
    let task = EmbedderLoadTask { dir, cache: options.cache.unwrap_or(true), options: core_options(&options)? };
    Ok(Cancellable::new(task, cancel))
}

#[napi]
pub struct NativeCandleEmbedder {
    model: Mutex<Option<Held<Embedder>>>,
    dims: u32,
    max_length: u32,
    device: String,
    dtype: String,
    pooling: String,
    normalize: bool,
    threads: u32,
}

#[napi(object, object_from_js = false)]
pub struct NativeEmbeddings {
    pub data: Float32Array,
    pub rows: u32,
    pub dims: u32,
}

fn to_js_embeddings(e: Embeddings) -> NativeEmbeddings {
    NativeEmbeddings { rows: e.rows as u32, dims: e.dims as u32, data: Float32Array::new(e.data) }
}

/// What an embed task works on.
pub enum EmbedInput {
    Texts(Vec<String>),
    Tokens { ids: Either<Int32Array, BigInt64Array>, mask: Option<Either<Int32Array, BigInt64Array>>, shape: [usize; 2] },
}

pub struct EmbedTask {
    model: Arc<Embedder>,
    input: EmbedInput,
    batch_size: usize,
    cancel: Cancel,
}

fn token_data(a: &Either<Int32Array, BigInt64Array>) -> TokenData<'_> {
    match a {
        Either::A(v) => TokenData::I32(v),
        Either::B(v) => TokenData::I64(v),
    }
}

impl Task for EmbedTask {
    type Output = Embeddings;
    type JsValue = NativeEmbeddings;

    fn compute(&mut self) -> napi::Result<Embeddings> {
        let cancelled = &self.cancel;
        match &self.input {
            EmbedInput::Texts(texts) => self.model.embed(texts, self.batch_size, cancelled),
            EmbedInput::Tokens { ids, mask, shape } => self.model.embed_tokens(
                token_data(ids),
                mask.as_ref().map(token_data),
                *shape,
                self.batch_size,
                cancelled,
            ),
        }
        .js()
    }

    fn resolve(&mut self, _env: Env, out: Embeddings) -> napi::Result<NativeEmbeddings> {
        Ok(to_js_embeddings(out))
    }
}

impl NativeCandleEmbedder {
    fn get(&self) -> napi::Result<Arc<Embedder>> {
        let slot = self.model.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|h| Arc::clone(h.model())).ok_or_else(|| to_js(Error::disposed("the embedder")))
    }

    fn task(&self, input: EmbedInput, batch_size: u32, cancel: Option<&NativeCancelToken>) -> napi::Result<EmbedTask> {
        Ok(EmbedTask {
            model: self.get()?,
            input,
            batch_size: batch_size.max(1) as usize,
            cancel: cancel_of(cancel),
        })
    }
}

#[napi]
impl NativeCandleEmbedder {
    #[napi(getter)]
    pub fn dims(&self) -> u32 {
        self.dims
    }
    #[napi(getter)]
    pub fn max_length(&self) -> u32 {
        self.max_length
    }
    /// The device chosen (`auto` resolved).
    #[napi(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }
    #[napi(getter)]
    pub fn dtype(&self) -> String {
        self.dtype.clone()
    }
    #[napi(getter)]
    pub fn pooling(&self) -> String {
        self.pooling.clone()
    }
    #[napi(getter)]
    pub fn normalize(&self) -> bool {
        self.normalize
    }
    #[napi(getter)]
    pub fn threads(&self) -> u32 {
        self.threads
    }

    #[napi(ts_return_type = "Promise<NativeEmbeddings>")]
    pub fn embed(
        &self,
        texts: Vec<String>,
        batch_size: u32,
        cancel: Option<&NativeCancelToken>,
    ) -> napi::Result<AsyncTask<EmbedTask>> {
        Ok(AsyncTask::new(self.task(EmbedInput::Texts(texts), batch_size, cancel)?))
    }

    /// Pre-tokenized rows: ids and an optional mask of shape [rows, seq].
    #[napi(ts_return_type = "Promise<NativeEmbeddings>")]
    pub fn embed_tokens(
        &self,
        ids: Either<Int32Array, BigInt64Array>,
        mask: Option<Either<Int32Array, BigInt64Array>>,
        rows: u32,
        seq: u32,
        batch_size: u32,
        cancel: Option<&NativeCancelToken>,
    ) -> napi::Result<AsyncTask<EmbedTask>> {
        let input = EmbedInput::Tokens { ids, mask, shape: [rows as usize, seq as usize] };
        Ok(AsyncTask::new(self.task(input, batch_size, cancel)?))
    }

    /// Releases this handle; the model is freed when no other handle or run holds it.
    #[napi]
    pub fn dispose(&self) {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.model.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}

/// Backends compiled into this addon (`cpu`, and `cuda` / `metal` in those builds).
#[napi]
pub fn compiled_backends() -> Vec<String> {
    oxinfer_core::candle::device::compiled_backends().into_iter().map(String::from).collect()
}
