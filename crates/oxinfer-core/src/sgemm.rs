//! One safe entry to the `gemm` crate for the f32 matmuls oxinfer does itself (tract's fast
//! convolution and matmul, candle's linear layers): `c = a @ b`, or `c += a @ b`, on row-major
//! contiguous slices. `gemm` picks its AVX-512 or AVX2 kernels at run time.

use crate::linger;

/// `c[m, n] (+)= a[m, k] @ b[k, n]`, all row-major and contiguous. `accumulate` adds onto what
/// `c` holds (a bias filled in beforehand); without it, `c`'s values are never read, so it may
/// be uninitialized memory of the right length. `threads` > 1 splits the product over the
/// current Rayon pool.
///
/// Panics when the lengths do not fit `m`, `k`, `n`: callers check shapes first (a mismatch
/// is a bug, not bad input).
pub fn sgemm(a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize), accumulate: bool, threads: usize) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n, "sgemm: operands do not fit {m}x{k}x{n}");
    if m * n == 0 {
        return;
    }
    if k == 0 {
        // An empty sum: leave gemm out of a case it need not handle.
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    // SAFETY: c is m x n, a is m x k and b is k x n, row-major and contiguous (asserted above).
    unsafe {
        sgemm_strided(
            Strided::row_major(c.as_mut_ptr(), n),
            Strided::row_major(a.as_ptr(), k),
            Strided::row_major(b.as_ptr(), n),
            (m, k, n),
            accumulate,
            1.0,
            threads,
        )
    }
}

/// A product's two operands and its output, shared by the threads that compute parts of it.
#[derive(Clone, Copy)]
pub struct Operands {
    pub a: *const f32,
    pub b: *const f32,
    pub y: *mut f32,
}

// SAFETY: the operands are only read; each user has every thread write its own part of `y`
// (tract's FastBatchedMatMul: one batch index's block; sgemm_by_columns: one chunk of columns).
unsafe impl Send for Operands {}
unsafe impl Sync for Operands {}

/// Columns per chunk of [`sgemm_by_columns`]: whole vectors.
const COLUMN_STEP: usize = 16;

/// Columns of gemm's widest AVX-512 f32 tile (4 vectors of 16).
const TILE: usize = 64;

/// Columns per chunk of [`sgemm_by_columns`]: about two chunks per thread, in whole tiles
/// where `n` allows, and a number of chunks the threads share evenly. Chunks of 96 columns
/// (384 / 4) ran gemm's half-height tile on a third of each; its share of a batch-1 encoder
/// run was 16% (perf).
fn chunk_width(n: usize, threads: usize) -> usize {
    if n % TILE == 0 && n >= TILE * threads {
        let tiles = n / TILE;
        let mut per = (tiles / (2 * threads)).max(1);
        while per > 1 && tiles.div_ceil(per) % threads != 0 {
            per -= 1;
        }
        return per * TILE;
    }
    n.div_ceil(2 * threads).next_multiple_of(COLUMN_STEP).min(n).max(1)
}

