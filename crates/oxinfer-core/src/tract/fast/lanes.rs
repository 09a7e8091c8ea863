//! Up to eight rows of values interleaved into one run of eight-lane pixels (`dst[i * 8 + l] =
//! rows[l][i]`) and back: the layout change around the depthwise kernel, which works on eight
//! channels at a time. On AVX2 each eight-by-eight tile is one register transpose; the portable
//! loops are the reference and do the tails.

/// Values per pixel: eight f32, one AVX2 register.
pub const LANES: usize = 8;

/// `values`, one row of `per` values for each of `channels` channels, regrouped by blocks of
/// `LANES` channels as `[blocks][per][LANES]`: value `j` of channel `c` at
/// `((c / LANES) * per + j) * LANES + c % LANES`, zero in the lanes past the last channel.
pub fn by_blocks(values: &[f32], per: usize) -> Vec<f32> {
    if per == 0 {
        return Vec::new();
    }
    let channels = values.len() / per;
    let mut out = vec![0f32; channels.div_ceil(LANES) * per * LANES];
    for (c, row) in values.chunks_exact(per).enumerate() {
        let (b, l) = (c / LANES, c % LANES);
        for (j, &v) in row.iter().enumerate() {
            out[(b * per + j) * LANES + l] = v;
        }
    }
    out
}

/// `dst[i * LANES + l] = rows[l][i]` for `i < n`, 0 in the lanes past the last row.
pub fn interleave(rows: &[&[f32]], n: usize, dst: &mut [f32]) {
    assert!(rows.len() <= LANES && rows.iter().all(|r| r.len() >= n) && dst.len() >= n * LANES, "interleave: bad sizes");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is there; the sizes were checked above.
        let done = unsafe { avx2::interleave(rows, n, dst) };
        return interleave_portable(rows, done, n, dst);
    }
    interleave_portable(rows, 0, n, dst)
}

/// `rows[l][i] = src[i * LANES + l]` for `i < n` and each row given.
pub fn deinterleave(src: &[f32], n: usize, rows: &mut [&mut [f32]]) {
    assert!(rows.len() <= LANES && rows.iter().all(|r| r.len() >= n) && src.len() >= n * LANES, "deinterleave: bad sizes");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is there; the sizes were checked above.
        let done = unsafe { avx2::deinterleave(src, n, rows) };
        return deinterleave_portable(src, done, n, rows);
    }
    deinterleave_portable(src, 0, n, rows)
}

/// [`interleave`] for pixels `from..n`, value by value.
fn interleave_portable(rows: &[&[f32]], from: usize, n: usize, dst: &mut [f32]) {
    for i in from..n {
        let px = &mut dst[i * LANES..(i + 1) * LANES];
        for (l, v) in px.iter_mut().enumerate() {
            *v = rows.get(l).map_or(0.0, |r| r[i]);
        }
    }
}

