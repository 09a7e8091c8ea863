//! Products by constant weights in 8-bit integers, for models loaded with [`Precision::Int8`]:
//! the weights are quantized once, at load, symmetrically per column to `i8`; each call quantizes
//! every row of its activations to `u8` with its own scale and zero point (dynamic quantization,
//! as onnxruntime's `quantize_dynamic` models do per tensor), multiplies with AVX512-VNNI's
//! `VPDPBUSD`, which does four multiply-adds per 32-bit lane where an f32 FMA does one, exactly
//! in `i32`, and scales the sums back to f32.
//!
//! Why: on the 2-core hosts of the benchmarks the bf16 products (crate::bf16) run at the rate of
//! `VDPBF16PS`; `VPDPBUSD` issues at the same rate with twice the multiply-adds, and the weights'
//! bytes halve again. The cost is 8-bit resolution: a value is off by up to half a step, a row's
//! range / 255 for activations and a column's largest magnitude / 127 for weights.
//!
//! `y[r][c] = sx[r] * sw[c] * (sum_j qx[r][j] * qw[j][c] - zx[r] * sum_j qw[j][c])`, where
//! `x[r][j] ~ sx[r] * (qx[r][j] - zx[r])` and `w[j][c] ~ sw[c] * qw[j][c]`.
//!
//! Layout: columns in panels of [`NR`] (64); in a panel, for each quad of rows `4q .. 4q + 4` of
//! the weights, `NR` 32-bit words, word `c` holding the four `i8` of column `c`, row `4q` in its
//! low byte (what `VPDPBUSD` pairs with four consecutive activation bytes). A panel is padded
//! with zero columns, and `k` with zero rows to a multiple of four.

#[cfg(target_arch = "x86_64")]
use crate::precision::store_row;
use crate::precision::Share;

/// Columns per packed panel: 4 vectors of 16 i32 accumulators.
pub const NR: usize = 64;
/// Rows per tile: 6 x 4 accumulators leave registers for the 4 weight vectors.
const MR: usize = 6;

/// Whether this CPU runs the int8 kernel (AVX512-VNNI, with AVX512BW for the quantization).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw") && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A `[k, n]` weight matrix quantized per column and packed in panels (module docs).
#[derive(Clone, PartialEq)]
pub struct PackedI8 {
    k: usize,
    n: usize,
    data: Vec<u32>,
    /// Per column of every panel (padding: 0): the quantized values' step.
    scales: Vec<f32>,
    /// Per column of every panel (padding: 0): the sum of its quantized values.
    sums: Vec<i32>,
}

impl Eq for PackedI8 {}

impl std::hash::Hash for PackedI8 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.k, self.n, &self.data, &self.sums).hash(state);
        self.scales.iter().for_each(|s| s.to_bits().hash(state));
    }
}

impl std::fmt::Debug for PackedI8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedI8({}x{})", self.k, self.n)
    }
}

