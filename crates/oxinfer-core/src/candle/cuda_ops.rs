//! The embedder's own CUDA kernels (kernels.cu, built to PTX by build.rs) as candle ops: the
//! linear layers' bias add, the attention mask add, and the attention's head split and merge.
//!
//! Why: candle's broadcasting add and its strided copies compute every element's source index
//! with 64-bit divisions over all dims; on an H100 (Nsight Compute, float16, batch 256 x 128
//! tokens) they took ~75% of the pass: bias adds ~50%, head copies ~24%, at ~1/9 of memory
//! bandwidth, while the matmuls took ~8%. Each op here is one pass with 32-bit index math.
//! Inputs must be contiguous f32/f16/bf16 with fewer than 2^32 elements; callers fall back to
//! candle's ops otherwise ([`usable`]).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/kernels.ptx"));
const MODULE: &str = "oxinfer_kernels";

/// Whether `t` can go through these kernels: on a CUDA device, contiguous, f32/f16/bf16, and
/// small enough for 32-bit indices.
pub fn usable(t: &Tensor) -> bool {
    t.device().is_cuda()
        && t.is_contiguous()
        && matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && t.elem_count() < u32::MAX as usize
}

/// `x [.., n] + bias [n]`.
pub fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.apply_op2_no_bwd(bias, &BiasAdd)
}

/// `scores [b, heads, s, s] + mask [b, 1, 1, s]` (the mask broadcast over heads and queries).
pub fn mask_add(scores: &Tensor, mask: &Tensor) -> Result<Tensor> {
    scores.apply_op2_no_bwd(mask, &MaskAdd)
}

/// `qkv [b, s, 3 * heads * d]` -> `[3, b, heads, s, d]`: q, k and v, each heads-major.
pub fn split_heads(qkv: &Tensor, heads: usize) -> Result<Tensor> {
    qkv.apply_op1_no_bwd(&SplitHeads { heads })
}

/// `ctx [b, heads, s, d]` -> `[b, s, heads * d]`.
pub fn merge_heads(ctx: &Tensor) -> Result<Tensor> {
    ctx.apply_op1_no_bwd(&MergeHeads)
}

fn suffix(name: &str, dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::F16 => Ok("f16"),
        DType::BF16 => Ok("bf16"),
        other => candle_core::bail!("{name}: {other:?} is not a kernel dtype"),
    }
}

fn u32_of(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| candle_core::Error::Msg(format!("{what}: {n} is too large for the kernel")))
}

