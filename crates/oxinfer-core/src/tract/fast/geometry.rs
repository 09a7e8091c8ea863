//! Where a pooling or convolution window lands, for one concrete input shape: the plain numbers
//! the kernels loop over, 1-D treated as 2-D with a height of 1.

use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PoolSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Images (1 when the format has no batch axis).
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Padding before the first row and column.
    pub pt: usize,
    pub pl: usize,
}

/// Whether the kernels handle this spec: channels first, one or two spatial axes.
pub fn supported(spec: &PoolSpec) -> bool {
    !spec.data_format.c_is_last() && matches!(spec.rank(), 1 | 2)
}

impl Geometry {
    pub fn new(spec: &PoolSpec, input_shape: &[usize]) -> TractResult<Geometry> {
        ensure!(supported(spec), "fast kernels: unsupported pool spec {spec:?}");
        let shape = spec.data_format.shape(input_shape)?;
        let hw = shape.hw_dims();
        let padding = spec.computed_padding(hw);
        let (kernel, strides, dilations) = (&spec.kernel_shape, spec.strides(), spec.dilations());
        // A 1-D op is a 2-D one over a single row.
        let at = |v: &[usize], axis: usize, one_d: usize| if hw.len() == 1 { one_d } else { v[axis] };
        let last = hw.len() - 1;
        Ok(Geometry {
            n: shape.n().copied().unwrap_or(1),
            c: *shape.c(),
            h: at(hw, 0, 1),
            w: hw[last],
            oh: if hw.len() == 1 { 1 } else { padding[0].convoluted },
            ow: padding[last].convoluted,
            kh: at(kernel, 0, 1),
            kw: kernel[last],
            sh: at(&strides, 0, 1),
            sw: strides[last],
            dh: at(&dilations, 0, 1),
            dw: dilations[last],
            pt: if hw.len() == 1 { 0 } else { padding[0].pad_before },
            pl: padding[last].pad_before,
        })
    }

    /// Copies one image `x` (`c x h x w`) into `planes` (`c x hp x wp`), zero-padded: row `py`
    /// column `px` is input `(py - pt, px - pl)`, zero outside it. Every value is written.
    pub fn pad_into(&self, x: &[f32], planes: &mut [f32], hp: usize, wp: usize) {
        assert!(x.len() >= self.c * self.h * self.w && planes.len() >= self.c * hp * wp, "pad_into: buffers too small");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is there; the lengths were checked above.
            unsafe { self.pad_avx512(x, planes, hp, wp) };
            return;
        }
        self.pad_scalar(x, planes, hp, wp);
    }

    /// [`Geometry::pad_into`] value by value (CPUs without AVX-512F).
    fn pad_scalar(&self, x: &[f32], planes: &mut [f32], hp: usize, wp: usize) {
        let (lo, hi) = self.padded_columns(wp);
        for (src, dst) in x.chunks_exact(self.h * self.w).zip(planes.chunks_exact_mut(hp * wp)) {
            for (py, row) in dst.chunks_exact_mut(wp).enumerate() {
                let Some(iy) = py.checked_sub(self.pt).filter(|&iy| iy < self.h) else {
                    row.fill(0.0);
                    continue;
                };
                row[..lo].fill(0.0);
                row[hi..].fill(0.0);
                if lo < hi {
                    row[lo..hi].copy_from_slice(&src[iy * self.w..iy * self.w + hi - lo]);
                }
            }
        }
    }

    /// The columns `lo..hi` of a padded row of `wp` that hold input values.
    fn padded_columns(&self, wp: usize) -> (usize, usize) {
        (self.pl.min(wp), (self.pl + self.w).min(wp))
    }

    /// [`Geometry::pad_into`] by masked vectors: the rows are a few dozen values, for which the
    /// scalar version's three fill/copy calls per row took ~10% of a small CNN's run.
    ///
    /// # Safety
    /// AVX-512F must be available; `x` and `planes` as `pad_into` checks.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn pad_avx512(&self, x: &[f32], planes: &mut [f32], hp: usize, wp: usize) {
        use std::arch::x86_64::*;
        const L: usize = 16;
        let mask = |lo: usize, hi: usize| -> __mmask16 {
            let upto = |n: usize| if n >= L { u16::MAX } else { (1u16 << n) - 1 };
            upto(hi) & !upto(lo)
        };
        let (lo, hi) = self.padded_columns(wp);
        let (xp, pp) = (x.as_ptr(), planes.as_mut_ptr());
        // Rows inside the image: padded rows pt .. pt + h (fewer where hp cuts them off).
        let (r0, r1) = (self.pt.min(hp), (self.pt + self.h).min(hp));
        for ic in 0..self.c {
            // Column chunk by column chunk, so that the masks are worked out once per plane
            // chunk, not per row: the rows are short and the mask arithmetic was most of the work.
            for j0 in (0..wp).step_by(L) {
                let store = mask(0, wp - j0);
                // Lanes j0 + l in lo..hi read input column j0 + l - pl; the base may lie before
                // the row (only masked lanes are read).
                let load = mask(lo.saturating_sub(j0), hi.saturating_sub(j0));
                let at = |py: usize| pp.wrapping_add(ic * hp * wp + py * wp + j0);
                for py in (0..r0).chain(r1..hp) {
                    // SAFETY: the stored lanes are columns j0.. < wp of padded row py.
                    unsafe { _mm512_mask_storeu_ps(at(py), store, _mm512_setzero_ps()) };
                }
                let src = xp.wrapping_add(ic * self.h * self.w + j0).wrapping_sub(self.pl);
                for py in r0..r1 {
                    // SAFETY: the loaded lanes are columns 0..w of input row py - pt < h; the
                    // stored ones columns j0.. < wp of padded row py.
                    unsafe {
                        let v = _mm512_maskz_loadu_ps(load, src.wrapping_add((py - self.pt) * self.w));
                        _mm512_mask_storeu_ps(at(py), store, v);
                    }
                }
            }
        }
    }

    /// The input row tap `ky` reads for output row `oy`, if inside the image.
    #[inline]
    pub fn row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky * self.dh).checked_sub(self.pt).filter(|&iy| iy < self.h)
    }

    /// For tap `kx`: the output columns `lo..hi` whose input column is inside the image, and the
    /// input column of `lo`. Column `ox` reads input `first + (ox - lo) * sw`.
    #[inline]
    pub fn columns(&self, kx: usize) -> (usize, usize, usize) {
        span(kx * self.dw, self.sw, self.pl, self.w, self.ow)
    }

    /// For tap `ky`: the output rows `lo..hi` whose input row is inside the image, and the input
    /// row of `lo` (as [`Geometry::columns`]).
    #[inline]
    pub fn rows(&self, ky: usize) -> (usize, usize, usize) {
        span(ky * self.dh, self.sh, self.pt, self.h, self.oh)
    }
}