impl PackedI8 {
    /// Quantizes and packs row-major `w[k][n]`. Panics when `w` is not `k * n` long (a caller's
    /// bug). A column of zeros gets step 0; a non-finite weight makes its column's step NaN, so
    /// the column's outputs are NaN as an f32 product's would be.
    pub fn pack(w: &[f32], k: usize, n: usize) -> PackedI8 {
        assert_eq!(w.len(), k * n, "PackedI8::pack: weights do not fit {k}x{n}");
        let (quads, panels) = (k.div_ceil(4), n.div_ceil(NR));
        let mut scales = vec![0f32; panels * NR];
        let mut quantized = vec![0i8; k * n];
        for c in 0..n {
            let column = (0..k).map(|r| w[r * n + c]);
            let finite = column.clone().all(f32::is_finite);
            let largest = column.clone().fold(0f32, |m, v| m.max(v.abs()));
            let step = if !finite { f32::NAN } else { largest / 127.0 };
            scales[c] = step;
            if finite && largest > 0.0 {
                for r in 0..k {
                    // |w / step| <= 127: the cast saturates nothing.
                    quantized[r * n + c] = (w[r * n + c] / step).round_ties_even() as i8;
                }
            }
        }
        let at = |r: usize, c: usize| {
            if r < k && c < n {
                u32::from(quantized[r * n + c] as u8)
            } else {
                0
            }
        };
        let mut data = vec![0u32; panels * quads * NR];
        let mut sums = vec![0i32; panels * NR];
        for p in 0..panels {
            for q in 0..quads {
                let words = &mut data[(p * quads + q) * NR..][..NR];
                for (j, word) in words.iter_mut().enumerate() {
                    let c = p * NR + j;
                    *word = (0..4).fold(0, |acc, b| acc | (at(4 * q + b, c) << (8 * b)));
                }
            }
            for (j, sum) in sums[p * NR..][..NR].iter_mut().enumerate() {
                let c = p * NR + j;
                *sum = if c < n { (0..k).map(|r| i32::from(quantized[r * n + c])).sum() } else { 0 };
            }
        }
        PackedI8 { k, n, data, scales, sums }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    fn quads(&self) -> usize {
        self.k.div_ceil(4)
    }

    fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    /// The weight at row `r`, column `c`, as quantization left it.
    pub fn get(&self, r: usize, c: usize) -> f32 {
        let word = self.data[((c / NR) * self.quads() + r / 4) * NR + c % NR];
        f32::from((word >> (8 * (r % 4))) as u8 as i8) * self.scales[c]
    }
}

/// One row of activations quantized: `x[j] ~ scale * (q[j] - zero)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScale {
    pub scale: f32,
    pub zero: i32,
}

/// The step and zero point of a row whose values span `lo ..= hi`: the range widened to hold 0
/// (so zero is exact, as padding and ReLU outputs need), 255 steps over it.
fn row_scale(lo: f32, hi: f32, finite: bool) -> RowScale {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    if !finite {
        return RowScale { scale: f32::NAN, zero: 0 };
    }
    let scale = (hi - lo) / 255.0;
    if scale == 0.0 || !scale.is_finite() {
        // All zeros; or a range past f32's (values near f32::MAX): NaN, not a wrong number.
        return RowScale { scale: if scale == 0.0 { 0.0 } else { f32::NAN }, zero: 0 };
    }
    RowScale { scale, zero: ((-lo / scale).round_ties_even() as i32).clamp(0, 255) }
}

/// `x[j]` quantized with `s`, as [`quantize_rows`] does it.
pub fn quantize(v: f32, s: RowScale) -> u8 {
    if s.scale == 0.0 || s.scale.is_nan() {
        return s.zero as u8;
    }
    quantize_by(v, 1.0 / s.scale, s.zero)
}

/// `y[rows, n] (+)= dequantized(qx @ qw)`: `x` quantized per row to u8, `w` as packed. `x` and
/// `y` row-major; `accumulate` adds onto `y`'s values (a bias filled in beforehand). `Err` when a
/// part panicked.
///
/// Panics when the lengths do not fit or the CPU lacks AVX512-VNNI ([`available`]): callers
/// pack weights only where it has it.
pub fn gemm_i8(share: Share<'_>, (x, w, y): (&[f32], &PackedI8, &mut [f32]), rows: usize, accumulate: bool) -> Result<(), ()> {
    let (k, n) = (w.k, w.n);
    assert!(x.len() == rows * k && y.len() == rows * n, "gemm_i8: operands do not fit {rows}x{k}x{n}");
    assert!(available(), "gemm_i8: the CPU has no AVX512-VNNI");
    if rows * n == 0 {
        return Ok(());
    }
    let quads = w.quads();
    let (xq, row_scales) = quantize_rows(x, rows, k, quads);
    let parts = Parts { x: xq.as_ptr(), rows: row_scales.as_ptr(), w, y: y.as_mut_ptr() };
    let panels = w.panels();
    let task = move |p: usize| {
        let parts = parts;
        let cols = NR.min(n - p * NR);
        // SAFETY: panel p of the packed weights (quads * NR words, NR scales and sums), every
        // row of the quantized activations (rows * quads words, rows scales), and columns
        // p * NR .. + cols of y (rows * n): all inside their buffers, which outlive the call;
        // panels write disjoint columns.
        unsafe {
            let w = &*parts.w;
            let at = Panel { w: w.data.as_ptr().add(p * quads * NR), scales: w.scales.as_ptr().add(p * NR), sums: w.sums.as_ptr().add(p * NR) };
            panel(parts.x, parts.rows, at, parts.y.add(p * NR), (rows, quads, n, cols), accumulate);
        }
    };
    share.run(panels, task)
}

