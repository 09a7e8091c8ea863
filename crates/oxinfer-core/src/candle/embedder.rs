//! The sentence embedder: tokenizer + BERT encoder + pooling + L2 normalization, as
//! sentence-transformers computes them.
//!
//! Texts are tokenized, sorted by length and cut into batches of similar lengths (less
//! padding), each batch padded to its longest row and run as one tensor on the device; rows are
//! written back in the caller's order. Padding is masked out, so a text's vector does not depend
//! on its batch beyond float rounding.

use std::path::Path;

use candle_core::{DType as CDType, Device, Tensor, D};

use super::bert::{var_builder, Bert};
use super::config::{read_bert_config, read_sentence_config, ModelFiles, Pooling};
use super::device::{device, DeviceKind};
use super::tokenize::{TextTokenizer, Tokens};
use crate::cancel::Cancel;
use crate::error::{Error, ErrorCode, Result};
use crate::panic::guard;

/// Compute precision of the encoder. Pooling and normalization always run in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    F16,
    BF16,
    /// f32 weights and activations, the linear layers' products in int8 (crate::int8): CPUs with
    /// AVX512-VNNI only.
    Int8,
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "float32" => Ok(Precision::F32),
            "float16" => Ok(Precision::F16),
            "bfloat16" => Ok(Precision::BF16),
            "int8" => Ok(Precision::Int8),
            other => Err(Error::input_dtype(format!(
                "embedder dtype '{other}' is not supported: expected float32, float16, bfloat16 or int8"
            ))),
        }
    }
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "float32",
            Precision::F16 => "float16",
            Precision::BF16 => "bfloat16",
            Precision::Int8 => "int8",
        }
    }
    fn candle(self) -> CDType {
        match self {
            Precision::F32 | Precision::Int8 => CDType::F32,
            Precision::F16 => CDType::F16,
            Precision::BF16 => CDType::BF16,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct EmbedderOptions {
    pub device: Option<DeviceKind>,
    pub dtype: Option<Precision>,
    /// Tokens per text, special tokens included; longer texts are truncated. Default:
    /// sentence_bert_config.json's max_seq_length, else the model's position limit.
    pub max_length: Option<usize>,
    /// Default: 1_Pooling/config.json's mode, else mean.
    pub pooling: Option<Pooling>,
    /// L2-normalize vectors. Default: true.
    pub normalize: Option<bool>,
    /// CPU threads for this model (default: the CPUs this process may use).
    pub threads: Option<usize>,
}

/// A row-major matrix of `rows` vectors of `dims` floats.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub data: Vec<f32>,
    pub rows: usize,
    pub dims: usize,
}

/// Pre-tokenized ids or a mask, as the caller's integers.
#[derive(Debug, Clone, Copy)]
pub enum TokenData<'a> {
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl TokenData<'_> {
    fn len(&self) -> usize {
        match self {
            TokenData::I32(v) => v.len(),
            TokenData::I64(v) => v.len(),
        }
    }
    fn get(&self, i: usize) -> i64 {
        match self {
            TokenData::I32(v) => v[i] as i64,
            TokenData::I64(v) => v[i],
        }
    }
}

pub struct Embedder {
    bert: Bert,
    tokenizer: TextTokenizer,
    device: Device,
    device_kind: DeviceKind,
    precision: Precision,
    max_length: usize,
    pooling: Pooling,
    normalize: bool,
    threads: usize,
    pool: Option<crate::threads::CpuPool>,
    weight_bytes: usize,
}

impl Embedder {
    /// Loads a Hugging Face style folder: config.json, tokenizer.json, model.safetensors, and
    /// sentence-transformers' files when present.
    pub fn load(dir: &Path, options: &EmbedderOptions) -> Result<Embedder> {
        guard(ErrorCode::ModelLoad, "loading the embedder", || Self::load_unguarded(dir, options))
    }

    /// Loads through the process-wide model cache (same folder, files and options: same model).
    pub fn load_cached(dir: &Path, options: &EmbedderOptions) -> Result<crate::cache::Handle<Embedder>> {
        let files = ModelFiles::in_dir(dir)?;
        let mut key = String::from("candle:");
        for f in [&files.config, &files.tokenizer, &files.weights] {
            let id = crate::cache::file_identity(f)
                .map_err(|e| Error::model_load(format!("cannot read {}: {e}", f.display())))?;
            key.push_str(&id);
            key.push('|');
        }
        let threads = options.threads.unwrap_or_else(crate::threads::available_cpus);
        key.push_str(&format!("{:?}|threads={threads}", EmbedderOptions { threads: None, ..options.clone() }));
        crate::cache::global().acquire("candle", key, || Embedder::load(dir, options))
    }

