//! Winograd F(2x2, 3x3) convolution: 3x3 kernels, stride 1, no dilation, on AVX-512 CPUs.
//!
//! Why: a 3x3 convolution costs 9 multiply-adds per output and input channel; Winograd's
//! minimal filtering computes each 2x2 block of outputs from a 4x4 block of inputs with 16
//! products per channel pair instead of 36, 2.25x fewer, at the price of cheap additions
//! before and after. Per image: the padded input's 4x4 tiles are transformed (`V = Bᵀ d B`),
//! then for each of the 16 tile positions one small matrix product sums over input channels
//! (`M = U V`, `U = G g Gᵀ` the weights transformed once at load), then each output tile is
//! `Aᵀ M A`, plus the bias, then the ReLU if one follows. The 2x2 variant keeps the transforms'
//! rounding errors small in f32 (tested against tract's convolution within 1e-5 of the output's
//! scale).
//!
//! Layouts: `V` is `[16][c][tp]`, `tp` the tiles rounded up to whole vectors; `U` is `[16]` x
//! the channel blocks of direct.rs's `blocks`, each `[c][ob]`. `M` is computed and consumed
//! one chunk at a time (one channel block by [`CHUNK`] tile vectors, all 16 positions:
//! `[16][ob][CHUNK * 16]`, 16 KB): a whole image's `M` (128 KB for the test CNN's second layer)
//! went out to L2 between the products and the output transform, whose loads then cost more
//! than its arithmetic.

use super::direct::{LANES, blocks};
use super::geometry::Geometry;

/// Values per transformed tile (4x4).
const POSITIONS: usize = 16;

/// Tile vectors per chunk of `M`: two, the products' register tile (8 channels x 2 vectors).
const CHUNK: usize = 2;

/// Values of one position's plane in a chunk of `M`: `[ob][CHUNK * 16]`, skewed.
const CHUNK_PLANE: usize = 8 * CHUNK * LANES + LANES;

/// Input channels from which this path beats the direct convolution: the transforms cost per
/// channel what the products save only with enough channels to sum over (the test CNN,
/// 8-image batches on one thread: 16 -> 32 channels at 16x16 190 -> 160-190 µs; 3 -> 16 at
/// 32x32 83 -> 106 µs, slower).
const MIN_CHANNELS: usize = 8;

/// Whether a convolution with this kernel and input channel count may take this path (the
/// geometry is checked per run by [`fits`]): weights are transformed at load only for these.
pub fn applies(kernel: &[usize], c: usize) -> bool {
    kernel == [3, 3] && c >= MIN_CHANNELS
}

/// Whether a convolution of this geometry and output channel count takes this path: 3x3,
/// stride and dilation 1, at least [`MIN_CHANNELS`] input channels, a scratch of at most
/// ~1 MB per image (larger layers would stream through L2: they stay with the direct
/// convolution).
pub fn fits(g: &Geometry, o: usize) -> bool {
    let square = (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) == (3, 3, 1, 1, 1, 1);
    square && g.c >= MIN_CHANNELS && g.oh >= 2 && g.ow >= 2 && POSITIONS * (g.c + o) * tiles(g).2 <= 256 << 10
}

/// The distance between two positions' planes of `V` or `M` of `len` values: off a multiple of
/// 4 KB, because the output transform reads all 16 at once and same-set strides thrash L1.
fn skewed(len: usize) -> usize {
    len + LANES
}

/// Tile rows, tile columns, and tiles rounded up to whole vectors.
fn tiles(g: &Geometry) -> (usize, usize, usize) {
    let (th, tw) = (g.oh.div_ceil(2), g.ow.div_ceil(2));
    (th, tw, (th * tw).div_ceil(LANES) * LANES)
}

/// Lanes `0..n` of a vector mask set.
fn mask(n: usize) -> u16 {
    if n >= LANES { u16::MAX } else { (1u16 << n) - 1 }
}

/// Lanes `lo..hi` set.
fn lanes(lo: usize, hi: usize) -> u16 {
    mask(hi) & !mask(lo)
}

/// The runs of one tile row inside the 16 tiles `t0 .. t0 + n` (tiles numbered row by row,
/// `tw` per row): `(ty, tx, first lane, end lane)`. Vectors cover whole chunks of tiles, not
/// tile rows, so that narrow rows (8 tiles for a 16-pixel row) fill them.
fn segments(t0: usize, n: usize, tw: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut t = t0;
    std::iter::from_fn(move || {
        (t < t0 + n).then(|| {
            let (ty, tx) = (t / tw, t % tw);
            let end = (t0 + n).min((ty + 1) * tw);
            let seg = (ty, tx, t - t0, end - t0);
            t = end;
            seg
        })
    })
}

