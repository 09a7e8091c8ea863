//! A plane zero-padded and split by the stride's phase, for kernels that read a window's taps
//! as contiguous runs: padded column `x` is stored at `(x % stride) * len + x / stride` of its
//! row, so that the outputs `ox, ox + 1, ...` of tap column `kx` read the consecutive values
//! from [`Phased::start`]`(kx * dilation) + ox`, whatever the stride.

use super::geometry::Geometry;
use crate::simd::simd_kernel;

/// The layout of one padded, phase-split plane: `rows` rows of `stride` phases of `len` values.
#[derive(Debug, Clone, Copy)]
pub struct Phased {
    pub rows: usize,
    pub len: usize,
    stride: usize,
}

impl Phased {
    /// The rows and columns that the windows of `g` read, from the padded origin.
    pub fn of(g: &Geometry) -> Phased {
        let rows = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
        let cols = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
        Phased { rows, len: cols.div_ceil(g.sw), stride: g.sw }
    }

    pub fn row_len(&self) -> usize {
        self.len * self.stride
    }

    pub fn plane_len(&self) -> usize {
        self.rows * self.row_len()
    }

    /// Where, in its row, the run of padded column `at` (and every stride-th one after) begins.
    pub fn start(&self, at: usize) -> usize {
        (at % self.stride) * self.len + at / self.stride
    }

    /// Copies one plane `x` (`h x w` of `g`) into `padded` (`plane_len` values), zero where a
    /// window reaches past the image.
    pub fn fill(&self, g: &Geometry, x: &[f32], padded: &mut [f32]) {
        fill_phased(self, g, x, padded, 0.0)
    }

    /// [`Phased::fill`] with `pad` where a window reaches past the image (a max pool's -inf).
    pub fn fill_with(&self, g: &Geometry, x: &[f32], padded: &mut [f32], pad: f32) {
        fill_phased(self, g, x, padded, pad)
    }
}

simd_kernel! {
    avx2;
    /// [`Phased::fill_with`].
    fn fill_phased(ph: &Phased, g: &Geometry, x: &[f32], padded: &mut [f32], pad: f32) {
        let row_len = ph.row_len();
        for phase in 0..g.sw {
            // Padded column j * stride + phase is input column j * stride + phase - pl: inside
            // the image for j in lo..hi.
            let lo = g.pl.saturating_sub(phase).div_ceil(g.sw).min(ph.len);
            let hi = (g.w + g.pl).saturating_sub(phase).div_ceil(g.sw).clamp(lo, ph.len);
            let first = (lo * g.sw + phase).saturating_sub(g.pl);
            for (py, row) in padded.chunks_exact_mut(row_len).enumerate() {
                let dst = &mut row[phase * ph.len..(phase + 1) * ph.len];
                let src = py.checked_sub(g.pt).filter(|&iy| iy < g.h).map(|iy| &x[iy * g.w..(iy + 1) * g.w]);
                let Some(src) = src else {
                    dst.fill(pad);
                    continue;
                };
                dst[..lo].fill(pad);
                dst[hi..].fill(pad);
                let (dst, src) = (&mut dst[lo..hi], &src[first.min(src.len())..]);
                every_nth(src, g.sw, dst);
            }
        }
    }
}

/// `y[i] = x[i * stride]` for every `i` of `y` (`x` must hold them): a copy for stride 1, a
/// deinterleave for stride 2 (with a constant step, it vectorizes). Inlined into the callers'
/// AVX2 kernels.
#[inline(always)]
pub(super) fn every_nth(x: &[f32], stride: usize, y: &mut [f32]) {
    match stride {
        1 => y.copy_from_slice(&x[..y.len()]),
        2 => {
            let pairs = y.len().min(x.len() / 2);
            for (d, s) in y[..pairs].iter_mut().zip(x.chunks_exact(2)) {
                *d = s[0];
            }
            // The last value read may sit alone at the end.
            for (d, s) in y[pairs..].iter_mut().zip(x[2 * pairs..].iter().step_by(2)) {
                *d = *s;
            }
        }
        _ => {
            for (d, s) in y.iter_mut().zip(x.iter().step_by(stride)) {
                *d = *s;
            }
        }
    }
}