/// The buffers of one product, shared by the threads that compute its panels.
#[derive(Clone, Copy)]
struct Parts {
    x: *const u32,
    rows: *const RowScale,
    w: *const PackedI8,
    y: *mut f32,
}

// SAFETY: x, rows and w are only read; each thread writes its own panels' columns of y.
unsafe impl Send for Parts {}
unsafe impl Sync for Parts {}

/// One panel of the packed weights.
#[derive(Clone, Copy)]
struct Panel {
    w: *const u32,
    scales: *const f32,
    sums: *const i32,
}

/// Rows of `x` quantized to u8, `quads` words a row (`k` padded with zeros), and each row's
/// scale and zero point. The buffer is not zeroed first: each row writes its own padding.
pub(crate) fn quantize_rows(x: &[f32], rows: usize, k: usize, quads: usize) -> (Vec<u32>, Vec<RowScale>) {
    assert!(x.len() == rows * k && 4 * quads >= k, "quantize_rows: {} values for {rows} rows of {k} in {quads} quads", x.len());
    let len = rows * quads;
    let mut out: Vec<u32> = Vec::with_capacity(len);
    let base = out.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let src = &x[r * k..(r + 1) * k];
        // SAFETY: available() was checked by the caller (gemm_i8); row r's 4 * quads bytes lie
        // inside the capacity (len words), and k <= 4 * quads.
        unsafe {
            let dst = base.add(4 * r * quads);
            scales.push(quantize_row(src, dst));
            std::ptr::write_bytes(dst.add(k), 0, 4 * quads - k);
        }
    }
    // SAFETY: every row wrote its k values and its padding: all len words.
    unsafe { out.set_len(len) };
    (out, scales)
}

/// # Safety
/// The CPU has AVX512F and AVX512BW; `bytes` is valid for writes of `src.len()` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row(src: &[f32], bytes: *mut u8) -> RowScale {
    use std::arch::x86_64::*;
    let blocks = src.len() / 16;
    // SAFETY (whole body): loads of 16 values at 16b < blocks * 16 <= src.len(); stores of 16
    // bytes at 16b, inside the src.len() bytes at `bytes`.
    unsafe {
        let (mut lo, mut hi, mut nan) = (_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps());
        for b in 0..blocks {
            let v = _mm512_loadu_ps(src.as_ptr().add(16 * b));
            lo = _mm512_min_ps(lo, v);
            hi = _mm512_max_ps(hi, v);
            // v * 0 is 0 for finite v, NaN for an infinity or NaN: sums keep it.
            nan = _mm512_add_ps(nan, _mm512_mul_ps(v, _mm512_setzero_ps()));
        }
        let tail = &src[16 * blocks..];
        let lo = tail.iter().fold(_mm512_reduce_min_ps(lo), |m, &v| m.min(v));
        let hi = tail.iter().fold(_mm512_reduce_max_ps(hi), |m, &v| m.max(v));
        let finite = _mm512_reduce_add_ps(nan) == 0.0 && tail.iter().all(|v| v.is_finite());
        let s = row_scale(lo, hi, finite);
        if s.scale == 0.0 || s.scale.is_nan() {
            std::ptr::write_bytes(bytes, s.zero as u8, src.len());
            return s;
        }
        let (inv, zero) = (_mm512_set1_ps(1.0 / s.scale), _mm512_set1_epi32(s.zero));
        let (floor, ceil) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
        for b in 0..blocks {
            let v = _mm512_loadu_ps(src.as_ptr().add(16 * b));
            // Rounds to nearest even (the default MXCSR mode), as `quantize` does.
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero);
            let q = _mm512_min_epi32(_mm512_max_epi32(q, floor), ceil);
            _mm_storeu_si128(bytes.add(16 * b).cast(), _mm512_cvtepi32_epi8(q));
        }
        for (j, &v) in tail.iter().enumerate() {
            *bytes.add(16 * blocks + j) = quantize_by(v, 1.0 / s.scale, s.zero);
        }
        s
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn quantize_row(_: &[f32], _: *mut u8) -> RowScale {
    unreachable!("gemm_i8 runs on x86-64 only (available)")
}