/// Along one axis, for a tap at `offset` (its index times the dilation): the outputs `lo..hi`
/// whose input `o * stride + offset - pad` is inside `0..input`, and the input index of `lo`;
/// `(0, 0, 0)` when none is.
#[inline]
fn span(offset: usize, stride: usize, pad: usize, input: usize, outputs: usize) -> (usize, usize, usize) {
    let lo = pad.saturating_sub(offset).div_ceil(stride);
    let hi = if input + pad > offset { ((input + pad - offset - 1) / stride + 1).min(outputs) } else { 0 };
    if lo >= hi {
        return (0, 0, 0);
    }
    (lo, hi, lo * stride + offset - pad)
}

#[cfg(test)]
mod tests {
    use super::Geometry;

    /// The vector padding writes exactly what the scalar one does, over every value, for
    /// paddings on each side, rows longer than a vector, and planes cut off by the padded size.
    #[test]
    fn vector_padding_matches_scalar() {
        #[cfg(target_arch = "x86_64")]
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512F: only the scalar padding runs here");
            return;
        }
        for (c, h, w, pt, pl, hp, wp) in [(3, 5, 7, 1, 1, 7, 9), (2, 4, 33, 2, 0, 9, 36), (1, 3, 20, 0, 3, 3, 18), (4, 6, 16, 1, 1, 8, 18)] {
            let g = Geometry { n: 1, c, h, w, oh: 0, ow: 0, kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pt, pl };
            let x: Vec<f32> = (0..c * h * w).map(|i| i as f32 + 1.0).collect();
            let (mut a, mut b) = (vec![f32::NAN; c * hp * wp], vec![f32::NAN; c * hp * wp]);
            g.pad_scalar(&x, &mut a, hp, wp);
            g.pad_into(&x, &mut b, hp, wp);
            assert!(a.iter().all(|v| v.is_finite()), "scalar padding left values unwritten");
            assert_eq!(a, b, "{c}x{h}x{w} padded ({pt}, {pl}) into {hp}x{wp}");
        }
    }
}
