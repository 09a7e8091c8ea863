//! Direct convolution in AVX2 registers over phase-split planes: any stride and dilation, for
//! convolutions of few input values per output (a CNN's first layers: an RGB 7x7 stride-2 stem
//! is 147).
//!
//! Why: there, im2col copies as many values as the product multiplies, and gemm packs that copy
//! again: a ResNet stem (3 -> 16 channels, 64x64) spent most of its ~100 µs moving its 600 KB
//! column matrix. Here each image is copied once into padded planes split by the column
//! stride's phase (phased.rs), where every tap's values for consecutive outputs of a row are
//! contiguous; each tile (4 output channels by 2 vectors of 8 pixels: 8 accumulators) sums
//! weight x pixel-vector products straight from them.
//!
//! Only CPUs with AVX2 and FMA take this path ([`available`]); the rest keep im2col + gemm,
//! which the tests compare it with (through tract's own convolution).

use super::direct::{blocks_of, pack_by_blocks};
use super::geometry::Geometry;
use super::phased::Phased;

/// Lanes of one vector.
const LANES: usize = 8;

/// Output channels per tile: 4, by 2 vectors of pixels: 8 accumulators, 2 input vectors and a
/// broadcast weight of the 16 registers (with 3 vectors, 12 accumulators, the compiler spilled
/// one and the tile ran at the latency of its round trips to the stack).
const OB: usize = 4;

/// Input values per output (channels x taps) up to which this kernel is used; beyond, gemm's
/// packed product does better than the tiles' weight broadcasts.
pub const MAX_TAPS: usize = 160;

/// Whether the CPU runs this kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a convolution of `c` input channels and `kernel` taps takes this path here.
pub fn applies(c: usize, kernel: &[usize]) -> bool {
    c * kernel.iter().product::<usize>() <= MAX_TAPS && available()
}

/// The output channel blocks of the tiles, `(first, count)`: whole blocks of [`OB`], then
/// halves down to one for the remainder.
fn blocks(o: usize) -> impl Iterator<Item = (usize, usize)> {
    blocks_of(o, OB)
}

/// `[O, C, kh, kw]` weights rearranged for the tiles: per channel block, tap by tap, the
/// block's channels side by side.
pub fn pack(weights: &[f32], o: usize) -> Vec<f32> {
    pack_by_blocks(weights, o, OB)
}

/// One image's convolution by this kernel.
pub struct Strided<'a> {
    pub g: &'a Geometry,
    /// The `[O, C, kh, kw]` weights as [`pack`] lays them out.
    pub weights: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Strided<'_> {
    fn phased(&self) -> Phased {
        Phased::of(self.g)
    }

    /// Values of the scratch: the phase-split planes, then one vector of slack, because a
    /// row's last vector may read up to 7 values past the plane (lanes never stored).
    pub fn scratch_len(&self) -> usize {
        self.g.c * self.phased().plane_len() + LANES
    }

    /// `y` (`o x oh x ow`) = the convolution of image `x` (`c x h x w`), `scratch` of
    /// [`Strided::scratch_len`]. Call only where [`available`] holds.
    pub fn run(&self, x: &[f32], scratch: &mut [f32], y: &mut [f32]) {
        let g = self.g;
        let o = self.weights.len() / (g.c * g.kh * g.kw).max(1);
        let ph = self.phased();
        let plane = ph.plane_len();
        assert!(
            x.len() == g.c * g.h * g.w
                && scratch.len() == self.scratch_len()
                && y.len() == o * g.oh * g.ow
                && self.bias.is_none_or(|b| b.len() == o),
            "strided direct convolution: buffers do not fit the geometry"
        );
        let (planes, slack) = scratch.split_at_mut(g.c * plane);
        slack.fill(0.0);
        for (src, dst) in x.chunks_exact(g.h * g.w).zip(planes.chunks_exact_mut(plane)) {
            ph.fill(g, src, dst);
        }
        // Each tap's offset in the planes from an output vector's origin.
        let mut shifts = Vec::with_capacity(g.c * g.kh * g.kw);
        for c in 0..g.c {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    shifts.push(c * plane + ky * g.dh * ph.row_len() + ph.start(kx * g.dw));
                }
            }
        }
        let layout = Layout { ow: g.ow, oh: g.oh, row_step: g.sh * ph.row_len() };
        #[cfg(target_arch = "x86_64")]
        {
            assert!(available(), "the strided direct convolution needs AVX2 and FMA");
            // SAFETY: the CPU has AVX2 and FMA (asserted); the buffers fit the geometry
            // (asserted above), so every load stays inside `scratch` (slack included) and every
            // store inside `y`.
            unsafe { avx2::conv(self, o, &layout, &shifts, scratch, y) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (o, layout, shifts);
            unreachable!("the strided direct convolution needs AVX2 and FMA");
        }
    }
}

