//! Products by constant weights in bfloat16, for models loaded with
//! [`Precision::Bfloat16`](crate::precision::Precision): the weights are rounded to bf16 and packed once, at load; each call
//! rounds its activations to bf16 and multiplies with AVX512-BF16's `VDPBF16PS`, which does two
//! multiply-adds per f32 lane where an f32 FMA does one, accumulating in f32.
//!
//! Why: on the 2-core hosts of the benchmarks an f32 encoder's products already run at ~87% of
//! the FMA peak (bench/HISTORY.md), so f32 cannot go much faster; bf16 doubles the peak and halves
//! the weights' memory traffic, at bf16's 8-bit mantissa (relative error ~2^-9 per rounded value).
//!
//! Layout: columns in panels of [`NR`] (64); in a panel, for each pair of rows `2q, 2q + 1` of the
//! weights, `NR` 32-bit words, word `c` holding `w[2q][c]` in its low half and `w[2q + 1][c]` in
//! its high half (what `VDPBF16PS` pairs with two consecutive activation values). A panel is
//! padded with zero columns, and an odd `k` with a zero row.

#[cfg(target_arch = "x86_64")]
use crate::precision::store_row;
use crate::precision::Share;

/// Columns per packed panel: 4 vectors of 16 f32 accumulators.
pub const NR: usize = 64;
/// Rows per tile: 6 x 4 accumulators leave registers for the 4 weight vectors.
const MR: usize = 6;

/// Whether this CPU runs the bf16 kernel natively (AVX512-BF16).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `v` rounded to the nearest bfloat16 (ties to even), as its 16 bits; a NaN stays a NaN.
pub fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// A `[k, n]` weight matrix rounded to bf16 and packed in panels (module docs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    data: Vec<u32>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedBf16({}x{})", self.k, self.n)
    }
}

impl PackedBf16 {
    /// Packs row-major `w[k][n]`. Panics when `w` is not `k * n` long (a caller's bug).
    pub fn pack(w: &[f32], k: usize, n: usize) -> PackedBf16 {
        assert_eq!(w.len(), k * n, "PackedBf16::pack: weights do not fit {k}x{n}");
        let (pairs, panels) = (k.div_ceil(2), n.div_ceil(NR));
        let mut data = vec![0u32; panels * pairs * NR];
        let at = |r: usize, c: usize| if r < k && c < n { u32::from(to_bf16(w[r * n + c])) } else { 0 };
        for p in 0..panels {
            for q in 0..pairs {
                let words = &mut data[(p * pairs + q) * NR..][..NR];
                for (j, word) in words.iter_mut().enumerate() {
                    let c = p * NR + j;
                    *word = at(2 * q, c) | (at(2 * q + 1, c) << 16);
                }
            }
        }
        PackedBf16 { k, n, data }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// The weight at row `r`, column `c`, as bf16 rounded it.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let word = self.data[((c / NR) * self.pairs() + r / 2) * NR + c % NR];
        from_bf16(if r % 2 == 0 { word as u16 } else { (word >> 16) as u16 })
    }
}

/// Which kernel computes the tiles: the CPU's `VDPBF16PS`, or (tests on CPUs without it) the same
/// sums by two f32 FMAs per pair, in the order Intel's pseudo-code gives the instruction (products
/// of two bf16 values are exact in f32; on AMD Zen 4 the two gave the same bits, while Intel
/// documents the instruction as flushing denormals, so they are compared within f32 rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    Native,
    // Not a production path: the emulation's extra integer work per multiply-add makes it slower
    // than the f32 product, so CPUs without AVX512-BF16 run f32 instead.
    #[cfg_attr(not(test), allow(dead_code))]
    Emulated,
}