/// Runs kernel `name_<dtype>` (loaded once per device) with arguments `inputs..., out, count,
/// extra...` for `numel` outputs: one thread an output element, grid-stride beyond; with
/// `pairs`, its two-at-a-time twin `name2_<dtype>` and count = numel / 2.
fn launch<T: DeviceRepr>(
    dev: &CudaDevice,
    name: &str,
    dtype: DType,
    inputs: &[&CudaView<'_, T>],
    numel: usize,
    pairs: bool,
    extra: &[u32],
) -> Result<CudaSlice<T>> {
    let n = u32_of(if pairs { numel / 2 } else { numel }, name)?;
    let kernel = format!("{name}{}_{}", if pairs { "2" } else { "" }, suffix(name, dtype)?);
    let func = dev.get_or_load_custom_func(&kernel, MODULE, PTX)?;
    // SAFETY: the kernel writes every one of the `numel` elements.
    let out = unsafe { dev.alloc::<T>(numel)? };
    let mut builder = func.builder();
    for x in inputs {
        builder.arg(*x);
    }
    builder.arg(&out);
    builder.arg(&n);
    for e in extra {
        builder.arg(e);
    }
    // SAFETY: the arguments match the kernel's signature (kernels.cu), and its reads stay
    // within the inputs' checked shapes.
    unsafe { builder.launch(LaunchConfig::for_num_elems(n.max(1))) }.w()?;
    Ok(out)
}

/// Kernel `name` over one contiguous input.
fn unary(s: &CudaStorage, l: &Layout, name: &str, numel: usize, pairs: bool, extra: &[u32]) -> Result<CudaStorage> {
    let dev = s.device();
    let o = l.start_offset();
    let slice = match &s.slice {
        CudaStorageSlice::F32(x) => CudaStorageSlice::F32(launch(dev, name, DType::F32, &[&x.slice(o..)], numel, pairs, extra)?),
        CudaStorageSlice::F16(x) => CudaStorageSlice::F16(launch(dev, name, DType::F16, &[&x.slice(o..)], numel, pairs, extra)?),
        CudaStorageSlice::BF16(x) => CudaStorageSlice::BF16(launch(dev, name, DType::BF16, &[&x.slice(o..)], numel, pairs, extra)?),
        _ => candle_core::bail!("{name}: f32, f16 or bf16 expected"),
    };
    Ok(CudaStorage { slice, device: dev.clone() })
}

/// Kernel `name` over two contiguous inputs of one dtype.
#[allow(clippy::too_many_arguments)]
fn binary(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    name: &str,
    numel: usize,
    pairs: bool,
    extra: &[u32],
) -> Result<CudaStorage> {
    let dev = s1.device();
    let (o1, o2) = (l1.start_offset(), l2.start_offset());
    let slice = match (&s1.slice, &s2.slice) {
        (CudaStorageSlice::F32(a), CudaStorageSlice::F32(b)) => {
            CudaStorageSlice::F32(launch(dev, name, DType::F32, &[&a.slice(o1..), &b.slice(o2..)], numel, pairs, extra)?)
        }
        (CudaStorageSlice::F16(a), CudaStorageSlice::F16(b)) => {
            CudaStorageSlice::F16(launch(dev, name, DType::F16, &[&a.slice(o1..), &b.slice(o2..)], numel, pairs, extra)?)
        }
        (CudaStorageSlice::BF16(a), CudaStorageSlice::BF16(b)) => {
            CudaStorageSlice::BF16(launch(dev, name, DType::BF16, &[&a.slice(o1..), &b.slice(o2..)], numel, pairs, extra)?)
        }
        _ => candle_core::bail!("{name}: f32, f16 or bf16 inputs of one dtype expected"),
    };
    Ok(CudaStorage { slice, device: dev.clone() })
}

fn not_on_cpu(name: &str) -> Result<(CpuStorage, Shape)> {
    candle_core::bail!("{name} runs on CUDA only")
}

fn contiguous(name: &str, l: &Layout) -> Result<()> {
    if !l.is_contiguous() {
        candle_core::bail!("{name}: contiguous input expected");
    }
    Ok(())
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "oxinfer-bias-add"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<(CudaStorage, Shape)> {
        contiguous(self.name(), l1)?;
        contiguous(self.name(), l2)?;
        let n = l2.shape().elem_count();
        if l1.dims().last() != Some(&n) || l2.dims().len() != 1 || s1.dtype() != s2.dtype() {
            candle_core::bail!("{}: x {:?} and bias {:?} do not match", self.name(), l1.dims(), l2.dims());
        }
        // Pairs when no pair straddles a row and both buffers start on a pair.
        let pairs = n % 2 == 0 && l1.start_offset() % 2 == 0 && l2.start_offset() % 2 == 0;
        let n = if pairs { n / 2 } else { n };
        let out = binary(s1, l1, s2, l2, "bias_add", l1.shape().elem_count(), pairs, &[u32_of(n, self.name())?])?;
        Ok((out, l1.shape().clone()))
    }
}

struct MaskAdd;

impl CustomOp2 for MaskAdd {
    fn name(&self) -> &'static str {
        "oxinfer-mask-add"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<(CudaStorage, Shape)> {
        contiguous(self.name(), l1)?;
        contiguous(self.name(), l2)?;
        let (b, heads, q, s) = l1.shape().dims4()?;
        if q != s || l2.shape().elem_count() != b * s || s1.dtype() != s2.dtype() {
            candle_core::bail!("{}: scores {:?} and mask {:?} do not match", self.name(), l1.dims(), l2.dims());
        }
        let extra = [u32_of(s, self.name())?, u32_of(heads * s * s, self.name())?];
        let out = binary(s1, l1, s2, l2, "mask_add", l1.shape().elem_count(), false, &extra)?;
        Ok((out, l1.shape().clone()))
    }
}

struct SplitHeads {
    heads: usize,
}

impl CustomOp1 for SplitHeads {
    fn name(&self) -> &'static str {
        "oxinfer-split-heads"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        contiguous(self.name(), l)?;
        let (b, seq, h3) = l.shape().dims3()?;
        if self.heads == 0 || h3 % (3 * self.heads) != 0 {
            candle_core::bail!("{}: {h3} columns are not q, k, v of {} heads", self.name(), self.heads);
        }
        let d = h3 / 3 / self.heads;
        // Pairs when no pair straddles a head and the input starts on a pair.
        let pairs = d % 2 == 0 && l.start_offset() % 2 == 0;
        let extra = [b, seq, self.heads, if pairs { d / 2 } else { d }].map(|v| v as u32);
        let out = unary(s, l, "split_heads", b * seq * h3, pairs, &extra)?;
        Ok((out, Shape::from((3, b, self.heads, seq, d))))
    }
}

struct MergeHeads;

impl CustomOp1 for MergeHeads {
    fn name(&self) -> &'static str {
        "oxinfer-merge-heads"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        not_on_cpu(self.name())
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        contiguous(self.name(), l)?;
        let (b, heads, seq, d) = l.shape().dims4()?;
        let pairs = d % 2 == 0 && l.start_offset() % 2 == 0;
        let extra = [seq, heads, if pairs { d / 2 } else { d }].map(|v| v as u32);
        let out = unary(s, l, "merge_heads", b * heads * seq * d, pairs, &extra)?;
        Ok((out, Shape::from((b, seq, heads * d))))
    }
}
