//! `Conv` for f32, channels first, 1-D or 2-D, one group, constant weights. Stride 1 without
//! dilation on an AVX-512 CPU: Winograd F(4x4, 3x3) (winograd.rs) for 3x3 kernels over enough
//! input channels, else the direct convolution of direct.rs. Otherwise im2col into a
//! per-thread scratch buffer, then one `gemm` call per image, `out[O, P] = W[O, K] cols[K, P]`
//! (+ bias, then a ReLU that follows), K = channels x kernel taps, P = output pixels.
//!
//! Only image-sized outputs (`MIN_PIXELS`) are taken: see `replacing`.
//!
//! Threads: a batch large enough (`super::PARALLEL_MACS`) is split by image across tract's executor;
//! a single image that large gives its matmul all of the executor's threads.

use std::cell::RefCell;
use std::sync::Arc;

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PoolSpec};
use tract_onnx::tract_core::ops::math::Max;

use super::direct::{self, Direct};
use super::winograd::{self, Winograd};
use super::geometry::{Geometry, supported};
use super::phased::Phased;
use super::strided::{self, Strided};
use super::{sharing_pool, sole_binary_reader, threads_for};
use crate::sgemm::{sgemm, sgemm_by_columns};
use crate::simd::simd_kernel;

/// Output pixels per image below which tract's own convolution stays.
const MIN_PIXELS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FastConv {
    spec: PoolSpec,
    /// `[O, C, kh, kw]` (OIHW): row-major, the `[O, K]` matrix the columns multiply.
    weights: Arc<Tensor>,
    /// One value per output channel; `None` when the model's bias is zero.
    bias: Option<Arc<Tensor>>,
    /// Whether a ReLU follows (folded in: see `relu_after`).
    relu: bool,
    /// The weights as the direct convolution reads them (`direct::pack`), where it applies:
    /// stride 1, no dilation, an AVX-512 CPU.
    packed: Option<Arc<Tensor>>,
    /// The weights transformed for winograd.rs, where it applies (`winograd::applies`, on the
    /// direct path).
    winograd: Option<Arc<Tensor>>,
    /// The weights as strided.rs reads them, where it applies (few input values per output, an
    /// AVX2 CPU) and the AVX-512 direct path does not.
    strided: Option<Arc<Tensor>>,
}

impl FastConv {
    /// The patch that puts a FastConv in place of `op`, when it covers `op` exactly.
    pub fn replacing(model: &TypedModel, node: &TypedNode, op: &Conv) -> TractResult<Option<TypedModelPatch>> {
        let spec = &op.pool_spec;
        if op.q_params.is_some()
            || op.group != 1
            || op.kernel_fmt != KernelFormat::OIHW
            || spec.input_channels == 0
            || !supported(spec)
        {
            return Ok(None);
        }
        // Few output pixels make a skinny matmul, where tract's small-n kernels beat gemm's
        // (Silero VAD's 4-column convolutions ran 1.5x slower here): only known, image-sized
        // outputs are taken.
        let out_fact = model.outlet_fact(OutletId::new(node.id, 0))?;
        let pixels: Option<usize> =
            spec.data_format.shape(&*out_fact.shape)?.hw_dims().iter().map(|d| d.to_usize().ok()).product();
        if pixels.is_none_or(|p| p < MIN_PIXELS) {
            return Ok(None);
        }
        let o = spec.output_channels;
        let mut want = tvec![o, spec.input_channels];
        want.extend(spec.kernel_shape.iter().copied());
        let Some((weights, bias)) = constant_weights(model, node, &want)? else { return Ok(None) };
        let weights = &weights;
        let relu = relu_after(model, node)?;
        let unit = |v: &[usize]| v.iter().all(|&s| s == 1);
        let packed = if unit(&spec.strides()) && unit(&spec.dilations()) && direct::available() {
            Some(Arc::new(tensor1(&direct::pack(weights.try_as_plain_ram()?.as_slice::<f32>()?, o))))
        } else {
            None
        };
        let winograd = match (&packed, winograd::applies(&spec.kernel_shape, spec.input_channels)) {
            (Some(_), true) => {
                let w = weights.try_as_plain_ram()?;
                Some(Arc::new(tensor1(&winograd::pack(w.as_slice::<f32>()?, o, spec.input_channels))))
            }
            _ => None,
        };
        let strided = match packed {
            None if strided::applies(spec.input_channels, &spec.kernel_shape) => {
                Some(Arc::new(tensor1(&strided::pack(weights.try_as_plain_ram()?.as_slice::<f32>()?, o))))
            }
            _ => None,
        };
        let fast = FastConv { spec: spec.clone(), weights: Arc::clone(weights), bias, relu: relu.is_some(), packed, winograd, strided };
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, node.inputs[0])?;
        let y = patch.wire_node(&node.name, fast, &[x])?[0];
        patch.shunt_outside(model, OutletId::new(relu.unwrap_or(node.id), 0), y)?;
        Ok(Some(patch))
    }
}