/// [`deinterleave`] for pixels `from..n`, value by value.
fn deinterleave_portable(src: &[f32], from: usize, n: usize, rows: &mut [&mut [f32]]) {
    for (l, row) in rows.iter_mut().enumerate() {
        for i in from..n {
            row[i] = src[i * LANES + l];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::LANES;

    /// Rows of eight registers to columns: `out[j]` lane `l` = `r[l]` lane `j`.
    #[inline(always)]
    unsafe fn transpose(r: [__m256; 8]) -> [__m256; 8] {
        // SAFETY (whole body): register-only AVX intrinsics; the caller has AVX2.
        unsafe {
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ]
        }
    }

    /// [`super::interleave`], whole tiles of eight pixels then the rest: returns `n`.
    ///
    /// # Safety
    /// AVX2; at most `LANES` rows of at least `n` values, `dst` at least `n * LANES`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn interleave(rows: &[&[f32]], n: usize, dst: &mut [f32]) -> usize {
        let mut i = 0;
        while i + LANES <= n {
            let mut r = [_mm256_setzero_ps(); 8];
            for (v, row) in r.iter_mut().zip(rows) {
                // SAFETY: i + 8 <= n <= row.len().
                *v = unsafe { _mm256_loadu_ps(row.as_ptr().add(i)) };
            }
            // SAFETY: AVX2 is enabled here.
            let cols = unsafe { transpose(r) };
            for (j, v) in cols.into_iter().enumerate() {
                // SAFETY: (i + j + 1) * LANES <= n * LANES <= dst.len().
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add((i + j) * LANES), v) };
            }
            i += LANES;
        }
        // The last pixels, fewer than eight, through a zero-padded tile on the stack.
        let rest = n - i;
        if rest > 0 {
            let mut tile = [[0f32; LANES]; LANES];
            for (t, row) in tile.iter_mut().zip(rows) {
                t[..rest].copy_from_slice(&row[i..n]);
            }
            let mut r = [_mm256_setzero_ps(); 8];
            for (v, t) in r.iter_mut().zip(&tile) {
                // SAFETY: a tile row holds 8 values.
                *v = unsafe { _mm256_loadu_ps(t.as_ptr()) };
            }
            // SAFETY: AVX2 is enabled here.
            let cols = unsafe { transpose(r) };
            for (j, v) in cols.into_iter().take(rest).enumerate() {
                // SAFETY: (i + j + 1) * LANES <= n * LANES <= dst.len().
                unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add((i + j) * LANES), v) };
            }
        }
        n
    }

    /// [`super::deinterleave`], whole tiles of eight pixels then the rest: returns `n`.
    ///
    /// # Safety
    /// AVX2; `src` at least `n * LANES`, at most `LANES` rows of at least `n` values.
    #[target_feature(enable = "avx2")]
    pub unsafe fn deinterleave(src: &[f32], n: usize, rows: &mut [&mut [f32]]) -> usize {
        let mut i = 0;
        while i + LANES <= n {
            let mut r = [_mm256_setzero_ps(); 8];
            for (j, v) in r.iter_mut().enumerate() {
                // SAFETY: (i + j + 1) * LANES <= n * LANES <= src.len().
                *v = unsafe { _mm256_loadu_ps(src.as_ptr().add((i + j) * LANES)) };
            }
            // SAFETY: AVX2 is enabled here.
            let lanes = unsafe { transpose(r) };
            for (row, v) in rows.iter_mut().zip(lanes) {
                // SAFETY: i + 8 <= n <= row.len().
                unsafe { _mm256_storeu_ps(row.as_mut_ptr().add(i), v) };
            }
            i += LANES;
        }
        let rest = n - i;
        if rest > 0 {
            let mut r = [_mm256_setzero_ps(); 8];
            for (j, v) in r.iter_mut().take(rest).enumerate() {
                // SAFETY: (i + j + 1) * LANES <= n * LANES <= src.len().
                *v = unsafe { _mm256_loadu_ps(src.as_ptr().add((i + j) * LANES)) };
            }
            // SAFETY: AVX2 is enabled here.
            let lanes = unsafe { transpose(r) };
            for (row, v) in rows.iter_mut().zip(lanes) {
                let mut tile = [0f32; LANES];
                // SAFETY: the tile holds 8 values.
                unsafe { _mm256_storeu_ps(tile.as_mut_ptr(), v) };
                row[i..n].copy_from_slice(&tile[..rest]);
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both directions against the portable loops, for every row count and lengths around the
    /// tile size.
    #[test]
    fn interleave_and_back_equal_the_portable_loops() {
        for rows in 1..=LANES {
            for n in [0, 1, 7, 8, 9, 16, 23] {
                let planes: Vec<Vec<f32>> = (0..rows).map(|l| (0..n).map(|i| (l * 100 + i) as f32).collect()).collect();
                let refs: Vec<&[f32]> = planes.iter().map(|p| p.as_slice()).collect();
                let (mut got, mut want) = (vec![f32::NAN; n * LANES], vec![f32::NAN; n * LANES]);
                interleave(&refs, n, &mut got);
                interleave_portable(&refs, 0, n, &mut want);
                assert_eq!(got, want, "{rows} rows of {n}");
                for i in 0..n {
                    assert!(got[i * LANES + rows..(i + 1) * LANES].iter().all(|&v| v == 0.0), "lanes past the rows are 0");
                }
                let mut back: Vec<Vec<f32>> = vec![vec![f32::NAN; n]; rows];
                let mut outs: Vec<&mut [f32]> = back.iter_mut().map(|p| p.as_mut_slice()).collect();
                deinterleave(&got, n, &mut outs);
                assert_eq!(back, planes, "{rows} rows of {n} back");
            }
        }
    }
}