/// One masked store of the output transform: the pixel pairs of half `half` of a tile vector
/// (tiles 0..8 or 8..16) in output row `a` of the tiles (0 or 1) go to `offset` in the output
/// plane, lanes `mask` (the offset may point before the plane: only masked lanes are written).
#[derive(Clone, Copy, Default)]
struct Store {
    offset: isize,
    mask: u16,
    a: u8,
    half: u8,
}

/// The stores of one tile vector (16 tiles from `t0`): at most 2 per segment of a tile row in
/// it and per tile output row, so 4 x 16.
struct Stores {
    all: [Store; 4 * LANES],
    len: usize,
}

impl Stores {
    fn new() -> Stores {
        Stores { all: [Store::default(); 4 * LANES], len: 0 }
    }

    /// Becomes the stores of tiles `t0..t0 + 16` (fewer at the end) of a `th x tw` tiling of
    /// an `oh x ow` plane (in place: a run refills it per tile vector).
    fn fill(&mut self, t0: usize, (th, tw): (usize, usize), (oh, ow): (usize, usize)) {
        let s = self;
        s.len = 0;
        let tiles = th * tw;
        if t0 >= tiles {
            return;
        }
        for (ty, tx, l0, l1) in segments(t0, (tiles - t0).min(LANES), tw) {
            for a in 0..2 {
                let oy = 2 * ty + a;
                if oy >= oh {
                    continue;
                }
                // Pixel lanes 2 l0 .. 2 l0 + cols of the 32 pair lanes go to columns 2 tx.. of row oy.
                let cols = (ow - 2 * tx).min(2 * (l1 - l0));
                for half in 0..2 {
                    let (from, to) = ((2 * l0).max(16 * half), (2 * l0 + cols).min(16 * (half + 1)));
                    if from < to {
                        let offset = (oy * ow + 2 * tx + 16 * half) as isize - (2 * l0) as isize;
                        s.all[s.len] = Store { offset, mask: lanes(from - 16 * half, to - 16 * half), a: a as u8, half: half as u8 };
                        s.len += 1;
                    }
                }
            }
        }
    }

    fn as_slice(&self) -> &[Store] {
        &self.all[..self.len]
    }
}

/// `U = G g Gᵀ` of `[o, c, 3, 3]` weights, in the layout the products read.
pub fn pack(weights: &[f32], o: usize, c: usize) -> Vec<f32> {
    const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];
    let u_of = |oc: usize, ic: usize| -> [f32; POSITIONS] {
        let g = &weights[(oc * c + ic) * 9..(oc * c + ic + 1) * 9];
        let mut gg = [[0f32; 3]; 4]; // G g
        for (r, row) in gg.iter_mut().enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|m| G[r][m] * g[m * 3 + k]).sum();
            }
        }
        let mut u = [0f32; POSITIONS]; // (G g) Gᵀ
        for r in 0..4 {
            for s in 0..4 {
                u[r * 4 + s] = (0..3).map(|m| gg[r][m] * G[s][m]).sum();
            }
        }
        u
    };
    let all: Vec<[f32; POSITIONS]> = (0..o).flat_map(|oc| (0..c).map(move |ic| (oc, ic))).map(|(oc, ic)| u_of(oc, ic)).collect();
    let mut packed = Vec::with_capacity(POSITIONS * o * c);
    for xi in 0..POSITIONS {
        for (o0, ob) in blocks(o) {
            for ic in 0..c {
                packed.extend((o0..o0 + ob).map(|oc| all[oc * c + ic][xi]));
            }
        }
    }
    packed
}