/// A convolution's f32 input, its constant f32 weights of shape `want` (`[O, C / group, k..]`)
/// and its bias, as one value per output channel (`None` when zero): what the fast kernels
/// need of a `Conv` node.
pub(super) fn constant_weights(
    model: &TypedModel,
    node: &TypedNode,
    want: &[usize],
) -> TractResult<Option<(Arc<Tensor>, Option<Arc<Tensor>>)>> {
    let f32_dt = f32::datum_type();
    let [x, w, b] = [0, 1, 2].map(|i| model.outlet_fact(node.inputs[i]));
    let (x, w, b) = (x?, w?, b?);
    let (Some(weights), Some(bias)) = (&w.konst, &b.konst) else { return Ok(None) };
    if x.datum_type != f32_dt || weights.datum_type() != f32_dt || bias.datum_type() != f32_dt || weights.shape() != want {
        return Ok(None);
    }
    let o = want[0];
    let bias = match bias.rank() {
        0 => {
            let v = *bias.try_as_plain_ram()?.as_slice::<f32>()?.first().context("empty bias")?;
            (v != 0.0).then(|| Arc::new(tensor1(&vec![v; o])))
        }
        1 if bias.len() == o => Some(Arc::clone(bias)),
        _ => return Ok(None),
    };
    Ok(Some((Arc::clone(weights), bias)))
}

/// The ReLU that alone reads `node`'s output, if any: tract writes it `max(x, 0)`. Folded into
/// the convolution, because tract leaves it a generic broadcasting op when the batch size is
/// symbolic, and that took 40% of a small CNN's time.
fn relu_after(model: &TypedModel, node: &TypedNode) -> TractResult<Option<usize>> {
    let Some((next, other)) = sole_binary_reader::<Max>(model, node)? else { return Ok(None) };
    let zero = model
        .outlet_fact(other)?
        .konst
        .as_ref()
        .is_some_and(|k| k.datum_type() == f32::datum_type() && k.len() == 1 && k.is_all_zero().unwrap_or(false));
    // The zero only broadcasts: the result has the convolution's shape.
    let same_shape =
        model.outlet_fact(OutletId::new(next.id, 0))?.shape == model.outlet_fact(OutletId::new(node.id, 0))?.shape;
    Ok((zero && same_shape).then_some(next.id))
}

impl Op for FastConv {
    fn name(&self) -> StaticName {
        "FastConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.spec.info();
        if self.relu {
            info.push("then ReLU".into());
        }
        let kernel = if self.winograd.is_some() {
            "winograd, else direct"
        } else if self.packed.is_some() {
            "direct"
        } else if self.strided.is_some() {
            "strided direct"
        } else {
            "im2col + gemm"
        };
        info.push(format!("kernel: {kernel} (one thread's image)"));
        Ok(info)
    }