/// [`sgemm`] with the columns cut into two chunks per thread of `pool` (`None`: the pool the
/// caller runs on), shared by the calling thread and the pool's helpers ([`linger::share`]).
/// `Err` when a chunk panicked.
///
/// Why not gemm's own threads: a batch-1 encoder run hands ~40 products to the pool, and between
/// them the pool threads fell asleep, so each product paid their wake-up (tens of µs here): 16-21
/// ms per batch-1 MiniLM-shaped tract run on two threads this way, 11-14 ms with helpers that
/// linger between products and a caller that works instead of waiting (profile example,
/// interleaved). Columns, not rows, so that each thread packs only its part of the weights.
///
/// Panics when the lengths do not fit, as [`sgemm`] does.
pub fn sgemm_by_columns(
    pool: Option<&rayon::ThreadPool>,
    (x, w, y): (&[f32], &[f32], &mut [f32]),
    (rows, k, n): (usize, usize, usize),
    accumulate: bool,
) -> Result<(), ()> {
    assert!(x.len() == rows * k && w.len() == k * n && y.len() == rows * n, "sgemm_by_columns: operands do not fit {rows}x{k}x{n}");
    if rows * n == 0 || k == 0 {
        sgemm(x, w, y, (rows, k, n), accumulate, 1);
        return Ok(());
    }
    let threads = pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads()).max(1);
    let width = chunk_width(n, threads);
    let chunks = n.div_ceil(width);
    let ops = Operands { a: x.as_ptr(), b: w.as_ptr(), y: y.as_mut_ptr() };
    linger::share(pool, threads - 1, chunks, move |i| {
        let ops = ops;
        let (c0, cw) = (i * width, width.min(n - i * width));
        let (kk, nn) = (k as isize, n as isize);
        // SAFETY: columns c0 .. c0 + cw <= n of y and w, all rows of x (lengths asserted above);
        // chunks write disjoint columns, and share returns only after every chunk has run.
        unsafe {
            sgemm_strided(
                Strided { ptr: ops.y.add(c0), row: nn, col: 1 },
                Strided { ptr: ops.a, row: kk, col: 1 },
                Strided { ptr: ops.b.add(c0), row: nn, col: 1 },
                (rows, k, cw),
                accumulate,
                1.0,
                1,
            )
        }
    })
}

/// Where a matrix lies: its first element, and the steps (in elements) from one row and from
/// one column to the next.
#[derive(Debug, Clone, Copy)]
pub struct Strided<P> {
    pub ptr: P,
    pub row: isize,
    pub col: isize,
}

impl<P> Strided<P> {
    fn row_major(ptr: P, columns: usize) -> Strided<P> {
        Strided { ptr, row: columns as isize, col: 1 }
    }
}

/// [`sgemm`] over strided matrices: `c (+)= scale * (a @ b)` with `c` m x n, `a` m x k, `b`
/// k x n (gemm applies `scale` to its accumulators, so a scaled product costs no extra pass).
///
/// # Safety
/// Every element the strides reach (`ptr + i * row + j * col` for i, j inside the matrix)
/// must be valid, `c`'s for writes (and for reads when accumulating), and `c` must not
/// overlap `a` or `b`, nor reach one element twice.
pub unsafe fn sgemm_strided(
    c: Strided<*mut f32>,
    a: Strided<*const f32>,
    b: Strided<*const f32>,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    scale: f32,
    threads: usize,
) {
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    tune();
    // SAFETY: the caller's contract; gemm reads c only when accumulating (read_dst).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.ptr,
            c.col,
            c.row,
            accumulate, // c = 1 * c + scale * (a @ b)
            a.ptr,
            a.col,
            a.row,
            b.ptr,
            b.col,
            b.row,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Rows (of the output, in gemm's transposed view: our columns are its rows) up to which a
/// single-threaded product reads the weights in place instead of packing them first: 32 x
/// gemm's 6-column tile = 192, where gemm's default (8) packs from 48. A batch-1 encoder's
/// products have 128 rows, and each read its weight block once per product, so packing it was
/// a copy for one use: `gemm`'s packing took 12% of a batch-1 MiniLM-shaped run on two threads
/// (perf), and the run went 16.3 -> 15.9 ms (median of 6 interleaved runs each, profile
/// example; batch 32 unchanged).
const LHS_PACKING_THRESHOLD: usize = 32;

/// Sets gemm's process-wide packing threshold once, before the first product.
fn tune() {
    static TUNED: std::sync::Once = std::sync::Once::new();
    TUNED.call_once(|| gemm::set_lhs_packing_threshold_single_thread(LHS_PACKING_THRESHOLD));
}

#[cfg(test)]
mod tests {
    /// Whole tiles, shared evenly where the tiles allow; whole vectors otherwise.
    #[test]
    fn chunks_are_whole_tiles_shared_evenly() {
        for (n, threads, want) in [(384, 2, 64), (1536, 2, 384), (1152, 2, 192), (384, 4, 64), (100, 2, 32), (48, 2, 16)] {
            assert_eq!(super::chunk_width(n, threads), want, "n {n}, threads {threads}");
        }
    }
}
