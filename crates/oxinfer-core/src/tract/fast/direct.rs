//! Direct convolution, stride 1 and no dilation, for AVX-512: no im2col.
//!
//! Why: with few input channels (a CNN's first layers) im2col copies as many values as the
//! matmul then multiplies (k = channels x taps is 27 for an RGB 3x3), so the copy and gemm's
//! packing of it cost as much as the products. Here the image is copied once into a padded
//! buffer (a few KB, L1-resident), and each output tile — 8 output channels by 3 vectors of 16
//! pixels, 24 accumulators in registers — sums weight x shifted-row products straight from it.
//! On the tests' cnn.onnx (profile example, one thread) the two convolutions went from ~27 to
//! ~19 µs per image (first layer 10 -> 5.6 µs, second 17.5 -> 13 µs); larger layers, one
//! thread, one image: 16->32 channels at 64x64 264 -> 177 µs, 64->64 at 56x56 2.2 -> 1.2 ms,
//! 32->32 at 32x32 and 128->128 at 28x28 even (150 vs 160 µs, 1.28 vs 1.21 ms).
//!
//! Only x86-64 CPUs with AVX-512F take this path ([`available`]); others keep im2col + gemm.

use super::geometry::Geometry;

/// One image's direct convolution: the caller's geometry, already checked to be stride 1 and
/// dilation 1.
pub struct Direct<'a> {
    /// The image's geometry: stride and dilation 1 (the caller checked).
    pub g: &'a Geometry,
    /// The `[O, C, kh, kw]` weights as [`pack`] lays them out.
    pub weights: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

/// Whether the CPU runs this kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Lanes of one vector.
pub(super) const LANES: usize = 16;

/// Output channels per tile: 8, as many as fit the registers (see `avx512`).
const OB: usize = 8;

/// The output channel blocks of the tiles, `(first, count)`: whole blocks of [`OB`], then
/// halves down to one for the remainder.
pub(super) fn blocks(o: usize) -> impl Iterator<Item = (usize, usize)> {
    blocks_of(o, OB)
}

/// Output channel blocks `(first, count)` of `widest` (a power of two), then halves down to one.
pub(super) fn blocks_of(o: usize, widest: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut o0 = 0;
    std::iter::from_fn(move || {
        let b = std::iter::successors(Some(widest), |&b| (b > 1).then_some(b / 2)).find(|&b| b <= o - o0)?;
        o0 += b;
        Some((o0 - b, b))
    })
}

/// `[O, C, kh, kw]` weights rearranged for the tiles: per channel block, tap by tap, the
/// block's channels side by side, so a tile reads its weights from one advancing pointer.
pub fn pack(weights: &[f32], o: usize) -> Vec<f32> {
    pack_by_blocks(weights, o, OB)
}

/// [`pack`] for tiles of up to `widest` output channels ([`blocks_of`]).
pub(super) fn pack_by_blocks(weights: &[f32], o: usize, widest: usize) -> Vec<f32> {
    let per_o = weights.len() / o.max(1);
    let mut packed = Vec::with_capacity(weights.len());
    for (o0, b) in blocks_of(o, widest) {
        for t in 0..per_o {
            packed.extend((o0..o0 + b).map(|i| weights[i * per_o + t]));
        }
    }
    packed
}

