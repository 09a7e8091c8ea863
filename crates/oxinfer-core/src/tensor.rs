//! Plain tensor types that cross the engine boundary: declared facts, borrowed inputs, owned outputs.

use std::fmt;
use std::sync::Arc;

use tract_onnx::prelude::Tensor;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// One dimension of a declared shape: a known size, or a symbol (`"N"`, `"S+1"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    Fixed(usize),
    Symbol(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => f.write_str(s),
        }
    }
}

/// Formats a shape as `[N,3,224,224]`.
pub fn shape_string<D: fmt::Display>(dims: &[D]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Name, element type and shape of a model input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' ({} {})", self.name, self.dtype, shape_string(&self.shape))
    }
}

/// An input tensor borrowed from its owner (a JS ArrayBuffer, a Vec): read in place.
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    /// Little-endian element bytes, row-major, exactly `len(shape) * dtype.size()` of them.
    pub data: &'a [u8],
}

/// A named input of one run.
#[derive(Debug, Clone, Copy)]
pub struct Feed<'a> {
    pub name: &'a str,
    pub tensor: TensorRef<'a>,
}

impl<'a> Feed<'a> {
    pub fn new(name: &'a str, dtype: DType, shape: &'a [usize], data: &'a [u8]) -> Self {
        Feed { name, tensor: TensorRef { dtype, shape, data } }
    }
}

/// Number of elements of a shape, or an error naming the input when it overflows.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| {
        Error::input_shape(format!("input '{name}': shape {} is too large", shape_string(shape)))
    })
}

/// An output tensor. It shares the engine's buffer (no copy); several outputs may share one
/// buffer at different offsets when a batch is split.
#[derive(Debug, Clone)]
pub struct OutputTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    storage: Arc<Tensor>,
    byte_offset: usize,
    byte_len: usize,
}

impl OutputTensor {
    pub(crate) fn whole(name: String, dtype: DType, tensor: Arc<Tensor>) -> Self {
        let shape = tensor.shape().to_vec();
        let byte_len = tensor.len() * dtype.size();
        OutputTensor { name, dtype, shape, storage: tensor, byte_offset: 0, byte_len }
    }

    /// Rows `start..end` of dim 0, sharing the storage.
    pub(crate) fn rows(&self, start: usize, end: usize) -> OutputTensor {
        let row_bytes = if self.shape[0] == 0 { 0 } else { self.byte_len / self.shape[0] };
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        OutputTensor {
            name: self.name.clone(),
            dtype: self.dtype,
            shape,
            storage: Arc::clone(&self.storage),
            byte_offset: self.byte_offset + start * row_bytes,
            byte_len: (end - start) * row_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.byte_len / self.dtype.size()
    }

    pub fn is_empty(&self) -> bool {
        self.byte_len == 0
    }

    /// The element bytes (aligned for `dtype`).
    pub fn bytes(&self) -> &[u8] {
        &self.storage.as_bytes()[self.byte_offset..self.byte_offset + self.byte_len]
    }

    /// A handle that keeps the bytes alive, for handing them to a foreign owner
    /// (an external JS ArrayBuffer) without copying.
    pub fn keep_alive(&self) -> Arc<Tensor> {
        Arc::clone(&self.storage)
    }

    pub(crate) fn storage(&self) -> &Arc<Tensor> {
        &self.storage
    }

    /// The elements as `T`, copied; for tests and Rust callers.
    pub fn to_vec<T: bytemuck_free::Pod>(&self) -> Vec<T> {
        bytemuck_free::cast_vec(self.bytes())
    }
}

/// Minimal plain-old-data casting, so the crate needs no extra dependency for it.
pub mod bytemuck_free {
    /// Types whose every bit pattern is valid.
    pub trait Pod: Copy + Default {}
    impl Pod for f32 {}
    impl Pod for f64 {}
    impl Pod for i64 {}
    impl Pod for i32 {}
    impl Pod for i16 {}
    impl Pod for i8 {}
    impl Pod for u64 {}
    impl Pod for u32 {}
    impl Pod for u16 {}
    impl Pod for u8 {}

    pub fn cast_vec<T: Pod>(bytes: &[u8]) -> Vec<T> {
        let n = bytes.len() / std::mem::size_of::<T>();
        let mut out = vec![T::default(); n];
        // SAFETY: T is Pod, `out` has room for n * size_of::<T>() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                out.as_mut_ptr() as *mut u8,
                n * std::mem::size_of::<T>(),
            );
        }
        out
    }
}
