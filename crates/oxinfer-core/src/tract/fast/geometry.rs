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

    /// The input row tap `ky` reads for output row `oy`, if inside the image.
    /// Copies one image `x` (`c x h x w`) into `planes` (`c x hp x wp`), zero-padded: row `py`
    /// column `px` is input `(py - pt, px - pl)`, zero outside it. Every value is written.
    pub fn pad_into(&self, x: &[f32], planes: &mut [f32], hp: usize, wp: usize) {
        let (lo, hi) = (self.pl.min(wp), (self.pl + self.w).min(wp));
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