/// One image's convolution by Winograd F(2x2, 3x3): `g` passed [`fits`].
pub struct Winograd<'a> {
    pub g: &'a Geometry,
    pub o: usize,
    /// [`pack`]ed weights.
    pub u: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Winograd<'_> {
    /// Rows and columns of the padded image: whole tiles.
    fn padded_dims(&self) -> (usize, usize) {
        let (th, tw, _) = tiles(self.g);
        (2 * th + 2, 2 * tw + 2)
    }

    /// Scratch values one image needs: the padded image (with a slack of two vectors, which
    /// the column transform's last loads may read past the last row: those lanes are dropped),
    /// one channel's column transforms, `V` and one chunk of `M`.
    pub fn scratch_len(&self) -> usize {
        let (hp, wp) = self.padded_dims();
        let (_, tw, tp) = tiles(self.g);
        self.g.c * hp * wp + 2 * LANES + 4 * hp * tw + POSITIONS * (skewed(self.g.c * tp) + CHUNK_PLANE)
    }

    /// `y` (`o x oh x ow`) = the convolution of image `x` (`c x h x w`). Call only where
    /// direct.rs's `available` holds.
    pub fn run(&self, x: &[f32], scratch: &mut [f32], y: &mut [f32]) {
        let g = self.g;
        let (hp, wp) = self.padded_dims();
        let (th, tw, tp) = tiles(g);
        assert!(
            x.len() == g.c * g.h * g.w
                && scratch.len() == self.scratch_len()
                && y.len() == self.o * g.oh * g.ow
                && self.u.len() == POSITIONS * self.o * g.c
                && self.bias.is_none_or(|b| b.len() == self.o),
            "winograd convolution: buffers do not fit the geometry"
        );
        #[cfg(target_arch = "x86_64")]
        assert!(super::direct::available(), "winograd convolution needs AVX-512F");
        let (padded, rest) = scratch.split_at_mut(g.c * hp * wp + 2 * LANES);
        let (e, rest) = rest.split_at_mut(4 * hp * tw);
        let vs = skewed(g.c * tp);
        let (v, m) = rest.split_at_mut(POSITIONS * vs);
        let (planes, slack) = padded.split_at_mut(g.c * hp * wp);
        slack.fill(0.0);
        g.pad_into(x, planes, hp, wp);
        #[cfg(target_arch = "x86_64")]
        for ic in 0..g.c {
            // SAFETY (both calls): AVX-512F (asserted above); row r of the
            // plane and the slack after the last cover every load, e has 4 * tw values per
            // padded row, and v's rows are tp >= th * tw long.
            for r in 0..hp {
                unsafe { avx512::columns(&padded[(ic * hp + r) * wp..], tw, &mut e[r * 4 * tw..(r + 1) * 4 * tw]) };
            }
            unsafe { avx512::rows(e, (th, tw), v, vs, ic * tp) };
        }
        #[cfg(target_arch = "x86_64")]
        {
            let vectors = tp / LANES;
            let mut plans: [Stores; CHUNK] = std::array::from_fn(|_| Stores::new());
            for v0 in (0..vectors).step_by(CHUNK) {
                let vb = (vectors - v0).min(CHUNK);
                // Where each vector's output pixels go: the same for every output channel.
                for (j, plan) in plans.iter_mut().enumerate() {
                    plan.fill((v0 + j) * LANES, (th, tw), (g.oh, g.ow));
                }
                for (o0, ob) in blocks(self.o) {
                    // SAFETY: AVX-512F is there (asserted above); the sizes were checked above,
                    // o0 + ob <= o and v0 + vb <= vectors.
                    unsafe {
                        avx512::products(self.u, (v, vs), m, (g.c, self.o, tp), (o0, ob), (v0, vb));
                        for (j, stores) in plans.iter().take(vb).enumerate() {
                            for i in 0..ob {
                                let b = self.bias.map_or(0.0, |b| b[o0 + i]);
                                let plane = &mut y[(o0 + i) * g.oh * g.ow..(o0 + i + 1) * g.oh * g.ow];
                                let chunk = &m[(i * CHUNK + j) * LANES..];
                                avx512::outputs(chunk, CHUNK_PLANE, stores.as_slice(), plane, b, self.relu);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::direct::LANES;
    use super::{CHUNK, CHUNK_PLANE, POSITIONS, Store, lanes, mask, segments};

    /// `d B` along one padded row (`row` starts at it; 2 tw + 34 values readable): tile `tx`
    /// reads columns `2 tx .. 2 tx + 3`. Writes the four results as rows of `e` (`[4][tw]`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn columns(row: &[f32], tw: usize, e: &mut [f32]) {
        assert!(row.len() >= 2 * tw.div_ceil(LANES) * LANES + 2 && e.len() == 4 * tw);
        // Even and odd lanes of two concatenated vectors.
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (rp, ep) = (row.as_ptr(), e.as_mut_ptr());
        for t0 in (0..tw).step_by(LANES) {
            let k = mask(tw - t0);
            // SAFETY: the loads read row[2 t0 .. 2 t0 + 34] (asserted), the masked stores stay
            // inside e's four rows.
            unsafe {
                let x = rp.add(2 * t0);
                let (p, q) = (_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(LANES)));
                let (r, s) = (_mm512_loadu_ps(x.add(2)), _mm512_loadu_ps(x.add(LANES + 2)));
                let (a, b) = (_mm512_permutex2var_ps(p, evens, q), _mm512_permutex2var_ps(p, odds, q));
                let (c, d) = (_mm512_permutex2var_ps(r, evens, s), _mm512_permutex2var_ps(r, odds, s));
                let out = [_mm512_sub_ps(a, c), _mm512_add_ps(b, c), _mm512_sub_ps(c, b), _mm512_sub_ps(b, d)];
                for (i, val) in out.into_iter().enumerate() {
                    _mm512_mask_storeu_ps(ep.add(i * tw + t0), k, val);
                }
            }
        }
    }

    /// `Bᵀ (d B)` for every tile of one channel: `e` holds each padded row's `columns` results
    /// (`[hp][4][tw]`); position `k * 4 + j` of tile `t` goes to `v[(k * 4 + j) * stride + first + t]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(e: &[f32], (th, tw): (usize, usize), v: &mut [f32], stride: usize, first: usize) {
        let tiles = th * tw;
        assert!(e.len() >= (2 * th + 2) * 4 * tw && v.len() >= 15 * stride + first + tiles.div_ceil(LANES) * LANES);
        let (ep, vp) = (e.as_ptr(), v.as_mut_ptr());
        for j in 0..4 {
            for t0 in (0..tiles).step_by(LANES) {
                let n = (tiles - t0).min(LANES);
                let mut r = [_mm512_setzero_ps(); 4];
                for (ty, tx, l0, l1) in segments(t0, n, tw) {
                    for (k, x) in r.iter_mut().enumerate() {
                        // Lanes l0..l1 from padded row 2 ty + k, its tiles tx.. (the base may lie
                        // before them: only the masked lanes are read).
                        let base = ep.wrapping_add(((2 * ty + k) * 4 + j) * tw + tx).wrapping_sub(l0);
                        // SAFETY: the masked lanes are tiles tx .. tx + l1 - l0 < tw of that row.
                        *x = unsafe { _mm512_mask_loadu_ps(*x, lanes(l0, l1), base) };
                    }
                }
                let out = [
                    _mm512_sub_ps(r[0], r[2]),
                    _mm512_add_ps(r[1], r[2]),
                    _mm512_sub_ps(r[2], r[1]),
                    _mm512_sub_ps(r[1], r[3]),
                ];
                for (k, val) in out.into_iter().enumerate() {
                    // SAFETY: lanes t0 .. t0 + 16 of position k * 4 + j fit v (asserted).
                    unsafe { _mm512_storeu_ps(vp.add((k * 4 + j) * stride + first + t0), val) };
                }
            }
        }
    }

    /// `Aᵀ M A` (+ bias, ReLU) for one tile vector of one output channel: `m` starts at its
    /// vector of position 0, positions `stride` apart; written into the plane `y` by `stores`
    /// (`Stores::fill` for this vector and plane).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn outputs(m: &[f32], stride: usize, stores: &[Store], y: &mut [f32], bias: f32, relu: bool) {
        assert!(m.len() >= 15 * stride + LANES);
        let (mp, yp) = (m.as_ptr(), y.as_mut_ptr());
        let b = _mm512_set1_ps(bias);
        let lo = _mm512_set1_ps(if relu { 0.0 } else { f32::NEG_INFINITY });
        // Interleave two vectors' lanes 0..8 (then 8..16): output pixels 2 t and 2 t + 1.
        let even = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let odd = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        // (Plain loops, not array::from_fn: closures do not get the AVX-512 target.)
        let mut p = [_mm512_setzero_ps(); 16];
        for (xi, x) in p.iter_mut().enumerate() {
            // SAFETY: one vector of each position stays inside m (asserted length).
            *x = unsafe { _mm512_loadu_ps(mp.add(xi * stride)) };
        }
        let (mut s0, mut s1) = ([_mm512_setzero_ps(); 4], [_mm512_setzero_ps(); 4]);
        for j in 0..4 {
            s0[j] = _mm512_add_ps(_mm512_add_ps(p[j], p[4 + j]), p[8 + j]);
            s1[j] = _mm512_sub_ps(_mm512_sub_ps(p[4 + j], p[8 + j]), p[12 + j]);
        }
        let mut pairs = [[_mm512_setzero_ps(); 2]; 2];
        for (a, s) in [s0, s1].iter().enumerate() {
            let left = _mm512_max_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), s[2]), b), lo);
            let right = _mm512_max_ps(_mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[1], s[2]), s[3]), b), lo);
            // Pixel pairs of tiles 0..8 of the vector, then of tiles 8..16.
            pairs[a] = [_mm512_permutex2var_ps(left, even, right), _mm512_permutex2var_ps(left, odd, right)];
        }
        for st in stores {
            // SAFETY: Stores::fill gives, for this plane, offsets whose masked lanes are pixels
            // of one output row inside y (y is the plane it was made for: the caller's).
            unsafe { _mm512_mask_storeu_ps(yp.wrapping_offset(st.offset), st.mask, pairs[st.a as usize & 1][st.half as usize & 1]) };
        }
    }

    /// One chunk of `M[xi] = U[xi] V[xi]` (`[o, c] x [c, tp]`) for the 16 positions: output
    /// channels `o0..o0 + ob` at tile vectors `v0..v0 + vb`, into `m` as `[16][ob][CHUNK * 16]`
    /// (planes [`CHUNK_PLANE`] apart).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn products(
        u: &[f32],
        (v, vs): (&[f32], usize),
        m: &mut [f32],
        (c, o, tp): (usize, usize, usize),
        (o0, ob): (usize, usize),
        (v0, vb): (usize, usize),
    ) {
        assert!(ob <= 8 && vb <= CHUNK && m.len() >= POSITIONS * CHUNK_PLANE && (v0 + vb) * LANES <= tp);
        for xi in 0..POSITIONS {
            let vx = &v[xi * vs..xi * vs + c * tp];
            let w = &u[xi * o * c + o0 * c..xi * o * c + (o0 + ob) * c];
            let mx = &mut m[xi * CHUNK_PLANE..(xi + 1) * CHUNK_PLANE];
            // SAFETY: as `products`'s: ob <= 8 and vb <= CHUNK (asserted), so the tile's
            // stores stay inside this position's plane.
            unsafe {
                match (ob, vb) {
                    (8, 2) => tile::<8, 2>(w, vx, mx, v0, c, tp),
                    (8, _) => tile::<8, 1>(w, vx, mx, v0, c, tp),
                    (4, 2) => tile::<4, 2>(w, vx, mx, v0, c, tp),
                    (4, _) => tile::<4, 1>(w, vx, mx, v0, c, tp),
                    (2, 2) => tile::<2, 2>(w, vx, mx, v0, c, tp),
                    (2, _) => tile::<2, 1>(w, vx, mx, v0, c, tp),
                    (_, 2) => tile::<1, 2>(w, vx, mx, v0, c, tp),
                    (_, _) => tile::<1, 1>(w, vx, mx, v0, c, tp),
                }
            }
        }
    }

    /// `B` rows of one position's product at tile vectors `v0..v0 + V`, into `m` as `[B][CHUNK * 16]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const B: usize, const V: usize>(w: &[f32], v: &[f32], m: &mut [f32], v0: usize, c: usize, tp: usize) {
        debug_assert!(w.len() == B * c && v.len() == c * tp && m.len() >= B * CHUNK * LANES && V <= CHUNK);
        let mut acc = [[_mm512_setzero_ps(); V]; B];
        let (wp, vp) = (w.as_ptr(), v.as_ptr());
        for ic in 0..c {
            let mut xv = [_mm512_setzero_ps(); V];
            for (j, x) in xv.iter_mut().enumerate() {
                // SAFETY: (v0 + j) * 16 + 15 < tp: inside row ic of v.
                *x = unsafe { _mm512_loadu_ps(vp.add(ic * tp + (v0 + j) * LANES)) };
            }
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: ic * B + i < B * c = w.len().
                let wv = _mm512_set1_ps(unsafe { *wp.add(ic * B + i) });
                for j in 0..V {
                    row[j] = _mm512_fmadd_ps(wv, xv[j], row[j]);
                }
            }
        }
        let mp = m.as_mut_ptr();
        for (i, row) in acc.iter().enumerate() {
            for (j, &val) in row.iter().enumerate() {
                // SAFETY: row i < B, vector j < V <= CHUNK: inside m (debug-asserted above).
                unsafe { _mm512_storeu_ps(mp.add((i * CHUNK + j) * LANES), val) };
            }
        }
    }
}
