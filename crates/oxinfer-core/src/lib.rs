//! oxinfer-core: the engines behind oxinfer, as plain Rust.
//!
//! - [`tensor`] and [`dtype`]: the small types every engine speaks.
//! - [`tract`]: ONNX models on CPU through tract (load, run, batch, sessions).
//! - [`candle`]: sentence embeddings through candle (CPU; CUDA and Metal behind features).
//! - [`cache`]: the model cache both engines load through.
//! - [`error`]: one error type with stable codes.
//!
//! Nothing here knows about Node; the napi crate converts and schedules.

pub mod cache;
pub mod cancel;
pub mod candle;
pub mod dtype;
pub mod error;
mod fastmath;
#[doc(hidden)]
pub mod fuzzing;
mod linger;
pub mod panic;
pub mod bf16;
pub mod int8;
pub mod precision;
mod sgemm;
mod simd;
pub mod tensor;
pub mod threads;
pub mod tract;

pub use cancel::Cancel;
pub use dtype::DType;
pub use error::{Error, ErrorCode, Result};
pub use tensor::{Dim, Feed, OutputTensor, TensorInfo, TensorRef};