/// `y[rows, n] (+)= bf16(x)[rows, k] @ w`, `x` and `y` row-major. `accumulate` adds onto `y`'s
/// values (a bias filled in beforehand). `Err` when a part panicked.
///
/// Panics when the lengths do not fit or the CPU lacks AVX512-BF16 ([`available`]): callers
/// pack weights only where it has it.
pub fn gemm_bf16(share: Share<'_>, (x, w, y): (&[f32], &PackedBf16, &mut [f32]), rows: usize, accumulate: bool) -> Result<(), ()> {
    assert!(available(), "gemm_bf16: the CPU has no AVX512-BF16");
    gemm_with(Kernel::Native, share, (x, w, y), rows, accumulate)
}

pub(crate) fn gemm_with(kernel: Kernel, share: Share<'_>, (x, w, y): (&[f32], &PackedBf16, &mut [f32]), rows: usize, accumulate: bool) -> Result<(), ()> {
    let (k, n) = (w.k, w.n);
    assert!(x.len() == rows * k && y.len() == rows * n, "gemm_bf16: operands do not fit {rows}x{k}x{n}");
    #[cfg(target_arch = "x86_64")]
    assert!(std::arch::is_x86_feature_detected!("avx512f"), "gemm_bf16: the CPU has no AVX-512F");
    #[cfg(not(target_arch = "x86_64"))]
    panic!("gemm_bf16: x86-64 only");
    if rows * n == 0 {
        return Ok(());
    }
    let pairs = w.pairs();
    // A fresh buffer a call: the addon's allocator (mimalloc) hands back the pages the last one
    // freed, without zeroing or faulting them in again.
    let xb = round_rows(x, rows, k, pairs);
    let parts = Parts { x: xb.as_ptr(), w: w.data.as_ptr(), y: y.as_mut_ptr() };
    let panels = w.panels();
    let task = move |p: usize| {
        let parts = parts;
        let cols = NR.min(n - p * NR);
        // SAFETY: panel p of the packed weights (pairs * NR words), every row of the rounded
        // activations (rows * pairs words), and columns p * NR .. + cols of y (rows * n): all
        // inside their buffers, which outlive the call; panels write disjoint columns.
        unsafe {
            panel(kernel, parts.x, parts.w.add(p * pairs * NR), parts.y.add(p * NR), (rows, pairs, n, cols), accumulate);
        }
    };
    share.run(panels, task)
}

/// The three buffers of one product, shared by the threads that compute its panels.
#[derive(Clone, Copy)]
struct Parts {
    x: *const u32,
    w: *const u32,
    y: *mut f32,
}

// SAFETY: x and w are only read; each thread writes its own panels' columns of y.
unsafe impl Send for Parts {}
unsafe impl Sync for Parts {}

/// Rows of `x` as bf16 pairs, `pairs` words a row (an odd `k` padded with zero).
fn round_rows(x: &[f32], rows: usize, k: usize, pairs: usize) -> Vec<u32> {
    let len = rows * pairs;
    let mut out: Vec<u32> = Vec::with_capacity(len);
    let base = out.spare_capacity_mut().as_mut_ptr().cast::<u32>();
    let native = available();
    for (r, src) in x.chunks_exact(k.max(1)).take(rows).enumerate() {
        // SAFETY: row r's words r * pairs .. (r + 1) * pairs lie inside the capacity (len).
        let dst = unsafe { base.add(r * pairs) };
        // SAFETY: the native path only where the CPU has it; dst holds `pairs` words.
        let whole = if native { unsafe { round_row_native(src, dst, pairs) } } else { 0 };
        for q in whole..pairs {
            let lo = u32::from(to_bf16(src[2 * q]));
            let hi = if 2 * q + 1 < k { u32::from(to_bf16(src[2 * q + 1])) } else { 0 };
            // SAFETY: q < pairs, inside row r's words.
            unsafe { dst.add(q).write(lo | (hi << 16)) };
        }
    }
    // SAFETY: every row wrote all of its `pairs` words: native blocks, then the rest one by one
    // (k == 0 gives pairs == 0, so nothing to write).
    unsafe { out.set_len(len) };
    out
}

