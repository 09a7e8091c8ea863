//! One safe entry to the `gemm` crate for the f32 matmuls oxinfer does itself (tract's fast
//! convolution and matmul, candle's linear layers): `c = a @ b`, or `c += a @ b`, on row-major
//! contiguous slices. `gemm` picks its AVX-512 or AVX2 kernels at run time.

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
