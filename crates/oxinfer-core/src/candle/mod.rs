//! The candle engine: sentence embeddings with BERT-family encoders on CPU, CUDA or Metal.
//!
//! - [`device`]: device names, created once per process.
//! - [`config`]: a model folder's files (config.json, sentence-transformers settings).
//! - [`tokenize`]: tokenizer.json, offline.
//! - [`bert`]: the encoder.
//! - [`embedder`]: tokenize → encode → pool → normalize, batched.
//! - `cuda_ops` (the `cuda` feature): oxinfer's own kernels for the moves candle's CUDA ops
//!   make slowly (bias and mask adds, attention head split and merge).

pub mod bert;
pub mod config;
pub mod device;
pub mod embedder;
mod attention;
#[cfg(feature = "cuda")]
mod cuda_ops;
mod gelu;
mod linear;
mod parts;
pub mod tokenize;

pub use config::Pooling;
pub use device::DeviceKind;
pub use embedder::{Embedder, EmbedderOptions, Embeddings, Precision, TokenData};
