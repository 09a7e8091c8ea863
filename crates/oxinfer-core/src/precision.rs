//! How products by constant weights are computed, and who computes their parts.

use std::sync::Arc;

use crate::bf16::{PackedBf16, gemm_bf16};
use crate::int8::{PackedI8, gemm_i8};

/// The arithmetic of products by constant weights (a model's projections); everything else
/// stays f32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 throughout.
    #[default]
    Float32,
    /// Weights and activations rounded to bfloat16, products accumulated in f32, where the CPU has
    /// AVX512-BF16 (crate::bf16); f32 elsewhere.
    Bfloat16,
    /// Weights quantized per column to i8, activations per row to u8, products summed exactly in
    /// i32, where the CPU has AVX512-VNNI (crate::int8); f32 elsewhere.
    Int8,
}

impl Precision {
    /// The precision a load asking for `self` gets on this CPU.
    pub fn effective(self) -> Precision {
        match self {
            Precision::Bfloat16 if crate::bf16::available() => Precision::Bfloat16,
            Precision::Int8 if crate::int8::available() => Precision::Int8,
            _ => Precision::Float32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Float32 => "float32",
            Precision::Bfloat16 => "bfloat16",
            Precision::Int8 => "int8",
        }
    }

    /// The precision named `name` (as [`Precision::name`] gives it).
    pub fn parse(name: &str) -> Option<Precision> {
        [Precision::Float32, Precision::Bfloat16, Precision::Int8].into_iter().find(|p| p.name() == name)
    }
}

/// A weight matrix packed for a reduced-precision product: what tract's FastMatMul and the
/// candle embedder's linear layers both run on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Packed {
    /// Rounded to bf16 (crate::bf16).
    Bf16(Arc<PackedBf16>),
    /// Quantized to i8 per column (crate::int8).
    Int8(Arc<PackedI8>),
}

impl Packed {
    /// Row-major `w[k][n]` packed for `precision`, which the caller has made effective on this
    /// CPU ([`Precision::effective`]); `None` for `Float32`.
    pub fn of(w: &[f32], k: usize, n: usize, precision: Precision) -> Option<Packed> {
        match precision {
            Precision::Float32 => None,
            Precision::Bfloat16 => Some(Packed::Bf16(Arc::new(PackedBf16::pack(w, k, n)))),
            Precision::Int8 => Some(Packed::Int8(Arc::new(PackedI8::pack(w, k, n)))),
        }
    }

    pub fn k(&self) -> usize {
        match self {
            Packed::Bf16(w) => w.k(),
            Packed::Int8(w) => w.k(),
        }
    }

    pub fn n(&self) -> usize {
        match self {
            Packed::Bf16(w) => w.n(),
            Packed::Int8(w) => w.n(),
        }
    }

    /// "bf16" or "int8", for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Packed::Bf16(_) => "bf16",
            Packed::Int8(_) => "int8",
        }
    }

    /// `y[rows, n] (+)= x[rows, k] @ w` in this precision (crate::bf16::gemm_bf16,
    /// crate::int8::gemm_i8). `Err` when a part panicked.
    pub fn gemm(&self, share: Share<'_>, (x, y): (&[f32], &mut [f32]), rows: usize, accumulate: bool) -> Result<(), ()> {
        match self {
            Packed::Bf16(w) => gemm_bf16(share, (x, w, y), rows, accumulate),
            Packed::Int8(w) => gemm_i8(share, (x, w, y), rows, accumulate),
        }
    }
}

/// Who computes a product's panels: the calling thread and up to `helpers` threads of `pool`
/// (`None`: the pool the caller runs on), through crate::linger::share.
#[derive(Clone, Copy)]
pub struct Share<'p> {
    pub pool: Option<&'p rayon::ThreadPool>,
    pub helpers: usize,
}

impl Share<'_> {
    /// Runs `task` for panels `0..panels`: here alone, or shared. `Err` when a part panicked.
    pub(crate) fn run<F: Fn(usize) + Send + Sync + 'static>(self, panels: usize, task: F) -> Result<(), ()> {
        if self.helpers == 0 || panels == 1 {
            (0..panels).for_each(task);
            Ok(())
        } else {
            crate::linger::share(self.pool, self.helpers, panels, task)
        }
    }
}

/// Stores (or, with `accumulate`, adds onto) one tile row's 4 vectors of 16 f32 at `dst`, of
/// which the first `cols` (<= 64) are columns of the output.
///
/// # Safety
/// AVX-512F present; `dst .. dst + cols` valid for reads and writes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn store_row(dst: *mut f32, row: [std::arch::x86_64::__m512; 4], cols: usize, accumulate: bool) {
    use std::arch::x86_64::*;
    for (v, &value) in row.iter().enumerate() {
        let first = 16 * v;
        if first >= cols {
            break;
        }
        let mask: __mmask16 = if cols - first >= 16 { 0xffff } else { (1u16 << (cols - first)) - 1 };
        // SAFETY: columns first .. first + 16 under the mask lie inside 0..cols (the contract).
        unsafe {
            let dst = dst.add(first);
            let value = if accumulate { _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, dst)) } else { value };
            _mm512_mask_storeu_ps(dst, mask, value);
        }
    }
}

/// Deterministic values in -1..1 for the kernels' tests.
#[cfg(test)]
pub(crate) fn test_values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}
