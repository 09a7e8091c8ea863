//! Winograd F(4x4, 3x3) convolution: 3x3 kernels, stride 1, no dilation, on AVX-512 CPUs.
//!
//! Why: a 3x3 convolution costs 9 multiply-adds per output and input channel; Winograd's
//! minimal filtering computes each 4x4 block of outputs from a 6x6 block of inputs with 36
//! products per channel pair instead of 144, 4x fewer, at the price of additions before and
//! after. Per image: the padded input's 6x6 tiles (4 apart) are transformed (`V = Bᵀ d B`),
//! then for each of the 36 tile positions one small matrix product sums over input channels
//! (`M = U V`, `U = G g Gᵀ` the weights transformed once at load), then each output tile is
//! `Aᵀ M A`, plus the bias, then the ReLU if one follows. Rounding: the transforms' constants
//! (up to 8, and 1/24) make the error ~10x that of a direct sum, ~2e-6 of the output's scale
//! over 16 channels (tested against tract's convolution within 1e-5 of it). F(2x2, 3x3),
//! which this replaced, did 16 products per 2x2 block (2.25x fewer than direct): the test
//! CNN's second layer, 8 images on one thread, went from ~111 to ~80 µs. Its first layer (3
//! input channels) stays direct: this path took it from 49 to 75 µs.
//!
//! Layouts: the padded image's rows are `4 (tw + 1)` long, so tile starts are 4 apart across
//! the whole plane (one junk tile per row) and the column transform runs over it as one
//! strip. `V` is `[36][c][tp]`, `tp` the tiles rounded up to whole vectors, tiles numbered
//! row by row; `U` is `[36]` x the channel blocks of direct.rs's `blocks`, each `[c][ob]`. `M`
//! is computed and consumed one chunk at a time (one channel block by one tile vector, all 36
//! positions: `[36][ob][16]`, 20 KB), so that it stays in L1 between the products and the
//! output transform.

use super::direct::{LANES, blocks};
use super::geometry::Geometry;

/// Outputs per tile side.
const M: usize = 4;

/// Inputs per tile side: `M + 2`.
const SIDE: usize = M + 2;

/// Values per transformed tile (6x6).
const POSITIONS: usize = SIDE * SIDE;

/// Values of one position's plane in a chunk of `M`: `[ob][16]`, skewed.
const CHUNK_PLANE: usize = 8 * LANES + LANES;

/// Input channels from which this path beats the direct convolution: the transforms cost per
/// channel what the products save only with enough channels to sum over.
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
/// 4 KB, because the output transform reads all 36 at once and same-set strides thrash L1.
fn skewed(len: usize) -> usize {
    len + LANES
}