impl Direct<'_> {
    /// Rows and columns of the padded image: exactly what the outputs read.
    fn padded_dims(&self) -> (usize, usize) {
        (self.g.oh + self.g.kh - 1, self.g.ow + self.g.kw - 1)
    }

    /// Values of the padded buffer: the planes, then one vector of slack, because a tile's last
    /// vector may read up to 15 values past its row (those lanes are never stored).
    pub fn padded_len(&self) -> usize {
        let (hp, wp) = self.padded_dims();
        self.g.c * hp * wp + LANES
    }

    /// Fills `padded` (of [`Direct::padded_len`]) from one image `x` (`c x h x w`).
    fn pad(&self, x: &[f32], padded: &mut [f32]) {
        let (hp, wp) = self.padded_dims();
        let (planes, slack) = padded.split_at_mut(self.g.c * hp * wp);
        slack.fill(0.0);
        self.g.pad_into(x, planes, hp, wp);
    }

    /// `y` (`o x oh x ow`) = the convolution of image `x` (`c x h x w`), `padded` its scratch.
    /// `o` is the weights' first dimension. Call only where [`available`] holds.
    pub fn run(&self, x: &[f32], padded: &mut [f32], y: &mut [f32]) {
        let o = self.weights.len() / (self.g.c * self.g.kh * self.g.kw).max(1);
        assert!(
            x.len() == self.g.c * self.g.h * self.g.w
                && padded.len() == self.padded_len()
                && y.len() == o * self.g.oh * self.g.ow
                && self.bias.is_none_or(|b| b.len() == o),
            "direct convolution: buffers do not fit the geometry"
        );
        self.pad(x, padded);
        #[cfg(target_arch = "x86_64")]
        {
            assert!(available(), "direct convolution needs AVX-512F");
            // SAFETY: the CPU has AVX-512F (asserted), and the sizes were checked above: every
            // load stays inside `padded` (slack included) and every store inside `y`.
            unsafe { avx512::conv(self, o, padded, y) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("direct convolution needs AVX-512F");
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Direct, LANES, blocks};

    /// Vectors of pixels per tile: with 8 output channels, 24 accumulators, plus the three
    /// input vectors and a broadcast weight, fit the 32 registers.
    const VB: usize = 3;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn conv(d: &Direct, o: usize, padded: &[f32], y: &mut [f32]) {
        let per_row = d.g.ow.div_ceil(LANES);
        let vectors = d.g.oh * per_row;
        let per_o = d.g.c * d.g.kh * d.g.kw;
        for (o0, ob) in blocks(o) {
            // This block's packed weights start where the blocks before it end.
            let w = &d.weights[o0 * per_o..(o0 + ob) * per_o];
            let mut v0 = 0;
            while v0 < vectors {
                let vb = [VB, 2, 1].into_iter().find(|&b| b <= vectors - v0).unwrap_or(1);
                // SAFETY: as `conv`'s: the caller checked the buffers; o0 + ob <= o and
                // v0 + vb <= vectors.
                unsafe {
                    match (ob, vb) {
                        (8, 3) => tile::<8, 3>(d, w, o0, v0, padded, y),
                        (8, 2) => tile::<8, 2>(d, w, o0, v0, padded, y),
                        (8, _) => tile::<8, 1>(d, w, o0, v0, padded, y),
                        (4, 3) => tile::<4, 3>(d, w, o0, v0, padded, y),
                        (4, 2) => tile::<4, 2>(d, w, o0, v0, padded, y),
                        (4, _) => tile::<4, 1>(d, w, o0, v0, padded, y),
                        (2, 3) => tile::<2, 3>(d, w, o0, v0, padded, y),
                        (2, 2) => tile::<2, 2>(d, w, o0, v0, padded, y),
                        (2, _) => tile::<2, 1>(d, w, o0, v0, padded, y),
                        (_, 3) => tile::<1, 3>(d, w, o0, v0, padded, y),
                        (_, 2) => tile::<1, 2>(d, w, o0, v0, padded, y),
                        (_, _) => tile::<1, 1>(d, w, o0, v0, padded, y),
                    }
                }
                v0 += vb;
            }
        }
    }

    /// Output channels `o0..o0 + B` at pixel vectors `v0..v0 + V` (vector `v` is output row
    /// `v / per_row`, columns from `16 * (v % per_row)`; a row's last vector is masked).
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const B: usize, const V: usize>(
        d: &Direct,
        w: &[f32],
        o0: usize,
        v0: usize,
        padded: &[f32],
        y: &mut [f32],
    ) {
        let per_row = d.g.ow.div_ceil(LANES);
        let (hp, row_len) = d.padded_dims();
        let (plane, out_plane, taps) = (hp * row_len, d.g.oh * d.g.ow, d.g.kh * d.g.kw);
        let mut at = [0usize; V]; // offset of the vector's first pixel in a padded plane
        let mut out = [0usize; V]; // and in an output plane
        let mut mask = [0u16; V];
        for j in 0..V {
            let (oy, ox) = ((v0 + j) / per_row, (v0 + j) % per_row * LANES);
            at[j] = oy * row_len + ox;
            out[j] = oy * d.g.ow + ox;
            let n = (d.g.ow - ox).min(LANES);
            mask[j] = if n == LANES { u16::MAX } else { (1u16 << n) - 1 };
        }
        let mut acc = [[_mm512_setzero_ps(); V]; B];
        if let Some(bias) = d.bias {
            for (i, row) in acc.iter_mut().enumerate() {
                *row = [_mm512_set1_ps(bias[o0 + i]); V];
            }
        }
        debug_assert_eq!(w.len(), B * d.g.c * taps);
        // One pointer per vector of the tile, and one into the block's weights, which advances
        // B values per tap.
        let x: [*const f32; V] = std::array::from_fn(|j| padded[at[j]..].as_ptr());
        let mut wp = w.as_ptr();
        for c in 0..d.g.c {
            for ky in 0..d.g.kh {
                for kx in 0..d.g.kw {
                    let shift = c * plane + ky * row_len + kx;
                    let mut xv = [_mm512_setzero_ps(); V];
                    for j in 0..V {
                        // SAFETY: at[j] + shift + 15 < padded.len() (the slack; see padded_len).
                        xv[j] = unsafe { _mm512_loadu_ps(x[j].add(shift)) };
                    }
                    for (i, row) in acc.iter_mut().enumerate() {
                        // SAFETY: wp + i stays inside w: B values per tap, c * taps taps.
                        let wv = _mm512_set1_ps(unsafe { *wp.add(i) });
                        for j in 0..V {
                            row[j] = _mm512_fmadd_ps(wv, xv[j], row[j]);
                        }
                    }
                    // SAFETY: one past the last tap's values at most (inside or at w's end).
                    wp = unsafe { wp.add(B) };
                }
            }
        }
        let zero = _mm512_setzero_ps();
        let y = y.as_mut_ptr();
        for (i, row) in acc.iter().enumerate() {
            for j in 0..V {
                let v = if d.relu { _mm512_max_ps(row[j], zero) } else { row[j] };
                // SAFETY: the masked lanes are this output row's pixels inside y.
                unsafe { _mm512_mask_storeu_ps(y.add((o0 + i) * out_plane + out[j]), mask[j], v) };
            }
        }
    }
}
