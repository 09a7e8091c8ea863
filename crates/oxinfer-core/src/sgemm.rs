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
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: c is m x n, a is m x k and b is k x n, row-major and contiguous (asserted above);
    // gemm reads and writes only inside them, and reads c only when accumulating.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate, // c = 1 * c + 1 * (a @ b)
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