/// `v` by the inverse of a step, as the vector loop rounds it.
fn quantize_by(v: f32, inv: f32, zero: i32) -> u8 {
    ((v * inv).round_ties_even() as i32 + zero).clamp(0, 255) as u8
}

/// One panel's columns for every row, in tiles of [`MR`] rows.
///
/// # Safety
/// `x` holds `rows * quads` words and `scales` `rows` entries, `at` one panel, `y` reaches `rows`
/// rows of `n` values from its start with `cols` <= NR valid columns each; AVX512-VNNI present.
#[cfg(target_arch = "x86_64")]
unsafe fn panel(x: *const u32, scales: *const RowScale, at: Panel, y: *mut f32, (rows, quads, n, cols): (usize, usize, usize, usize), accumulate: bool) {
    let mut r = 0;
    while r < rows {
        let mr = MR.min(rows - r);
        // SAFETY: rows r .. r + mr of x, scales and y (the caller's contract).
        unsafe {
            let t = Tile { x: x.add(r * quads), scales: scales.add(r), quads, at, y: y.add(r * n), n, cols, accumulate };
            TILES[mr - 1](t);
        }
        r += mr;
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn panel(_: *const u32, _: *const RowScale, _: Panel, _: *mut f32, _: (usize, usize, usize, usize), _: bool) {
    unreachable!("gemm_i8 runs on x86-64 only (available)")
}

/// The kernels by tile height (index: rows - 1).
#[cfg(target_arch = "x86_64")]
const TILES: [unsafe fn(Tile); MR] = [tile::<1>, tile::<2>, tile::<3>, tile::<4>, tile::<5>, tile::<6>];

/// One tile: `R` rows of quantized activations (`quads` words each) by one panel, into `y`.
#[derive(Clone, Copy)]
struct Tile {
    x: *const u32,
    scales: *const RowScale,
    quads: usize,
    at: Panel,
    y: *mut f32,
    n: usize,
    cols: usize,
    accumulate: bool,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile<const R: usize>(t: Tile) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): loads stay inside the panel (quads * NR words, NR scales and sums)
    // and rows 0..R of x and scales; stores inside rows 0..R, columns 0..cols of y (panel's
    // contract).
    unsafe {
        let mut acc = [[_mm512_setzero_si512(); 4]; R];
        for q in 0..t.quads {
            let wq = t.at.w.add(q * NR);
            let b = [0, 1, 2, 3].map(|v| _mm512_loadu_si512(wq.add(16 * v).cast()));
            for (i, row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_epi32(*t.x.add(i * t.quads + q) as i32);
                for v in 0..4 {
                    row[v] = _mm512_dpbusd_epi32(row[v], a, b[v]);
                }
            }
        }
        let sums = [0, 1, 2, 3].map(|v| _mm512_loadu_si512(t.at.sums.add(16 * v).cast()));
        let steps = [0, 1, 2, 3].map(|v| _mm512_loadu_ps(t.at.scales.add(16 * v)));
        for (i, row) in acc.iter().enumerate() {
            let s = *t.scales.add(i);
            let (zero, step) = (_mm512_set1_epi32(s.zero), _mm512_set1_ps(s.scale));
            // Exact in i32: |sum| <= 255 * 128 * k and |zero * column sum| <= 255 * 127 * k.
            let values = [0, 1, 2, 3].map(|v| {
                let exact = _mm512_sub_epi32(row[v], _mm512_mullo_epi32(zero, sums[v]));
                _mm512_mul_ps(_mm512_cvtepi32_ps(exact), _mm512_mul_ps(step, steps[v]))
            });
            store_row(t.y.add(i * t.n), values, t.cols, t.accumulate);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::precision::test_values as values;

    #[test]
    fn packing_keeps_every_weight_within_half_a_step() {
        for (k, n) in [(1, 1), (3, 70), (8, 64), (5, 129)] {
            let w = values(k * n, (k * 31 + n) as u32);
            let p = PackedI8::pack(&w, k, n);
            for c in 0..n {
                let largest = (0..k).map(|r| w[r * n + c].abs()).fold(0.0, f32::max);
                for r in 0..k {
                    let err = (p.get(r, c) - w[r * n + c]).abs();
                    assert!(err <= largest / 254.0 * 1.0001, "{k}x{n} at {r},{c}: {} vs {}", p.get(r, c), w[r * n + c]);
                }
            }
        }
    }

    #[test]
    fn row_scales_hold_zero_exactly_and_mark_non_finite_rows() {
        let s = row_scale(-1.0, 3.0, true);
        assert_eq!(quantize(0.0, s) as i32, s.zero);
        assert_eq!(quantize(3.0, s), 255);
        assert_eq!(quantize(-1.0, s), 0);
        // Positive rows (ReLU outputs) start at zero.
        assert_eq!(row_scale(2.0, 5.0, true).zero, 0);
        assert_eq!(row_scale(0.0, 0.0, true), RowScale { scale: 0.0, zero: 0 });
        assert!(row_scale(-1.0, 1.0, false).scale.is_nan());
    }

    /// Every tile height, k not a multiple of 4, partial panels, several panels over two
    /// threads, with and without accumulation: the vector quantization equals the scalar one,
    /// and the products equal f64 sums of the dequantized values within f32 rounding.
    #[test]
    fn products_match_quantized_reference() {
        if !available() {
            // The kernel cannot run here; loads asking for int8 get f32 products instead.
            assert_eq!(crate::precision::Precision::Int8.effective(), crate::precision::Precision::Float32);
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        for (rows, k, n) in [(1, 1, 1), (7, 33, 17), (13, 64, 64), (6, 384, 200), (2, 5, 130), (25, 97, 257)] {
            for (accumulate, helpers) in [(false, 0), (true, 1)] {
                let (mut x, wv) = (values(rows * k, 7), values(k * n, 11));
                // A row of zeros and a row of positives (zero point 0).
                x[..k].fill(0.0);
                if rows > 1 {
                    x[k..2 * k].iter_mut().for_each(|v| *v = v.abs());
                }
                let w = PackedI8::pack(&wv, k, n);
                let (xq, scales) = quantize_rows(&x, rows, k, k.div_ceil(4));
                let bias = values(rows * n, 13);
                let mut y = if accumulate { bias.clone() } else { vec![f32::NAN; rows * n] };
                gemm_i8(Share { pool: Some(&pool), helpers }, (&x, &w, &mut y), rows, accumulate).expect("no panic");
                for r in 0..rows {
                    let s = scales[r];
                    let bytes: Vec<u8> = xq[r * k.div_ceil(4)..][..k.div_ceil(4)].iter().flat_map(|w| w.to_le_bytes()).collect();
                    for j in 0..k {
                        assert_eq!(bytes[j], quantize(x[r * k + j], s), "{rows}x{k}: x[{r}][{j}] = {}", x[r * k + j]);
                    }
                    // The padding (the product reads it) is zero, though the buffer is not zeroed first.
                    assert!(bytes[k..].iter().all(|&b| b == 0), "{rows}x{k}: row {r}'s padding {:?}", &bytes[k..]);
                    for c in 0..n {
                        let terms = (0..k).map(|j| f64::from(s.scale) * f64::from(i32::from(bytes[j]) - s.zero) * f64::from(w.get(j, c)));
                        let (sum, size) = terms.fold((0.0, 0.0), |(s, a), t| (s + t, a + t.abs()));
                        let want = sum + if accumulate { f64::from(bias[r * n + c]) } else { 0.0 };
                        let got = f64::from(y[r * n + c]);
                        assert!((got - want).abs() <= 1e-6 * (size + 1.0), "{rows}x{k}x{n} acc {accumulate} at {r},{c}: {got} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn non_finite_activations_give_nan_rows() {
        if !available() {
            return;
        }
        let (k, n) = (20, 3);
        let mut x = values(2 * k, 5);
        x[3] = f32::INFINITY;
        let w = PackedI8::pack(&values(k * n, 9), k, n);
        let mut y = vec![0.0; 2 * n];
        gemm_i8(Share { pool: None, helpers: 0 }, (&x, &w, &mut y), 2, false).expect("no panic");
        assert!(y[..n].iter().all(|v| v.is_nan()), "{y:?}");
        assert!(y[n..].iter().all(|v| v.is_finite()), "{y:?}");
    }
}