    op_as_typed_op!();
}

impl TypedOp for FastConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.spec.output_facts(inputs)
    }

    as_op!();
}

thread_local! {
    /// im2col columns or the direct convolution's padded image, reused run after run (every
    /// element is rewritten before it is read).
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl EvalOp for FastConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = Geometry::new(&self.spec, input.shape())?;
        let shape = self.spec.output_shape(input.shape())?.shape;
        let (o, k, p) = (self.spec.output_channels, g.c * g.kh * g.kw, g.oh * g.ow);
        // SAFETY: every element is written below: by the bias fill or by gemm with read_dst off.
        let mut output = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        let (weights_view, bias_view, packed_view);
        let w = {
            weights_view = self.weights.try_as_plain_ram()?;
            weights_view.as_slice::<f32>()?
        };
        let bias = match &self.bias {
            Some(b) => {
                bias_view = b.try_as_plain_ram()?;
                Some(bias_view.as_slice::<f32>()?)
            }
            None => None,
        };
        let packed = match &self.packed {
            Some(p) => {
                packed_view = p.try_as_plain_ram()?;
                Some(packed_view.as_slice::<f32>()?)
            }
            None => None,
        };
        let strided_view;
        let strided = match &self.strided {
            Some(p) => {
                strided_view = p.try_as_plain_ram()?;
                Some(strided_view.as_slice::<f32>()?)
            }
            None => None,
        };
        let winograd_view;
        let winograd = match &self.winograd {
            Some(u) if winograd::fits(&g, o) => {
                winograd_view = u.try_as_plain_ram()?;
                Some(winograd_view.as_slice::<f32>()?)
            }
            _ => None,
        };
        let mut out_view = output.try_as_plain_ram_mut()?;
        let y = out_view.as_slice_mut::<f32>()?;
        let plane = g.c * g.h * g.w;
        ensure!(x.len() == g.n * plane && y.len() == g.n * o * p && w.len() == o * k, "FastConv: {g:?} does not fit");
        if o * p == 0 {
            return Ok(tvec!(output.into_tvalue()));
        }
        let job = Job { g: &g, w, packed, winograd, strided, bias, relu: self.relu, o, k, p };
        let image = |i: usize, y: &mut [f32], threads: usize| job.image(&x[i * plane..(i + 1) * plane], y, threads);
        let serial = |y: &mut [f32]| y.chunks_exact_mut(o * p).enumerate().try_for_each(|(i, y)| image(i, y, 1));
        match threads_for(g.n * o * k * p) {
            Some(pool) if g.n > 1 => {
                pool.install(|| y.par_chunks_mut(o * p).enumerate().try_for_each(|(i, y)| image(i, y, 1)))?
            }
            // One image that large: its matmul gets the threads.
            Some(pool) => {
                let threads = pool.current_num_threads();
                pool.install(|| y.chunks_exact_mut(o * p).enumerate().try_for_each(|(i, y)| image(i, y, threads)))?
            }
            None => serial(y)?,
        }
        Ok(tvec!(output.into_tvalue()))
    }
}

/// What one image's convolution needs.
struct Job<'a> {
    g: &'a Geometry,
    w: &'a [f32],
    /// `w` packed for the direct convolution, where it applies.
    packed: Option<&'a [f32]>,
    /// The winograd.rs weights, where that applies to this geometry.
    winograd: Option<&'a [f32]>,
    /// `w` packed for strided.rs, where it applies.
    strided: Option<&'a [f32]>,
    bias: Option<&'a [f32]>,
    relu: bool,
    o: usize,
    k: usize,
    p: usize,
}