/// Tile rows, tile columns, and tiles rounded up to whole vectors.
fn tiles(g: &Geometry) -> (usize, usize, usize) {
    let (th, tw) = (g.oh.div_ceil(M), g.ow.div_ceil(M));
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
/// tile rows, so that narrow rows (4 tiles for a 16-pixel row) fill them.
/// (One division per call: the transforms walk these per channel and vector.)
fn segments(t0: usize, n: usize, tw: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let (mut t, mut ty, mut tx) = (t0, t0 / tw, t0 % tw);
    std::iter::from_fn(move || {
        (t < t0 + n).then(|| {
            let end = (t0 + n).min(t + tw - tx);
            let seg = (ty, tx, t - t0, end - t0);
            (t, ty, tx) = (end, ty + 1, 0);
            seg
        })
    })
}

/// One masked store of the output transform: quarter `quarter` of a tile vector (tiles
/// `4 q .. 4 q + 4`, their 4 pixels each side by side) in output row `row` of the tiles (0..4)
/// goes to `offset` in the output plane, lanes `mask` (the offset may point before the plane:
/// only masked lanes are written).
#[derive(Clone, Copy, Default)]
struct Store {
    offset: isize,
    mask: u16,
    row: u8,
    quarter: u8,
}

/// Most stores of one tile vector: per tile output row, one per segment of a tile row and
/// quarter that meet, at most 16 segments + 3.
const MAX_STORES: usize = M * (LANES + 3);

/// The stores of one tile vector (16 tiles from `t0`).
struct Stores {
    all: [Store; MAX_STORES],
    len: usize,
}

impl Stores {
    fn new() -> Stores {
        Stores { all: [Store::default(); MAX_STORES], len: 0 }
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
            for q in 0..LANES / M {
                let (first, end) = (l0.max(M * q), l1.min(M * (q + 1)));
                if first >= end {
                    continue;
                }
                // Pixel lane p of quarter q is output column 4 tx + 16 q + p - 4 l0.
                let from = M * first - LANES * q;
                let Some(inside) = (ow + M * l0).checked_sub(M * tx + LANES * q) else { continue };
                let to = (M * end - LANES * q).min(inside);
                if from >= to {
                    continue;
                }
                for row in 0..M {
                    let oy = M * ty + row;
                    if oy >= oh {
                        break;
                    }
                    let offset = (oy * ow + M * tx + LANES * q) as isize - (M * l0) as isize;
                    s.all[s.len] = Store { offset, mask: lanes(from, to), row: row as u8, quarter: q as u8 };
                    s.len += 1;
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
    const G: [[f64; 3]; SIDE] = [
        [1.0 / 4.0, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    let u_of = |oc: usize, ic: usize| -> [f32; POSITIONS] {
        let g = &weights[(oc * c + ic) * 9..(oc * c + ic + 1) * 9];
        let mut gg = [[0f64; 3]; SIDE]; // G g
        for (r, row) in gg.iter_mut().enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                *v = (0..3).map(|m| G[r][m] * f64::from(g[m * 3 + k])).sum();
            }
        }
        let mut u = [0f32; POSITIONS]; // (G g) Gᵀ
        for r in 0..SIDE {
            for s in 0..SIDE {
                u[r * SIDE + s] = (0..3).map(|m| gg[r][m] * G[s][m]).sum::<f64>() as f32;
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

/// One image's convolution by Winograd F(4x4, 3x3): `g` passed [`fits`].
pub struct Winograd<'a> {
    pub g: &'a Geometry,
    pub o: usize,
    /// [`pack`]ed weights.
    pub u: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub relu: bool,
}

impl Winograd<'_> {
    /// Rows and columns of the padded image: whole tiles, and rows of whole tile steps (one
    /// more tile than the image has, whose values are never used).
    fn padded_dims(&self) -> (usize, usize) {
        let (th, tw, _) = tiles(self.g);
        (M * th + 2, M * (tw + 1))
    }

    /// Tiles of one padded channel plane read as one strip, 4 apart, and that count rounded up
    /// to whole vectors.
    fn strip(&self) -> (usize, usize) {
        let (hp, wp) = self.padded_dims();
        let n = hp * wp / M;
        (n, n.div_ceil(LANES) * LANES)
    }

    /// Scratch values one image needs: the padded image (with a slack of four vectors, which
    /// the column transform's last loads may read past the last plane: those lanes are
    /// dropped), one channel's column transforms, `V` and one chunk of `M`.
    pub fn scratch_len(&self) -> usize {
        let (hp, wp) = self.padded_dims();
        let (_, _, tp) = tiles(self.g);
        let (_, ef) = self.strip();
        self.g.c * hp * wp + 4 * LANES + SIDE * ef + POSITIONS * (skewed(self.g.c * tp) + CHUNK_PLANE)
    }

    /// `y` (`o x oh x ow`) = the convolution of image `x` (`c x h x w`). Call only where
    /// direct.rs's `available` holds.
    pub fn run(&self, x: &[f32], scratch: &mut [f32], y: &mut [f32]) {
        let g = self.g;
        let (hp, wp) = self.padded_dims();
        let (th, tw, tp) = tiles(g);
        let (nf, ef) = self.strip();
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
        let (padded, rest) = scratch.split_at_mut(g.c * hp * wp + 4 * LANES);
        let (e, rest) = rest.split_at_mut(SIDE * ef);
        let vs = skewed(g.c * tp);
        let (v, m) = rest.split_at_mut(POSITIONS * vs);
        let (planes, slack) = padded.split_at_mut(g.c * hp * wp);
        slack.fill(0.0);
        g.pad_into(x, planes, hp, wp);
        #[cfg(target_arch = "x86_64")]
        for ic in 0..g.c {
            // SAFETY (both calls): AVX-512F (asserted above); the plane, then the next one or
            // the slack, cover every load of the strip; e has ef >= nf values per row, and v's
            // rows are tp >= th * tw long.
            unsafe {
                avx512::columns(&padded[ic * hp * wp..], nf, e, ef);
                avx512::rows(e, ef, (th, tw), v, vs, ic * tp);
            }
        }
        #[cfg(target_arch = "x86_64")]
        {
            let mut stores = Stores::new();
            for v0 in 0..tp / LANES {
                // Where the vector's output pixels go: the same for every output channel.
                stores.fill(v0 * LANES, (th, tw), (g.oh, g.ow));
                for (o0, ob) in blocks(self.o) {
                    // SAFETY: AVX-512F is there (asserted above); the sizes were checked above,
                    // o0 + ob <= o and v0 < tp / 16.
                    unsafe {
                        avx512::products(self.u, (v, vs), m, (g.c, self.o, tp), (o0, ob), v0);
                        for i in 0..ob {
                            let b = self.bias.map_or(0.0, |b| b[o0 + i]);
                            let plane = &mut y[(o0 + i) * g.oh * g.ow..(o0 + i + 1) * g.oh * g.ow];
                            avx512::outputs(&m[i * LANES..], CHUNK_PLANE, stores.as_slice(), plane, b, self.relu);
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
    use super::{CHUNK_PLANE, M, POSITIONS, SIDE, Store, lanes, segments};

    /// `Bᵀ d` for the six rows (or columns) `d` of tiles, side by side in lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn bt(d: [__m512; SIDE]) -> [__m512; SIDE] {
        let (two, four, five) = (_mm512_set1_ps(2.0), _mm512_set1_ps(4.0), _mm512_set1_ps(5.0));
        let (s12, d12) = (_mm512_add_ps(d[1], d[2]), _mm512_sub_ps(d[1], d[2]));
        let (s34, d43) = (_mm512_add_ps(d[3], d[4]), _mm512_sub_ps(d[4], d[3]));
        let (d42, d31) = (_mm512_sub_ps(d[4], d[2]), _mm512_sub_ps(d[3], d[1]));
        [
            _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])),
            _mm512_fnmadd_ps(four, s12, s34),
            _mm512_fmadd_ps(four, d12, d43),
            _mm512_fmadd_ps(two, d31, d42),
            _mm512_fnmadd_ps(two, d31, d42),
            _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])),
        ]
    }

    /// `Aᵀ p` for six rows (or columns) `p` of tiles, side by side in lanes.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn at(p: [__m512; SIDE]) -> [__m512; M] {
        let (two, four, eight) = (_mm512_set1_ps(2.0), _mm512_set1_ps(4.0), _mm512_set1_ps(8.0));
        let (s12, d12) = (_mm512_add_ps(p[1], p[2]), _mm512_sub_ps(p[1], p[2]));
        let (s34, d34) = (_mm512_add_ps(p[3], p[4]), _mm512_sub_ps(p[3], p[4]));
        [
            _mm512_add_ps(_mm512_add_ps(p[0], s12), s34),
            _mm512_fmadd_ps(two, d34, d12),
            _mm512_fmadd_ps(four, s34, s12),
            _mm512_add_ps(_mm512_fmadd_ps(eight, d34, d12), p[5]),
        ]
    }

    /// `d B` of the `n` tiles of a strip (`strip` starts at its first; tile `t` reads values
    /// `4 t .. 4 t + 6`, and the last vector's loads up to 62 values past tile `n`): writes the
    /// six results as rows of `e` (`[6][stride]`, stride >= n rounded up to whole vectors).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn columns(strip: &[f32], n: usize, e: &mut [f32], stride: usize) {
        let vectors = n.div_ceil(LANES);
        assert!(strip.len() >= M * LANES * vectors + 2 && stride >= vectors * LANES && e.len() >= SIDE * stride);
        // Every fourth lane of two vectors (from 0, then from 2 in the upper half; from 1, 3),
        // then the lower (upper) halves of two vectors.
        let from02 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 2, 6, 10, 14, 18, 22, 26, 30);
        let from13 = _mm512_setr_epi32(1, 5, 9, 13, 17, 21, 25, 29, 3, 7, 11, 15, 19, 23, 27, 31);
        let low = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        let high = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        let (sp, ep) = (strip.as_ptr(), e.as_mut_ptr());
        for t0 in (0..vectors * LANES).step_by(LANES) {
            // SAFETY: the loads read strip[4 t0 .. 4 t0 + 66] (asserted), the stores e's rows.
            unsafe {
                let x = sp.add(M * t0);
                let q = [_mm512_loadu_ps(x), _mm512_loadu_ps(x.add(LANES)), _mm512_loadu_ps(x.add(2 * LANES)), _mm512_loadu_ps(x.add(3 * LANES))];
                let (ab02, ab13) = (_mm512_permutex2var_ps(q[0], from02, q[1]), _mm512_permutex2var_ps(q[0], from13, q[1]));
                let (cd02, cd13) = (_mm512_permutex2var_ps(q[2], from02, q[3]), _mm512_permutex2var_ps(q[2], from13, q[3]));
                let d0 = _mm512_permutex2var_ps(ab02, low, cd02);
                let d1 = _mm512_permutex2var_ps(ab13, low, cd13);
                let d2 = _mm512_permutex2var_ps(ab02, high, cd02);
                let d3 = _mm512_permutex2var_ps(ab13, high, cd13);
                // Values 4 and 5 of tile t are values 0 and 1 of tile t + 1.
                let (after0, after1) = (_mm512_set1_ps(*x.add(M * LANES)), _mm512_set1_ps(*x.add(M * LANES + 1)));
                let d4 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(_mm512_castps_si512(after0), _mm512_castps_si512(d0)));
                let d5 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(_mm512_castps_si512(after1), _mm512_castps_si512(d1)));
                for (j, val) in bt([d0, d1, d2, d3, d4, d5]).into_iter().enumerate() {
                    _mm512_storeu_ps(ep.add(j * stride + t0), val);
                }
            }
        }
    }

    /// `Bᵀ (d B)` for every tile of one channel: `e` holds the strip's `columns` results
    /// (`[6][stride]`, padded row `r`'s tiles from `r (tw + 1)`); position `k * 6 + j` of tile `t`
    /// goes to `v[(k * 6 + j) * vs + first + t]`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(e: &[f32], stride: usize, (th, tw): (usize, usize), v: &mut [f32], vs: usize, first: usize) {
        let (tiles, fw) = (th * tw, tw + 1);
        assert!(
            stride >= (M * th + 2) * fw
                && e.len() >= SIDE * stride
                && v.len() >= (POSITIONS - 1) * vs + first + tiles.div_ceil(LANES) * LANES
        );
        let (ep, vp) = (e.as_ptr(), v.as_mut_ptr());
        for t0 in (0..tiles).step_by(LANES) {
            // Each tile row in the vector: where its lanes start in e (padded row 4 ty, tile tx,
            // less the first lane: the base may lie before the row, only masked lanes are read).
            let mut runs = [(0usize, 0u16); LANES];
            let mut count = 0;
            for (ty, tx, l0, l1) in segments(t0, (tiles - t0).min(LANES), tw) {
                runs[count] = ((M * ty * fw + tx).wrapping_sub(l0), lanes(l0, l1));
                count += 1;
            }
            for j in 0..SIDE {
                let mut r = [_mm512_setzero_ps(); SIDE];
                for &(start, mask) in &runs[..count] {
                    for (k, x) in r.iter_mut().enumerate() {
                        let base = ep.wrapping_add(j * stride + k * fw).wrapping_add(start);
                        // SAFETY: the masked lanes are tiles tx .. tx + l1 - l0 < tw of padded
                        // row 4 ty + k < 4 th + 2 (asserted inside e).
                        *x = unsafe { _mm512_mask_loadu_ps(*x, mask, base) };
                    }
                }
                for (k, val) in bt(r).into_iter().enumerate() {
                    // SAFETY: lanes t0 .. t0 + 16 of position k * 6 + j fit v (asserted).
                    unsafe { _mm512_storeu_ps(vp.add((k * SIDE + j) * vs + first + t0), val) };
                }
            }
        }
    }

    /// `Aᵀ M A` (+ bias, ReLU) for one tile vector of one output channel: `m` starts at its
    /// vector of position 0, positions `stride` apart; written into the plane `y` by `stores`
    /// (`Stores::fill` for this vector and plane).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn outputs(m: &[f32], stride: usize, stores: &[Store], y: &mut [f32], bias: f32, relu: bool) {
        assert!(m.len() >= (POSITIONS - 1) * stride + LANES);
        let (mp, yp) = (m.as_ptr(), y.as_mut_ptr());
        let b = _mm512_set1_ps(bias);
        let lo = _mm512_set1_ps(if relu { 0.0 } else { f32::NEG_INFINITY });
        // Pixel pairs of tiles 0..8 (8..16) from two vectors, then pixel quads of tiles 0..4
        // (4..8) from two vectors of pairs (as 64-bit lanes).
        let pairs_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let pairs_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let quads_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
        let quads_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
        // Aᵀ along the rows of M, column by column: s[i][b].
        let mut s = [[_mm512_setzero_ps(); SIDE]; M];
        for col in 0..SIDE {
            let mut p = [_mm512_setzero_ps(); SIDE];
            for (a, x) in p.iter_mut().enumerate() {
                // SAFETY: one vector of each position stays inside m (asserted length).
                *x = unsafe { _mm512_loadu_ps(mp.add((a * SIDE + col) * stride)) };
            }
            for (i, val) in at(p).into_iter().enumerate() {
                s[i][col] = val;
            }
        }
        let mut quads = [[_mm512_setzero_ps(); M]; M];
        // (Plain loops, not closures: closures do not get the AVX-512 target.)
        for (i, row) in s.into_iter().enumerate() {
            let mut px = at(row);
            for x in px.iter_mut() {
                *x = _mm512_max_ps(_mm512_add_ps(*x, b), lo);
            }
            let pairs = [
                _mm512_castps_pd(_mm512_permutex2var_ps(px[0], pairs_lo, px[1])),
                _mm512_castps_pd(_mm512_permutex2var_ps(px[0], pairs_hi, px[1])),
                _mm512_castps_pd(_mm512_permutex2var_ps(px[2], pairs_lo, px[3])),
                _mm512_castps_pd(_mm512_permutex2var_ps(px[2], pairs_hi, px[3])),
            ];
            quads[i] = [
                _mm512_castpd_ps(_mm512_permutex2var_pd(pairs[0], quads_lo, pairs[2])),
                _mm512_castpd_ps(_mm512_permutex2var_pd(pairs[0], quads_hi, pairs[2])),
                _mm512_castpd_ps(_mm512_permutex2var_pd(pairs[1], quads_lo, pairs[3])),
                _mm512_castpd_ps(_mm512_permutex2var_pd(pairs[1], quads_hi, pairs[3])),
            ];
        }
        for st in stores {
            // SAFETY: Stores::fill gives, for this plane, offsets whose masked lanes are pixels
            // of one output row inside y (y is the plane it was made for: the caller's).
            unsafe {
                let val = quads[st.row as usize % M][st.quarter as usize % M];
                _mm512_mask_storeu_ps(yp.wrapping_offset(st.offset), st.mask, val)
            };
        }
    }

    /// One chunk of `M[xi] = U[xi] V[xi]` (`[o, c] x [c, tp]`) for the 36 positions: output
    /// channels `o0..o0 + ob` at tile vector `v0`, into `m` as `[36][ob][16]` (planes
    /// [`CHUNK_PLANE`] apart).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn products(
        u: &[f32],
        (v, vs): (&[f32], usize),
        m: &mut [f32],
        (c, o, tp): (usize, usize, usize),
        (o0, ob): (usize, usize),
        v0: usize,
    ) {
        assert!(ob <= 8 && m.len() >= POSITIONS * CHUNK_PLANE && (v0 + 1) * LANES <= tp && v.len() >= (POSITIONS - 1) * vs + c * tp);
        for xi in 0..POSITIONS {
            let vx = &v[xi * vs..xi * vs + c * tp];
            let w = &u[xi * o * c + o0 * c..xi * o * c + (o0 + ob) * c];
            let mx = &mut m[xi * CHUNK_PLANE..(xi + 1) * CHUNK_PLANE];
            // SAFETY: ob <= 8 (asserted), so the tile's stores stay inside this position's plane.
            unsafe {
                match ob {
                    8 => tile::<8>(w, vx, mx, v0, c, tp),
                    4 => tile::<4>(w, vx, mx, v0, c, tp),
                    2 => tile::<2>(w, vx, mx, v0, c, tp),
                    _ => tile::<1>(w, vx, mx, v0, c, tp),
                }
            }
        }
    }

    /// `B` rows of one position's product at tile vector `v0`, into `m` as `[B][16]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const B: usize>(w: &[f32], v: &[f32], m: &mut [f32], v0: usize, c: usize, tp: usize) {
        debug_assert!(w.len() == B * c && v.len() == c * tp && m.len() >= B * LANES);
        let mut acc = [_mm512_setzero_ps(); B];
        let (wp, vp) = (w.as_ptr(), v.as_ptr());
        for ic in 0..c {
            // SAFETY: v0 * 16 + 15 < tp: inside row ic of v.
            let x = unsafe { _mm512_loadu_ps(vp.add(ic * tp + v0 * LANES)) };
            for (i, row) in acc.iter_mut().enumerate() {
                // SAFETY: ic * B + i < B * c = w.len().
                let wv = _mm512_set1_ps(unsafe { *wp.add(ic * B + i) });
                *row = _mm512_fmadd_ps(wv, x, *row);
            }
        }
        let mp = m.as_mut_ptr();
        for (i, &val) in acc.iter().enumerate() {
            // SAFETY: row i < B: inside m (debug-asserted above).
            unsafe { _mm512_storeu_ps(mp.add(i * LANES), val) };
        }
    }
}