/// Where the tiles' vectors lie: output rows of `ow`, `oh` of them, and a row's origin in a
/// padded plane `row_step` values after the last's.
struct Layout {
    ow: usize,
    oh: usize,
    row_step: usize,
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{LANES, Layout, OB, Strided, blocks};

    /// Vectors of pixels per tile (see `OB`).
    const VB: usize = 2;

    /// # Safety
    /// AVX2 and FMA are available; the buffers fit (see `Strided::run`).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv(d: &Strided, o: usize, l: &Layout, shifts: &[usize], planes: &[f32], y: &mut [f32]) {
        let vectors = l.oh * l.ow.div_ceil(LANES);
        let taps = shifts.len();
        for (o0, ob) in blocks(o) {
            let w = &d.weights[o0 * taps..(o0 + ob) * taps];
            let mut v0 = 0;
            while v0 < vectors {
                let vb = [VB, 1].into_iter().find(|&b| b <= vectors - v0).unwrap_or(1);
                // SAFETY: as conv's; o0 + ob <= o and v0 + vb <= vectors.
                unsafe {
                    match (ob, vb) {
                        (OB, VB) => tile::<OB, VB>(d, l, shifts, w, o0, v0, planes, y),
                        (OB, _) => tile::<OB, 1>(d, l, shifts, w, o0, v0, planes, y),
                        (2, VB) => tile::<2, VB>(d, l, shifts, w, o0, v0, planes, y),
                        (2, _) => tile::<2, 1>(d, l, shifts, w, o0, v0, planes, y),
                        (_, VB) => tile::<1, VB>(d, l, shifts, w, o0, v0, planes, y),
                        (_, _) => tile::<1, 1>(d, l, shifts, w, o0, v0, planes, y),
                    }
                }
                v0 += vb;
            }
        }
    }

    /// Output channels `o0..o0 + B` at pixel vectors `v0..v0 + V` (vector `v` is output row
    /// `v / per_row`, columns from `8 * (v % per_row)`; a row's last vector may be partial).
    ///
    /// # Safety
    /// As `conv`'s.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const B: usize, const V: usize>(
        d: &Strided,
        l: &Layout,
        shifts: &[usize],
        w: &[f32],
        o0: usize,
        v0: usize,
        planes: &[f32],
        y: &mut [f32],
    ) {
        let per_row = l.ow.div_ceil(LANES);
        let out_plane = l.oh * l.ow;
        let mut at = [0usize; V]; // the vector's first pixel's origin in a padded plane
        let mut out = [0usize; V]; // and its place in an output plane
        let mut n = [0usize; V]; // its pixels inside the row
        for j in 0..V {
            let (oy, ox) = ((v0 + j) / per_row, (v0 + j) % per_row * LANES);
            at[j] = oy * l.row_step + ox;
            out[j] = oy * l.ow + ox;
            n[j] = (l.ow - ox).min(LANES);
        }
        let mut acc = [[_mm256_setzero_ps(); V]; B];
        if let Some(bias) = d.bias {
            for (i, row) in acc.iter_mut().enumerate() {
                *row = [_mm256_set1_ps(bias[o0 + i]); V];
            }
        }
        debug_assert_eq!(w.len(), B * shifts.len());
        let x: [*const f32; V] = std::array::from_fn(|j| planes[at[j]..].as_ptr());
        for (&shift, wt) in shifts.iter().zip(w.chunks_exact(B)) {
            let mut xv = [_mm256_setzero_ps(); V];
            for j in 0..V {
                // SAFETY: at[j] + shift + 7 < planes.len() (the slack; see scratch_len).
                xv[j] = unsafe { _mm256_loadu_ps(x[j].add(shift)) };
            }
            for (row, &wv) in acc.iter_mut().zip(wt) {
                let wv = _mm256_set1_ps(wv);
                for j in 0..V {
                    row[j] = _mm256_fmadd_ps(wv, xv[j], row[j]);
                }
            }
        }
        let zero = _mm256_setzero_ps();
        for (i, row) in acc.iter().enumerate() {
            for j in 0..V {
                let v = if d.relu { _mm256_max_ps(row[j], zero) } else { row[j] };
                let dst = &mut y[(o0 + i) * out_plane + out[j]..][..n[j]];
                if n[j] == LANES {
                    // SAFETY: dst holds LANES values.
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) };
                } else {
                    let mut lanes = [0f32; LANES];
                    // SAFETY: lanes holds LANES values.
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
                    dst.copy_from_slice(&lanes[..n[j]]);
                }
            }
        }
    }
}