impl Job<'_> {
    /// `x`: one image, c x h x w; `y`: its output, o x p.
    fn image(&self, x: &[f32], y: &mut [f32], threads: usize) -> TractResult<()> {
        let g = self.g;
        // A 1x1 stride-1 unpadded kernel reads the image as its own columns.
        let direct = (g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.oh, g.ow) == (1, 1, 1, 1, 0, 0, g.h, g.w);
        if direct {
            return self.matmul(x, y, threads);
        }
        if let (Some(u), 1) = (self.winograd, threads) {
            let wino = Winograd { g, o: self.o, u, bias: self.bias, relu: self.relu };
            return with_scratch(wino.scratch_len(), |scratch| wino.run(x, scratch, y));
        }
        if let Some(direct) = self.direct(threads) {
            return with_scratch(direct.padded_len(), |padded| direct.run(x, padded, y));
        }
        if let (Some(weights), 1) = (self.strided, threads) {
            let strided = Strided { g, weights, bias: self.bias, relu: self.relu };
            return with_scratch(strided.scratch_len(), |scratch| strided.run(x, scratch, y));
        }
        // A stride over 1 gathers columns value by value; from phase-split planes (phased.rs)
        // each row of outputs is one copy.
        let phased = (g.sw > 1).then(|| Phased::of(g));
        let extra = phased.map_or(0, |ph| g.c * ph.plane_len());
        let mut product = Ok(());
        with_scratch(self.k * self.p + extra, |buf| {
            let (cols, planes) = buf.split_at_mut(self.k * self.p);
            match phased {
                Some(ph) => im2col_phased(g, &ph, x, planes, cols),
                None => im2col(g, x, cols),
            }
            product = self.matmul(cols, y, threads);
        })?;
        product
    }

    /// The direct convolution of this image, where it applies (`packed`: stride 1, no
    /// dilation, an AVX-512 CPU) and one thread runs it (a single image that large gives gemm
    /// the threads).
    fn direct(&self, threads: usize) -> Option<Direct<'_>> {
        let (g, packed) = (self.g, self.packed?);
        (threads == 1).then(|| Direct { g, weights: packed, bias: self.bias, relu: self.relu })
    }

    /// `y = w @ cols (+ bias)`, then ReLU if asked: `cols` is k x p.
    fn matmul(&self, cols: &[f32], y: &mut [f32], threads: usize) -> TractResult<()> {
        let p = self.p;
        if let Some(bias) = self.bias {
            for (row, &b) in y.chunks_exact_mut(p).zip(bias) {
                row.fill(b);
            }
        }
        // With no bias, y's uninitialized values are never read (accumulate off).
        let accumulate = self.bias.is_some();
        // A lone image's product on one thread: its columns shared with lingering helpers
        // where the pool allows (a CNN's first convolution, alone, is most of a small run).
        match sharing_pool(self.o * self.k * p).filter(|_| threads == 1) {
            Some(pool) if sgemm_by_columns(Some(&pool), (self.w, cols, &mut *y), (self.o, self.k, p), accumulate).is_ok() => {}
            Some(_) => return Err(TractError::msg("FastConv: a shared product panicked")),
            None => sgemm(self.w, cols, y, (self.o, self.k, p), accumulate, threads),
        }
        if self.relu {
            relu(y);
        }
        Ok(())
    }
}

/// Runs `f` on this thread's scratch buffer, grown to `len` values (their contents are
/// whatever the last use left: `f` must write before it reads).
pub(super) fn with_scratch(len: usize, f: impl FnOnce(&mut [f32])) -> TractResult<()> {
    COLUMNS.with_borrow_mut(|buf| {
        if buf.len() < len {
            buf.try_reserve_exact(len - buf.len())
                .map_err(|_| format_err!("FastConv: cannot allocate {len} scratch values"))?;
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len]);
        Ok(())
    })
}

simd_kernel! {
    fn relu(y: &mut [f32]) {
        for v in y.iter_mut() {
            *v = v.max(0.0);
        }
    }
}