    fn load_unguarded(dir: &Path, o: &EmbedderOptions) -> Result<Embedder> {
        let files = ModelFiles::in_dir(dir)?;
        let config = read_bert_config(&files.config)?;
        let st = read_sentence_config(dir)?;
        let max_length = match o.max_length.or(st.max_seq_length) {
            Some(0) => return Err(Error::model_load("maxLength must be at least 1")),
            Some(n) if n > config.max_position_embeddings => {
                return Err(Error::model_load(format!(
                    "maxLength {n} exceeds the model's {} positions ({})",
                    config.max_position_embeddings,
                    files.config.display()
                )))
            }
            Some(n) => n,
            None => config.max_position_embeddings,
        };
        let (device, device_kind) = device(o.device.unwrap_or(DeviceKind::Cpu))?;
        super::device::bind_to_thread(&device)?;
        let precision = o.dtype.unwrap_or(Precision::F32);
        let tokenizer = TextTokenizer::load(&files.tokenizer, max_length)?;
        let bytes = std::fs::read(&files.weights)
            .map_err(|e| Error::model_load(format!("cannot read {}: {e}", files.weights.display())))?;
        let weight_bytes = bytes.len();
        let bad_weights =
            |e: candle_core::Error| Error::model_load(format!("{}: {e}", files.weights.display()));
        // bfloat16 on a CPU with AVX512-BF16: f32 weights and activations, the linear layers'
        // products in bf16 (crate::bf16), 1.6x faster than f32 there; candle's own bf16 CPU
        // matmul ran 2.1x slower than f32 (32 sentences: 750 vs 354 ms), but is what other
        // CPUs get. int8: the products in int8 (crate::int8) where the CPU has AVX512-VNNI,
        // float32 elsewhere (and `precision` says so); no GPU kernel.
        use crate::precision::Precision as Products;
        let products = match (precision, device_kind) {
            (Precision::BF16, DeviceKind::Cpu) => Products::Bfloat16.effective(),
            (Precision::Int8, DeviceKind::Cpu) => Products::Int8.effective(),
            (Precision::Int8, _) => {
                return Err(Error::model_load(
                    "embedder dtype 'int8' runs on the CPU only (AVX512-VNNI); on a GPU use float16 or bfloat16",
                ));
            }
            _ => Products::Float32,
        };
        let precision = if precision == Precision::Int8 && products != Products::Int8 { Precision::F32 } else { precision };
        let weights_dtype = if products != Products::Float32 { CDType::F32 } else { precision.candle() };
        let vb = var_builder(bytes, weights_dtype, &device).map_err(bad_weights)?;
        let bert = Bert::load(vb, &config, products).map_err(bad_weights)?;
        let threads = o.threads.unwrap_or_else(crate::threads::available_cpus).max(1);
        let pool = match device_kind {
            DeviceKind::Cpu => Some(crate::threads::CpuPool::new(threads)?),
            _ => None,
        };
        Ok(Embedder {
            bert,
            tokenizer,
            device,
            device_kind,
            precision,
            max_length,
            pooling: o.pooling.or(st.pooling).unwrap_or(Pooling::Mean),
            normalize: o.normalize.unwrap_or(true),
            threads,
            pool,
            weight_bytes,
        })
    }