/// Rounds the leading 32-value blocks of `src` into the words at `dst` with `VCVTNE2PS2BF16`
/// (ties to even, as [`to_bf16`]); returns how many pairs it wrote.
///
/// # Safety
/// The CPU has AVX512-BF16 ([`available`]); `dst` is valid for `pairs` words.
unsafe fn round_row_native(src: &[f32], dst: *mut u32, pairs: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bf16")]
        unsafe fn blocks(src: &[f32], dst: *mut u32, pairs: usize) -> usize {
            use std::arch::x86_64::*;
            let blocks = (src.len() / 32).min(pairs / 16);
            for b in 0..blocks {
                // SAFETY: values 32b .. 32b + 32 of src and words 16b .. 16b + 16 of dst are in
                // bounds (blocks above, the caller's contract).
                unsafe {
                    let lo = _mm512_loadu_ps(src.as_ptr().add(32 * b));
                    let hi = _mm512_loadu_ps(src.as_ptr().add(32 * b + 16));
                    let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                    _mm512_storeu_si512(dst.add(16 * b).cast(), packed);
                }
            }
            blocks * 16
        }
        // SAFETY: the caller's contract.
        unsafe { blocks(src, dst, pairs) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (src, dst, pairs);
        0
    }
}

/// One panel's columns for every row, in tiles of [`MR`] rows.
///
/// # Safety
/// `x` holds `rows * pairs` words, `w` one panel (`pairs * NR` words), `y` reaches `rows` rows
/// of `n` values from its start with `cols` <= NR valid columns each; AVX-512F (and, for
/// `Kernel::Native`, AVX512-BF16) present.
#[cfg(target_arch = "x86_64")]
unsafe fn panel(kernel: Kernel, x: *const u32, w: *const u32, y: *mut f32, (rows, pairs, n, cols): (usize, usize, usize, usize), accumulate: bool) {
    let mut r = 0;
    while r < rows {
        let mr = MR.min(rows - r);
        // SAFETY: rows r .. r + mr of x and y (the caller's contract).
        unsafe {
            let (xr, yr) = (x.add(r * pairs), y.add(r * n));
            let t = Tile { x: xr, pairs, w, y: yr, n, cols, accumulate };
            let tiles = match kernel {
                Kernel::Native => &NATIVE,
                Kernel::Emulated => &EMULATED,
            };
            tiles[mr - 1](t);
        }
        r += mr;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel(_: Kernel, _: *const u32, _: *const u32, _: *mut f32, _: (usize, usize, usize, usize), _: bool) {
    unreachable!("gemm_bf16 runs on x86-64 only (gemm_with checks)")
}

/// The kernels by tile height (index: rows - 1).
#[cfg(target_arch = "x86_64")]
const NATIVE: [unsafe fn(Tile); MR] = [native::<1>, native::<2>, native::<3>, native::<4>, native::<5>, native::<6>];
#[cfg(target_arch = "x86_64")]
const EMULATED: [unsafe fn(Tile); MR] = [emulated::<1>, emulated::<2>, emulated::<3>, emulated::<4>, emulated::<5>, emulated::<6>];

/// One tile: `R` rows of activations (`pairs` words each) by one panel, into `y`.
#[derive(Clone, Copy)]
struct Tile {
    x: *const u32,
    pairs: usize,
    w: *const u32,
    y: *mut f32,
    n: usize,
    cols: usize,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn native<const R: usize>(t: Tile) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's contract (panel); __m512bh and __m512i are both 64 bytes.
    unsafe {
        tile::<R>(t, |acc, a, b| _mm512_dpbf16_ps(acc, std::mem::transmute::<__m512i, __m512bh>(a), std::mem::transmute::<__m512i, __m512bh>(b)))
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn emulated<const R: usize>(t: Tile) {
    use std::arch::x86_64::*;
    let high = _mm512_set1_epi32(0xffff_0000u32 as i32);
    // SAFETY: the caller's contract (panel). The high halves first, as VDPBF16PS adds them.
    unsafe {
        tile::<R>(t, |acc, a, b| {
            let hi = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, high)), _mm512_castsi512_ps(_mm512_and_si512(b, high)), acc);
            _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(a)), _mm512_castsi512_ps(_mm512_slli_epi32::<16>(b)), hi)
        })
    }
}