/// `cols[(c, ky, kx)][(oy, ox)]` = the input pixel that tap reads for that output, 0 in padding.
fn im2col(g: &Geometry, x: &[f32], cols: &mut [f32]) {
    if (g.sh, g.sw, g.ow) == (1, 1, g.w) {
        return im2col_shifted(g, x, cols);
    }
    let p = g.oh * g.ow;
    let mut rows = cols.chunks_exact_mut(p);
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let Some(dst) = rows.next() else { return };
                let (lo, hi, first) = g.columns(kx);
                for (oy, out) in dst.chunks_exact_mut(g.ow).enumerate() {
                    let Some(iy) = g.row(oy, ky) else {
                        out.fill(0.0);
                        continue;
                    };
                    let row = &plane[iy * g.w..(iy + 1) * g.w];
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if g.sw == 1 {
                        out[lo..hi].copy_from_slice(&row[first..first + hi - lo]);
                    } else {
                        for (j, o) in out[lo..hi].iter_mut().enumerate() {
                            *o = row[first + j * g.sw];
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col`] through phase-split copies of the image's planes (`planes`: `c` planes of
/// `ph`): every tap's row of outputs is one contiguous run there.
fn im2col_phased(g: &Geometry, ph: &Phased, x: &[f32], planes: &mut [f32], cols: &mut [f32]) {
    let plane = ph.plane_len();
    for (src, dst) in x.chunks_exact(g.h * g.w).zip(planes.chunks_exact_mut(plane)) {
        ph.fill(g, src, dst);
    }
    let mut rows = cols.chunks_exact_mut(g.oh * g.ow);
    for padded in planes.chunks_exact(plane) {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let Some(dst) = rows.next() else { return };
                let start = ky * g.dh * ph.row_len() + ph.start(kx * g.dw);
                for (oy, out) in dst.chunks_exact_mut(g.ow).enumerate() {
                    let at = oy * g.sh * ph.row_len() + start;
                    out.copy_from_slice(&padded[at..at + g.ow]);
                }
            }
        }
    }
}

/// [`im2col`] for stride 1 with outputs as wide as the input ("same" padding, the common
/// case): a tap's row is then the input plane shifted by a fixed offset, so it is one copy,
/// with the columns that wrapped around a row's edge zeroed after (short rows made the
/// per-row copies cost more than the copying).
fn im2col_shifted(g: &Geometry, x: &[f32], cols: &mut [f32]) {
    let (p, plane) = (g.oh * g.ow, g.h * g.w);
    let mut rows = cols.chunks_exact_mut(p);
    for c in 0..g.c {
        let src = &x[c * plane..(c + 1) * plane];
        for ky in 0..g.kh {
            // Output rows whose input row is inside the image.
            let (oy_lo, oy_hi, _) = g.rows(ky);
            for kx in 0..g.kw {
                let Some(dst) = rows.next() else { return };
                let (lo, hi, _) = g.columns(kx);
                if oy_lo >= oy_hi || lo >= hi {
                    dst.fill(0.0);
                    continue;
                }
                // dst[j] = src[j + off] over the valid rows, clipped to the plane at both ends
                // (the clipped positions are wrapped columns, zeroed below).
                let off =
                    (ky * g.dh) as isize * g.w as isize - (g.pt * g.w) as isize + (kx * g.dw) as isize - g.pl as isize;
                let (j0, j1) = (oy_lo * g.ow, oy_hi * g.ow);
                let from = j0.max((-off).max(0) as usize);
                let to = j1.min((plane as isize - off).max(0) as usize);
                dst[..from].fill(0.0);
                dst[to.max(from)..].fill(0.0);
                if from < to {
                    let s0 = (from as isize + off) as usize;
                    dst[from..to].copy_from_slice(&src[s0..s0 + (to - from)]);
                }
                for row in dst[j0..j1].chunks_exact_mut(g.ow) {
                    row[..lo].fill(0.0);
                    row[hi..].fill(0.0);
                }
            }
        }
    }
}