    pub fn dims(&self) -> usize {
        self.bert.hidden_size
    }
    pub fn max_length(&self) -> usize {
        self.max_length
    }
    pub fn device(&self) -> DeviceKind {
        self.device_kind
    }
    pub fn precision(&self) -> Precision {
        self.precision
    }
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }
    pub fn normalize(&self) -> bool {
        self.normalize
    }
    pub fn threads(&self) -> usize {
        self.threads
    }
    pub fn vocab_size(&self) -> usize {
        self.bert.vocab_size
    }
    /// Estimated memory of the weights.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// Runs `f` on this model's CPU pool (so candle's and the tokenizer's parallel work uses
    /// this model's thread budget), or directly for a GPU.
    fn on_pool<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        guard(ErrorCode::Engine, "embedding", || match &self.pool {
            Some(pool) => pool.install(f),
            None => {
                super::device::bind_to_thread(&self.device)?;
                f()
            }
        })
    }

    /// Embeds texts, `batch_size` rows per engine call; `cancelled` is checked before each
    /// encoder layer (and between batches): a cancelled call stops with ERR_ABORTED.
    pub fn embed(
        &self,
        texts: &[String],
        batch_size: usize,
        cancelled: &Cancel,
    ) -> Result<Embeddings> {
        self.on_pool(|| {
            let tokens = self.tokenizer.encode(texts)?;
            // Longest first, so each batch holds texts of similar length.
            let mut order: Vec<usize> = (0..tokens.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));
            let mut out = vec![0f32; texts.len() * self.dims()];
            for chunk in order.chunks(batch_size.max(1)) {
                if cancelled.is_set() {
                    return Err(Error::aborted());
                }
                let rows: Vec<&Tokens> = chunk.iter().map(|&i| &tokens[i]).collect();
                let vectors = self.run_padded(&rows, cancelled)?;
                for (r, &i) in chunk.iter().enumerate() {
                    let d = self.dims();
                    out[i * d..(i + 1) * d].copy_from_slice(&vectors[r * d..(r + 1) * d]);
                }
            }
            Ok(Embeddings { data: out, rows: texts.len(), dims: self.dims() })
        })
    }

    /// Embeds pre-tokenized rows: `ids` and `mask` (1 token, 0 padding; default all ones) of
    /// shape [rows, seq].
    pub fn embed_tokens(
        &self,
        ids: TokenData<'_>,
        mask: Option<TokenData<'_>>,
        shape: [usize; 2],
        batch_size: usize,
        cancelled: &Cancel,
    ) -> Result<Embeddings> {
        let [rows, seq] = shape;
        let n = rows.checked_mul(seq).ok_or_else(|| Error::input_shape("ids: shape is too large"))?;
        if ids.len() != n {
            return Err(Error::input_shape(format!(
                "ids: {} values do not fill shape [{rows},{seq}] ({n} values)",
                ids.len()
            )));
        }
        if seq > self.bert.max_positions {
            return Err(Error::input_shape(format!(
                "ids: sequence length {seq} exceeds the model's {} positions",
                self.bert.max_positions
            )));
        }
        if let Some(m) = mask {
            if m.len() != n {
                return Err(Error::input_shape(format!(
                    "attentionMask: {} values do not match ids' shape [{rows},{seq}]",
                    m.len()
                )));
            }
        }
        let vocab = self.bert.vocab_size as i64;
        let mut all_ids = Vec::with_capacity(n);
        let mut all_mask = Vec::with_capacity(n);
        for i in 0..n {
            let id = ids.get(i);
            if !(0..vocab).contains(&id) {
                return Err(Error::input_shape(format!(
                    "ids[{i}] = {id} is outside the vocabulary (0..{vocab})"
                )));
            }
            let m = mask.map(|m| m.get(i)).unwrap_or(1);
            if m != 0 && m != 1 {
                return Err(Error::input_shape(format!("attentionMask[{i}] = {m}: expected 0 or 1")));
            }
            all_ids.push(id as u32);
            all_mask.push(m as u32);
        }
        self.on_pool(|| {
            let mut out = Vec::with_capacity(rows * self.dims());
            for start in (0..rows).step_by(batch_size.max(1)) {
                if cancelled.is_set() {
                    return Err(Error::aborted());
                }
                let b = batch_size.max(1).min(rows - start);
                let range = start * seq..(start + b) * seq;
                out.extend(self.run(
                    all_ids[range.clone()].to_vec(),
                    vec![0; b * seq],
                    all_mask[range].to_vec(),
                    [b, seq],
                    cancelled,
                )?);
            }
            Ok(Embeddings { data: out, rows, dims: self.dims() })
        })
    }

    /// Pads rows to the longest and runs them as one batch.
    fn run_padded(&self, rows: &[&Tokens], cancelled: &Cancel) -> Result<Vec<f32>> {
        let seq = rows.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![self.tokenizer.pad_id(); rows.len() * seq];
        let mut types = vec![0u32; rows.len() * seq];
        let mut mask = vec![0u32; rows.len() * seq];
        for (r, t) in rows.iter().enumerate() {
            let at = r * seq;
            ids[at..at + t.ids.len()].copy_from_slice(&t.ids);
            for (k, &ty) in t.types.iter().enumerate() {
                // A tokenizer's type ids beyond the model's table would index out of range.
                types[at + k] = ty.min(self.bert.type_vocab_size as u32 - 1);
            }
            mask[at..at + t.ids.len()].fill(1);
        }
        self.run(ids, types, mask, [rows.len(), seq], cancelled)
    }

    /// Runs a [b, s] batch. On the CPU the rows are cut into parts of similar lengths, at least
    /// one per thread (parts.rs), each run as its own engine call, in parallel: most of
    /// candle's CPU ops are single-threaded, and matmuls split poorly at these sizes (measured:
    /// 2 threads gave gemm 1.05-1.3x), while independent rows scale with the threads. A batch
    /// with fewer rows than threads gives the spare threads to its matmuls. A GPU gets the
    /// batch whole.
    fn run(&self, ids: Vec<u32>, types: Vec<u32>, mask: Vec<u32>, [b, s]: [usize; 2], cancelled: &Cancel) -> Result<Vec<f32>> {
        // Counted with tract's runs: a lone call's matmuls share work with lingering helpers.
        // Each call starts by yielding the core (see linger::yield_core): calls of short texts
        // have no product large enough to yield before, and back to back on the pool's
        // threads they kept the event loop's thread waiting for a scheduler slice.
        std::thread::yield_now();
        crate::linger::counted_run(|| self.run_counted(ids, types, mask, [b, s], cancelled))
    }

    fn run_counted(&self, ids: Vec<u32>, types: Vec<u32>, mask: Vec<u32>, [b, s]: [usize; 2], cancelled: &Cancel) -> Result<Vec<f32>> {
        let parts = match self.pool {
            Some(_) => {
                // Each row's length without its trailing padding: parts of similar lengths.
                let lens: Vec<usize> =
                    (0..b).map(|r| mask[r * s..(r + 1) * s].iter().rposition(|&m| m != 0).map_or(0, |c| c + 1)).collect();
                let mut parts = super::parts::tasks(&lens, self.threads);
                // Costliest first, so that the threads claiming them even out uneven parts.
                parts.sort_by_key(|r| std::cmp::Reverse(super::parts::cost(&lens, r)));
                parts
            }
            None => vec![0..b],
        };
        // Threads left over (fewer parts than threads) go to the matmuls of each part.
        let matmul_threads = if self.pool.is_some() { (self.threads / parts.len().max(1)).max(1) } else { 1 };
        let part = |r: &std::ops::Range<usize>| {
            let rows = r.start * s..r.end * s;
            self.run_part(&ids[rows.clone()], &types[rows.clone()], &mask[rows], s, matmul_threads, cancelled)
        };
        if parts.len() < 2 {
            return Ok(parts.iter().map(part).collect::<Result<Vec<_>>>()?.concat());
        }
        let outs: Vec<std::sync::Mutex<Option<Result<Vec<f32>>>>> = parts.iter().map(|_| std::sync::Mutex::new(None)).collect();
        let lock = |i: usize| outs[i].lock().unwrap_or_else(|p| p.into_inner());
        // A panicking part leaves its result empty: it reads as an error below.
        let _ = crate::linger::claim_in_scope(self.threads, parts.len(), |i| *lock(i) = Some(part(&parts[i])));
        // Back in row order.
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&i| parts[i].start);
        let mut all = Vec::with_capacity(b * self.dims());
        for i in order {
            all.extend(lock(i).take().unwrap_or_else(|| Err(Error::engine("a part of the batch panicked")))?);
        }
        Ok(all)
    }

    /// One engine call: upload, encode, pool, normalize, download once. Trailing columns that
    /// are padding in every row are dropped first (they change nothing: padded keys get zero
    /// attention and padded queries are not pooled), and a batch without padding skips the
    /// attention mask.
    fn run_part(&self, ids: &[u32], types: &[u32], mask: &[u32], s: usize, threads: usize, cancelled: &Cancel) -> Result<Vec<f32>> {
        let b = ids.len() / s.max(1);
        let used = (0..s).rev().find(|&c| (0..b).any(|r| mask[r * s + c] != 0)).map_or(1, |c| c + 1);
        let take = |v: &[u32]| -> Vec<u32> { v.chunks(s).flat_map(|row| &row[..used]).copied().collect() };
        let (ids, types, mask, s) = (take(ids), take(types), take(mask), used);
        let padded = mask.iter().any(|&m| m == 0);
        let engine = |e: candle_core::Error| Error::engine(format!("embedding failed: {e}"));
        let ids = Tensor::from_vec(ids, (b, s), &self.device).map_err(engine)?;
        let types = Tensor::from_vec(types, (b, s), &self.device).map_err(engine)?;
        let mask = Tensor::from_vec(mask, (b, s), &self.device).map_err(engine)?;
        let pooled = (|| {
            let hidden = self.bert.forward(&ids, &types, padded.then_some(&mask), threads, cancelled)?.to_dtype(CDType::F32)?;
            let pooled = match self.pooling {
                Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
                Pooling::Mean => {
                    let m = mask.to_dtype(CDType::F32)?.unsqueeze(2)?; // [B, S, 1]
                    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                    let count = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                    sum.broadcast_div(&count)?
                }
            };
            if self.normalize {
                let norm = pooled.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
                pooled.broadcast_div(&norm)
            } else {
                Ok(pooled)
            }
        })()
        .map_err(|e| if cancelled.is_set() { Error::aborted() } else { engine(e) })?;
        pooled.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(engine)
    }
}

impl Drop for Embedder {
    /// The last handle may go on any thread (a JS `dispose()` on the main thread, a libuv
    /// worker finishing a run): make the CUDA context current before the weights are freed, or
    /// the frees fail and leave the context in an error state for every later model.
    fn drop(&mut self) {
        let _ = super::device::bind_to_thread(&self.device);
    }
}

impl crate::cache::Weigh for Embedder {
    fn bytes(&self) -> usize {
        self.weight_bytes
    }
}