/// The tile loop, with `dot(acc, pair of a, pairs of w)` as the kernel's multiply-add.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile<const R: usize>(
    t: Tile,
    dot: impl Fn(std::arch::x86_64::__m512, std::arch::x86_64::__m512i, std::arch::x86_64::__m512i) -> std::arch::x86_64::__m512,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): loads stay inside the panel (pairs * NR words) and rows 0..R of x;
    // stores inside rows 0..R, columns 0..cols of y (the caller's contract).
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for q in 0..t.pairs {
            let wq = t.w.add(q * NR);
            let b = [0, 1, 2, 3].map(|v| _mm512_loadu_si512(wq.add(16 * v).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_epi32(*t.x.add(i * t.pairs + q) as i32);
                for v in 0..4 {
                    row[v] = dot(row[v], a, b[v]);
                }
            }
        }
        for (i, &row) in acc.iter().enumerate() {
            store_row(t.y.add(i * t.n), row, t.cols, t.accumulate);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::precision::test_values as values;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to the even 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
    }

    #[test]
    fn packing_keeps_every_weight_rounded() {
        for (k, n) in [(1, 1), (3, 70), (8, 64), (5, 129)] {
            let w = values(k * n, (k * 31 + n) as u32);
            let p = PackedBf16::pack(&w, k, n);
            for r in 0..k {
                for c in 0..n {
                    assert_eq!(p.get(r, c), from_bf16(to_bf16(w[r * n + c])), "{k}x{n} at {r},{c}");
                }
            }
        }
    }

    /// Every tile height, odd k, partial panels, several panels over two threads, with and
    /// without accumulation: equal to f64 sums of the rounded values within f32 rounding, for the
    /// instruction where the CPU has it and for its emulation.
    #[test]
    fn products_match_rounded_reference() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            // Neither kernel can run here; loads asking for bf16 get f32 products instead.
            assert_eq!(crate::precision::Precision::Bfloat16.effective(), crate::precision::Precision::Float32);
            return;
        }
        let kernels: &[Kernel] = if available() { &[Kernel::Native, Kernel::Emulated] } else { &[Kernel::Emulated] };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        for &kernel in kernels {
            for (rows, k, n) in [(1, 1, 1), (7, 33, 17), (13, 64, 64), (6, 384, 200), (2, 5, 130), (25, 96, 257)] {
                for (accumulate, helpers) in [(false, 0), (true, 1)] {
                    let (x, wv) = (values(rows * k, 7), values(k * n, 11));
                    let w = PackedBf16::pack(&wv, k, n);
                    let bias = values(rows * n, 13);
                    let mut y = if accumulate { bias.clone() } else { vec![f32::NAN; rows * n] };
                    let share = Share { pool: Some(&pool), helpers };
                    gemm_with(kernel, share, (&x, &w, &mut y), rows, accumulate).expect("no panic");
                    for r in 0..rows {
                        for c in 0..n {
                            let terms = (0..k).map(|j| f64::from(from_bf16(to_bf16(x[r * k + j]))) * f64::from(w.get(j, c)));
                            let (sum, size) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                            let want = sum + if accumulate { f64::from(bias[r * n + c]) } else { 0.0 };
                            let got = f64::from(y[r * n + c]);
                            assert!((got - want).abs() <= 1e-6 * (size + 1.0), "{kernel:?} {rows}x{k}x{n} acc {accumulate} at {r},{c}: {got} vs {want}");
                        }
                    }
                }
            }
        }
    }
}
