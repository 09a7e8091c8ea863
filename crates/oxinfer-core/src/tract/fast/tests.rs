//! The fast kernels against tract's own ops, on the same inputs, over a grid of geometries.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, MaxPool, PaddingSpec, PoolSpec};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::{Add, Max, Min, Mul};
use tract_onnx::tract_core::ops::nn::{DataFormat, Softmax, SoftmaxKind};

use super::substitute;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Case {
    format: DataFormat,
    /// Input shape in that format.
    shape: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    padding: PaddingSpec,
}

fn spec(case: &Case, c: usize, o: usize) -> PoolSpec {
    PoolSpec {
        data_format: case.format,
        kernel_shape: case.kernel.iter().copied().collect(),
        padding: case.padding.clone(),
        dilations: Some(case.dilations.iter().copied().collect()),
        strides: Some(case.strides.iter().copied().collect()),
        input_channels: c,
        output_channels: o,
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let pads2 = [
        PaddingSpec::Valid,
        PaddingSpec::Explicit(tvec![1, 0], tvec![0, 1]),
        PaddingSpec::ExplicitOnnxPool(tvec![1, 1], tvec![1, 1], true),
        PaddingSpec::SameUpper,
        PaddingSpec::SameLower,
    ];
    for (format, lead) in [(DataFormat::NCHW, vec![2, 3]), (DataFormat::CHW, vec![3])] {
        for kernel in [[2, 2], [3, 3], [2, 3], [3, 1]] {
            for strides in [[1, 1], [2, 2], [1, 2], [3, 2]] {
                for dilations in [[1, 1], [2, 1]] {
                    for padding in &pads2 {
                        let mut shape = lead.clone();
                        shape.extend([24, 33]); // every case gives >= MIN_PIXELS outputs
                        out.push(Case {
                            format,
                            shape,
                            kernel: kernel.into(),
                            strides: strides.into(),
                            dilations: dilations.into(),
                            padding: padding.clone(),
                        });
                    }
                }
            }
        }
    }
    // 1-D, as Silero VAD's convolutions.
    for (kernel, stride, padding) in [
        (3, 1, PaddingSpec::Explicit(tvec![1], tvec![1])),
        (4, 2, PaddingSpec::Valid),
        (5, 3, PaddingSpec::ExplicitOnnxPool(tvec![2], tvec![1], true)),
        (2, 1, PaddingSpec::SameUpper),
    ] {
        out.push(Case {
            format: DataFormat::NCHW,
            shape: vec![2, 3, 200],
            kernel: vec![kernel],
            strides: vec![stride],
            dilations: vec![1],
            padding,
        });
    }
    out
}

/// Runs `model` as tract plans it, and again with the fast ops swapped in; returns both outputs
/// and whether a fast op took the place of `op_name`.
fn both(model: TypedModel, input: Tensor) -> TractResult<(Tensor, Tensor, bool)> {
    both_of(model, tvec![input])
}

/// [`both`] for a model of several inputs.
fn both_of(model: TypedModel, inputs: TVec<Tensor>) -> TractResult<(Tensor, Tensor, bool)> {
    let values = || inputs.iter().map(|t| t.clone().into_tvalue()).collect::<TVec<_>>();
    let reference = model.clone().into_runnable()?.run(values())?;
    let mut fast = model;
    substitute(&mut fast)?;
    let swapped = fast.nodes().iter().any(|n| n.op().name().starts_with("Fast"));
    let got = fast.into_runnable()?.run(values())?;
    Ok((reference[0].clone().into_tensor(), got[0].clone().into_tensor(), swapped))
}

fn floats(t: &Tensor) -> TractResult<Vec<f32>> {
    Ok(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec())
}

fn input_for(case: &Case, seed: u64) -> Tensor {
    let len = case.shape.iter().product();
    Tensor::from_shape(&case.shape, &values(len, seed)).expect("shape and data agree")
}

/// The input channels of a case: the axis before the spatial ones.
fn channels(case: &Case) -> usize {
    case.shape[case.shape.len() - case.kernel.len() - 1]
}

/// A case over `shape` with `kernel`, stride 1, no dilation, no padding.
fn plain(shape: Vec<usize>, kernel: Vec<usize>, padding: PaddingSpec) -> Case {
    let ones = vec![1; kernel.len()];
    Case { format: DataFormat::NCHW, shape, kernel, strides: ones.clone(), dilations: ones, padding }
}

/// A model of one tract Conv over `case`'s input with `o` output channels in `group` groups:
/// constant `weights` (a second model input when `None`) and `bias`. Returns it with the
/// conv's output, not yet selected as the model's.
fn conv_model(
    case: &Case,
    o: usize,
    group: usize,
    weights: Option<Tensor>,
    bias: Tensor,
) -> TractResult<(TypedModel, OutletId)> {
    let c = channels(case);
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(&case.shape))?;
    let w = match weights {
        Some(w) => model.add_const("w", w)?,
        None => {
            let mut shape = vec![o, c / group];
            shape.extend(&case.kernel);
            model.add_source("w", f32::fact(&shape))?
        }
    };
    let b = model.add_const("b", bias)?;
    let conv = Conv { pool_spec: spec(case, c, o), kernel_fmt: KernelFormat::OIHW, group, q_params: None };
    let y = model.wire_node("conv", conv, &[x, w, b])?[0];
    Ok((model, y))
}

#[test]
fn maxpool_equals_tracts_on_every_geometry() -> TractResult<()> {
    let mut checked = 0;
    for (i, case) in cases().iter().enumerate() {
        // ONNX requires pads smaller than the kernel: a window entirely in padding has no max.
        if let PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, _) = &case.padding {
            if b.iter().chain(a.iter()).zip(case.kernel.iter().chain(&case.kernel)).any(|(p, k)| p >= k) {
                continue;
            }
        }
        let c = channels(case);
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(&case.shape))?;
        let y = model.wire_node("pool", MaxPool::new(spec(case, c, c), None), &[x])?;
        model.select_output_outlets(&y)?;
        let (want, got, swapped) = both(model, input_for(case, i as u64))?;
        assert!(swapped, "case {i}: not swapped");
        assert_eq!(want.shape(), got.shape(), "case {i}");
        let (want, got) = (floats(&want)?, floats(&got)?);
        assert_eq!(
            want, got,
            "case {i}: {:?} {:?} {:?} {:?} {:?}",
            case.shape, case.kernel, case.strides, case.dilations, case.padding
        );
        checked += 1;
    }
    assert!(checked > 200, "only {checked} cases ran");
    Ok(())
}

#[test]
fn conv_equals_tracts_on_every_geometry() -> TractResult<()> {
    for (i, case) in cases().iter().enumerate() {
        let c = channels(case);
        // Blocks of 4 and 1, or of 4, 2 and 1 output channels.
        let o = if i % 4 < 2 { 5 } else { 7 };
        let mut kshape = vec![o, c];
        kshape.extend(&case.kernel);
        let weights = Tensor::from_shape(&kshape, &values(kshape.iter().product(), 1000 + i as u64))?;
        // Alternate a bias vector, a zero scalar and a non-zero scalar.
        let bias = match i % 3 {
            0 => tensor1(&values(o, 2000 + i as u64)),
            1 => tensor0(0f32),
            _ => tensor0(0.25f32),
        };
        let (mut model, mut y) = conv_model(case, o, 1, Some(weights), bias)?;
        // Every other case has a ReLU after, as tract writes it: max(x, 0).
        if i % 2 == 1 {
            let zero = model.add_const("zero", Tensor::zero::<f32>(&vec![1; case.shape.len()])?)?;
            y = model.wire_node("relu", TypedBinOp(Box::new(Max), None), &[y, zero])?[0];
        }
        model.select_output_outlets(&[y])?;
        let mut folded = model.clone();
        substitute(&mut folded)?;
        let folded = folded.into_compact()?;
        let left = folded.nodes().iter().filter(|n| n.op().name() == "Max").count();
        assert_eq!(left, 0, "case {i}: the ReLU was not folded");
        // These few input values per output take strided.rs on an AVX2 CPU without AVX-512.
        if super::strided::available() && !super::direct::available() {
            let conv = folded.nodes().iter().find(|n| n.op().name() == "FastConv").expect("swapped");
            assert!(conv.op().info()?.iter().any(|l| l.contains("strided direct")), "case {i}: not on strided.rs");
        }
        assert_swapped_and_close(i, case, model)?;
    }
    Ok(())
}

/// Runs `model` on case `i`'s input by tract and with the fast kernels swapped in: asserts a
/// swap happened and the outputs agree within 1e-5.
fn assert_swapped_and_close(i: usize, case: &Case, model: TypedModel) -> TractResult<()> {
    let (want, got, swapped) = both(model, input_for(case, i as u64))?;
    assert!(swapped, "case {i}: not swapped");
    assert_eq!(want.shape(), got.shape(), "case {i}");
    let worst = floats(&want)?.iter().zip(floats(&got)?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(
        worst < 1e-5,
        "case {i}: worst |tract - fast| = {worst:e} for {:?} {:?} {:?} {:?} {:?}",
        case.shape,
        case.kernel,
        case.strides,
        case.dilations,
        case.padding
    );
    Ok(())
}

#[test]
fn depthwise_equals_tracts_on_every_geometry() -> TractResult<()> {
    let mut checked = 0;
    for (i, case) in cases().iter().enumerate() {
        let c = channels(case);
        if c < 2 {
            continue;
        }
        let mut kshape = vec![c, 1];
        kshape.extend(&case.kernel);
        let weights = Tensor::from_shape(&kshape, &values(kshape.iter().product(), 3000 + i as u64))?;
        let bias = if i % 2 == 0 { tensor1(&values(c, 4000 + i as u64)) } else { tensor0(0f32) };
        let (mut model, mut y) = conv_model(case, c, c, Some(weights), bias)?;
        // Every third case has a Clip after, as tract writes one: max(x, 0) then min(x, 0.5)
        // (a bound the outputs cross, as ReLU6's does on real activations).
        if i % 3 == 1 {
            let rank = case.shape.len();
            let zero = model.add_const("zero", Tensor::zero::<f32>(&vec![1; rank])?)?;
            let half = model.add_const("half", tensor0(0.5f32).broadcast_into_rank(rank)?)?;
            y = model.wire_node("clip.max", TypedBinOp(Box::new(Max), None), &[y, zero])?[0];
            y = model.wire_node("clip.min", TypedBinOp(Box::new(Min), None), &[y, half])?[0];
        }
        model.select_output_outlets(&[y])?;
        let mut folded = model.clone();
        substitute(&mut folded)?;
        let left = folded.into_compact()?.nodes().iter().filter(|n| ["Max", "Min"].contains(&&*n.op().name())).count();
        assert_eq!(left, 0, "case {i}: the clip was not folded");
        assert_swapped_and_close(i, case, model)?;
        checked += 1;
    }
    assert!(checked > 100, "only {checked} cases ran");
    Ok(())
}

/// 1x1 convolutions as tract declutters them (an EinSum, then a bias Add), with and without a
/// batch axis, in 1-D and 2-D, output channels not a multiple of eight, planes of 1 to 792
/// pixels, and a Clip after: each becomes one FastPointwise, equal to tract's.
#[test]
fn pointwise_equals_tracts_einsum() -> TractResult<()> {
    let shapes: [(&[usize], usize); 7] = [
        (&[2, 8, 24, 33], 48),
        (&[1, 56, 2, 2], 13),
        (&[3, 5, 1, 1], 9),
        (&[1, 112, 3, 4], 8),
        (&[2, 16, 7], 21),
        (&[4, 3, 5], 2),
        (&[1, 24, 6, 2], 30),
    ];
    for (i, &(shape, o)) in shapes.iter().enumerate() {
        let kernel = vec![1; shape.len() - 2];
        let case = plain(shape.to_vec(), kernel.clone(), PaddingSpec::Valid);
        let c = shape[1];
        let mut kshape = vec![o, c];
        kshape.extend(&kernel);
        let weights = Tensor::from_shape(&kshape, &values(o * c, 5000 + i as u64))?;
        let bias = if i % 2 == 0 { tensor1(&values(o, 6000 + i as u64)) } else { tensor0(0f32) };
        let (mut model, mut y) = conv_model(&case, o, 1, Some(weights), bias)?;
        if i % 3 != 2 {
            let rank = shape.len();
            let lo = model.add_const("lo", tensor0(-0.25f32).broadcast_into_rank(rank)?)?;
            let hi = model.add_const("hi", tensor0(0.5f32).broadcast_into_rank(rank)?)?;
            y = model.wire_node("clip.max", TypedBinOp(Box::new(Max), None), &[y, lo])?[0];
            y = model.wire_node("clip.min", TypedBinOp(Box::new(Min), None), &[y, hi])?[0];
        }
        model.select_output_outlets(&[y])?;
        let model = model.into_decluttered()?;
        assert!(model.nodes().iter().any(|n| n.op_is::<EinSum>()), "case {i}: tract made no EinSum of the 1x1 convolution");
        let input = input_for(&case, 7000 + i as u64);
        let (want, got, _) = both(model.clone(), input)?;
        let mut fast = model;
        substitute(&mut fast)?;
        let fast = fast.into_compact()?;
        let names: Vec<String> = fast.nodes().iter().map(|n| n.op().name().to_string()).collect();
        assert!(names.iter().any(|n| n == "FastPointwise"), "case {i}: not swapped: {names:?}");
        assert!(!names.iter().any(|n| ["Add", "Max", "Min", "EinSum"].contains(&n.as_str())), "case {i}: left {names:?}");
        assert_eq!(want.shape(), got.shape(), "case {i}");
        let worst = floats(&want)?.iter().zip(floats(&got)?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "case {i}: worst |tract - fast| = {worst:e} for {shape:?} -> {o}");
    }
    Ok(())
}

/// A u8 quantization read by two dequantizations (its own parameters, and others), and an i8
/// one read by one: each dequantization becomes a Requantize equal to tract's pair, clamping
/// included (inputs reach past both integer ranges).
/// A max pool of quantized values (u8 and i8, with padding) moves before the quantization,
/// which then joins its dequantization: the same values as tract's pool of the 8-bit values.
#[test]
fn a_pool_of_quantized_values_pools_first() -> TractResult<()> {
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};
    let case = Case {
        strides: vec![2, 2],
        ..plain(vec![2, 3, 9, 11], vec![3, 3], PaddingSpec::ExplicitOnnxPool(tvec![1, 1], tvec![1, 1], false))
    };
    let quantizers: [(Box<dyn tract_onnx::tract_core::ops::element_wise::ElementWiseMiniOp>, i32); 2] = [
        (Box::new(QuantizeLinearU8 { scale: 1.0 / 0.05, zero_point: 120 }), 120),
        (Box::new(QuantizeLinearI8 { scale: 1.0 / 0.05, zero_point: -7 }), -7),
    ];
    for (i, (quantize, zero_point)) in quantizers.into_iter().enumerate() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(&case.shape))?;
        let q = model.wire_node("q", ElementWiseOp(quantize, None), &[x])?[0];
        let pooled = model.wire_node("pool", MaxPool::new(spec(&case, 3, 3), None), &[q])?[0];
        let y = model.wire_node("dq", DequantizeLinearF32 { scale: 0.05, zero_point }, &[pooled])?[0];
        model.select_output_outlets(&[y])?;
        let data: Vec<f32> = values(case.shape.iter().product(), 31 + i as u64).iter().map(|v| v * 9.0).collect();
        let input = Tensor::from_shape(&case.shape, &data)?;
        let want = model.clone().into_runnable()?.run(tvec![input.clone().into_tvalue()])?;
        let mut fast = model;
        substitute(&mut fast)?;
        let fast = fast.into_compact()?;
        let names: Vec<String> = fast.nodes().iter().map(|n| n.op().name().to_string()).collect();
        assert!(names.iter().any(|n| n == "FastMaxPool") && !names.iter().any(|n| n == "MaxPool"), "{names:?}");
        assert!(names.iter().any(|n| n == "Requantize"), "the moved quantization joins its dequantization: {names:?}");
        let got = fast.into_runnable()?.run(tvec![input.into_tvalue()])?;
        let (w, g) = (floats(&want[0])?, floats(&got[0])?);
        assert_eq!(want[0].shape(), got[0].shape());
        let worst = w.iter().zip(&g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "case {i}: worst |tract - fast| = {worst:e}");
    }
    Ok(())
}

#[test]
fn requantize_equals_tracts_quantize_then_dequantize() -> TractResult<()> {
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    use tract_onnx::tract_core::ops::quant::{DequantizeLinearF32, QuantizeLinearI8, QuantizeLinearU8};
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([3, 41]))?;
    let q8 = model.wire_node("q.u8", ElementWiseOp(Box::new(QuantizeLinearU8 { scale: 1.0 / 0.05, zero_point: 120 }), None), &[x])?[0];
    let a = model.wire_node("dq.a", DequantizeLinearF32 { scale: 0.05, zero_point: 120 }, &[q8])?[0];
    let b = model.wire_node("dq.b", DequantizeLinearF32 { scale: 0.02, zero_point: 3 }, &[q8])?[0];
    let qi = model.wire_node("q.i8", ElementWiseOp(Box::new(QuantizeLinearI8 { scale: 1.0 / 0.03, zero_point: -5 }), None), &[x])?[0];
    let c = model.wire_node("dq.c", DequantizeLinearF32 { scale: 0.03, zero_point: -5 }, &[qi])?[0];
    model.select_output_outlets(&[a, b, c])?;
    let input = Tensor::from_shape(&[3, 41], &values(123, 77).iter().map(|v| v * 9.0).collect::<Vec<f32>>())?;
    let want = model.clone().into_runnable()?.run(tvec![input.clone().into_tvalue()])?;
    let mut fast = model;
    substitute(&mut fast)?;
    let fast = fast.into_compact()?;
    let names: Vec<String> = fast.nodes().iter().map(|n| n.op().name().to_string()).collect();
    assert_eq!(names.iter().filter(|n| *n == "Requantize").count(), 3, "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("Quantize") || n.starts_with("Dequantize")), "{names:?}");
    let got = fast.into_runnable()?.run(tvec![input.into_tvalue()])?;
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        let (w, g) = (floats(w)?, floats(g)?);
        let worst = w.iter().zip(&g).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-6, "output {i}: worst |tract - fast| = {worst:e}");
        let (lo, hi) = w.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(w.iter().filter(|&&v| v == lo || v == hi).count() > 2, "output {i}: the range clamps");
    }
    Ok(())
}

#[test]
fn leaves_what_it_does_not_cover() -> TractResult<()> {
    let untouched = |case: Case, o: usize, group: usize, weights: Option<Tensor>| -> TractResult<()> {
        let (mut model, y) = conv_model(&case, o, group, weights, tensor0(0f32))?;
        model.select_output_outlets(&[y])?;
        substitute(&mut model)?;
        assert!(model.nodes().iter().all(|n| !n.op().name().starts_with("Fast")), "swapped: {:?}", case.shape);
        Ok(())
    };
    // Two groups.
    untouched(
        plain(vec![2, 4, 24, 33], vec![2, 2], PaddingSpec::Valid),
        6,
        2,
        Some(Tensor::from_shape(&[6, 2, 2, 2], &values(48, 7))?),
    )?;
    // Weights computed at run time (a second input).
    untouched(plain(vec![2, 3, 24, 33], vec![2, 2], PaddingSpec::Valid), 5, 1, None)?;
    // Four output pixels (Silero VAD's STFT shape).
    let mut stft = plain(vec![1, 1, 640], vec![256], PaddingSpec::Valid);
    stft.strides = vec![128];
    untouched(stft, 8, 1, Some(Tensor::from_shape(&[8, 1, 256], &values(8 * 256, 9))?))?;
    Ok(())
}

#[test]
fn conv_on_two_threads_equals_tracts() -> TractResult<()> {
    use tract_linalg::multithread::{Executor, multithread_tract_scope};
    // A batch (split by image), then one image large enough to split its matmul: both over
    // PARALLEL_MACS.
    for (shape, o) in [(vec![4usize, 32, 32, 32], 32usize), (vec![1, 64, 32, 32], 64)] {
        let c = shape[1];
        let case = plain(shape.clone(), vec![3, 3], PaddingSpec::Explicit(tvec![1, 1], tvec![1, 1]));
        let weights = Tensor::from_shape(&[o, c, 3, 3], &values(o * c * 9, 11))?;
        let (mut model, y) = conv_model(&case, o, 1, Some(weights), tensor1(&values(o, 12)))?;
        model.select_output_outlets(&[y])?;
        let input = input_for(&case, 13);
        let want = floats(&model.clone().into_runnable()?.run(tvec!(input.clone().into_tvalue()))?[0])?;
        let mut fast = model;
        substitute(&mut fast)?;
        let plan = fast.into_runnable()?;
        let got = multithread_tract_scope(Executor::multithread(2), || plan.run(tvec!(input.into_tvalue())))?;
        // The batch takes the Winograd path, whose rounding scales with the outputs.
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = want.iter().zip(floats(&got[0])?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5 * scale, "{shape:?}: worst |tract - fast| = {worst:e}, scale {scale}");
    }
    // A lone image under PARALLEL_MACS but over SHARE_WORK (a ResNet stem: 7x7, stride 2):
    // its product's columns are shared with the pool's helpers.
    let case = Case { strides: vec![2, 2], ..plain(vec![1, 3, 64, 64], vec![7, 7], PaddingSpec::Explicit(tvec![3, 3], tvec![3, 3])) };
    let weights = Tensor::from_shape(&[16, 3, 7, 7], &values(16 * 147, 14))?;
    let (mut model, y) = conv_model(&case, 16, 1, Some(weights), tensor1(&values(16, 15)))?;
    model.select_output_outlets(&[y])?;
    let input = input_for(&case, 16);
    let want = floats(&model.clone().into_runnable()?.run(tvec!(input.clone().into_tvalue()))?[0])?;
    let mut fast = model;
    substitute(&mut fast)?;
    let plan = fast.into_runnable()?;
    let got = multithread_tract_scope(Executor::multithread(2), || plan.run(tvec!(input.into_tvalue())))?;
    let worst = want.iter().zip(floats(&got[0])?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4, "stem: worst |tract - fast| = {worst:e}");
    Ok(())
}

/// A model of one tract EinSum `expr` of an input of `x_shape` (its first dim symbolic when
/// `symbolic_batch`) by constant `weights`, plus a constant `bias` when given.
fn einsum_model(
    expr: &str,
    x_shape: &[usize],
    symbolic_batch: bool,
    weights: Tensor,
    bias: Option<Tensor>,
) -> TractResult<TypedModel> {
    let mut model = TypedModel::default();
    let mut dims: TVec<TDim> = x_shape.iter().map(|&d| d.into()).collect();
    if symbolic_batch {
        dims[0] = model.symbols.sym("N").into();
    }
    let x = model.add_source("x", f32::fact(&*dims))?;
    let w = model.add_const("w", weights)?;
    let mut y = model.wire_node("einsum", EinSum::new(expr.parse()?, f32::datum_type()), &[x, w])?[0];
    if let Some(bias) = bias {
        // Typed binary ops take operands of one rank: ones before the bias's own dims.
        let rank = model.outlet_fact(y)?.rank();
        let mut shape = vec![1; rank - bias.rank()];
        shape.extend(bias.shape());
        let b = model.add_const("b", bias.into_shape(&shape)?)?;
        y = model.wire_node("bias", TypedBinOp(Box::new(Add), None), &[b, y])?[0];
    }
    model.select_output_outlets(&[y])?;
    Ok(model)
}

/// The largest |a - b| over two f32 tensors of one shape.
fn worst_difference(want: &Tensor, got: &Tensor) -> TractResult<f32> {
    tract_onnx::tract_core::internal::ensure!(want.shape() == got.shape(), "shapes {:?} and {:?}", want.shape(), got.shape());
    Ok(floats(want)?.iter().zip(floats(got)?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max))
}

#[test]
fn matmul_equals_tracts() -> TractResult<()> {
    // (expr, input shape, weight shape, bias shape): the projections of a transformer (one and
    // two contracted axes), a plain matrix, several column axes, and a row count of 1.
    let cases: [(&str, &[usize], &[usize], Option<&[usize]>); 8] = [
        ("amk,kn->amn", &[2, 5, 7], &[7, 9], Some(&[1, 1, 9])),
        ("amk,kn->amn", &[3, 17, 40], &[40, 33], Some(&[33])),
        ("amk,kn->amn", &[2, 5, 7], &[7, 9], None),
        ("ambk,bkn->amn", &[2, 6, 3, 4], &[3, 4, 10], Some(&[1, 1, 10])),
        ("mk,kn->mn", &[130, 67], &[67, 45], Some(&[1, 45])),
        ("amk,knp->amnp", &[2, 5, 7], &[7, 3, 2], Some(&[3, 2])),
        ("mk,kn->mn", &[1, 16], &[16, 8], None),
        ("amk,kn->amn", &[4, 1, 300], &[300, 1], Some(&[1])),
    ];
    for (i, (expr, x_shape, w_shape, bias_shape)) in cases.into_iter().enumerate() {
        for symbolic in [false, true] {
            let seed = 100 * i as u64;
            let weights = Tensor::from_shape(w_shape, &values(w_shape.iter().product(), seed + 1))?;
            let bias = bias_shape.map(|s| Tensor::from_shape(s, &values(s.iter().product(), seed + 2))).transpose()?;
            let model = einsum_model(expr, x_shape, symbolic, weights, bias.clone())?;
            let mut fast = model.clone();
            substitute(&mut fast)?;
            let names: Vec<String> = fast.into_compact()?.nodes().iter().map(|n| n.op().name().to_string()).collect();
            assert!(names.iter().any(|n| n == "FastMatMul"), "case {i} ({expr}): not swapped: {names:?}");
            if bias.is_some() {
                assert!(!names.iter().any(|n| n == "Add"), "case {i} ({expr}): bias not folded: {names:?}");
            }
            let x = Tensor::from_shape(x_shape, &values(x_shape.iter().product(), seed + 3))?;
            let (want, got, _) = both(model, x)?;
            let worst = worst_difference(&want, &got)?;
            assert!(worst < 1e-4, "case {i} ({expr}, symbolic {symbolic}): worst |tract - fast| = {worst:e}");
        }
    }
    Ok(())
}

/// What tract's declutter makes of a batch-1 encoder's products when the shapes are fixed:
/// the batch axis of one summed away (`amk,kn->mn`) or added back (`mk,kn->amn`,
/// `mbk,bkn->amn`, `mbk,nbk->abmn`, `abmk,kbn->mbn`). Each is swapped and equals tract's; an
/// axis summed over more than one value is not swapped.
#[test]
fn products_with_axes_of_one_are_swapped() -> TractResult<()> {
    let names = |model: &TypedModel| -> TractResult<Vec<String>> {
        let mut model = model.clone();
        substitute(&mut model)?;
        Ok(model.into_compact()?.nodes().iter().map(|n| n.op().name().to_string()).collect())
    };
    let by_weights: [(&str, &[usize], &[usize], Option<&[usize]>); 4] = [
        ("amk,kn->mn", &[1, 5, 7], &[7, 9], Some(&[9])),
        ("mk,kn->amn", &[5, 7], &[7, 9], Some(&[1, 1, 9])),
        ("mbk,bkn->amn", &[6, 3, 4], &[3, 4, 10], Some(&[1, 1, 10])),
        ("amk,kn->mn", &[1, 5, 7], &[7, 9], None),
    ];
    for (i, (expr, x_shape, w_shape, bias_shape)) in by_weights.into_iter().enumerate() {
        let seed = 700 + 10 * i as u64;
        let weights = Tensor::from_shape(w_shape, &values(w_shape.iter().product(), seed))?;
        let bias = bias_shape.map(|s| Tensor::from_shape(s, &values(s.iter().product(), seed + 1))).transpose()?;
        let model = einsum_model(expr, x_shape, false, weights, bias)?;
        let got = names(&model)?;
        assert!(got.iter().any(|n| n == "FastMatMul") && !got.iter().any(|n| n == "Add"), "{expr}: {got:?}");
        let x = Tensor::from_shape(x_shape, &values(x_shape.iter().product(), seed + 2))?;
        let (want, got, _) = both(model, x)?;
        let worst = worst_difference(&want, &got)?;
        assert!(worst < 1e-4, "{expr}: worst |tract - fast| = {worst:e}");
    }
    let activations: [(&str, &[usize], &[usize]); 2] =
        [("mbk,nbk->abmn", &[5, 3, 4], &[6, 3, 4]), ("abmk,kbn->mbn", &[1, 3, 5, 6], &[6, 3, 4])];
    for (i, (expr, sa, sb)) in activations.into_iter().enumerate() {
        let model = einsum2_model(expr, sa, sb, false)?;
        assert!(names(&model)?.iter().any(|n| n == "FastBatchedMatMul"), "{expr}: not swapped");
        let a = Tensor::from_shape(sa, &values(sa.iter().product(), 800 + i as u64))?;
        let b = Tensor::from_shape(sb, &values(sb.iter().product(), 900 + i as u64))?;
        let (want, got, _) = both_of(model, tvec![a, b])?;
        let worst = worst_difference(&want, &got)?;
        assert!(worst < 1e-5, "{expr}: worst |tract - fast| = {worst:e}");
    }
    // Summed over two values: a real sum, which neither kernel does.
    let w = Tensor::from_shape(&[7, 9], &values(63, 5))?;
    let got = names(&einsum_model("amk,kn->mn", &[2, 5, 7], false, w, None)?)?;
    assert!(!got.iter().any(|n| n.starts_with("Fast")), "sum over a = 2: swapped: {got:?}");
    let got = names(&einsum2_model("abmk,kbn->mbn", &[2, 3, 5, 6], &[6, 3, 4], false)?)?;
    assert!(!got.iter().any(|n| n.starts_with("Fast")), "batched sum over a = 2: swapped: {got:?}");
    Ok(())
}

#[test]
fn matmul_leaves_what_it_does_not_cover() -> TractResult<()> {
    let names = |model: TypedModel| -> TractResult<Vec<String>> {
        let mut model = model;
        substitute(&mut model)?;
        Ok(model.into_compact()?.nodes().iter().map(|n| n.op().name().to_string()).collect())
    };
    let w = |shape: &[usize]| Tensor::from_shape(shape, &values(shape.iter().product(), 5));
    // Weights stored transposed (k last), and weights sharing an axis with the rows (batched;
    // FastBatchedMatMul's).
    let cases: [(&str, &[usize], &[usize]); 2] = [("amk,nk->amn", &[2, 5, 7], &[9, 7]), ("amk,akn->amn", &[2, 5, 7], &[2, 7, 3])];
    for (expr, x, ws) in cases {
        let got = names(einsum_model(expr, x, false, w(ws)?, None)?)?;
        assert!(!got.iter().any(|n| n == "FastMatMul"), "{expr}: swapped: {got:?}");
    }
    // A bias that varies by row is a plain Add after the product.
    let got = names(einsum_model("amk,kn->amn", &[2, 5, 7], false, w(&[7, 9])?, Some(w(&[5, 1])?))?)?;
    assert!(got.iter().any(|n| n == "FastMatMul") && got.iter().any(|n| n == "Add"), "row bias: {got:?}");
    // An activation by an activation stays tract's.
    let mut model = TypedModel::default();
    let a = model.add_source("a", f32::fact([2, 5, 7]))?;
    let b = model.add_source("b", f32::fact([7, 9]))?;
    let y = model.wire_node("einsum", EinSum::new("amk,kn->amn".parse()?, f32::datum_type()), &[a, b])?;
    model.select_output_outlets(&y)?;
    let got = names(model)?;
    assert!(!got.iter().any(|n| n.starts_with("Fast")), "two activations: swapped: {got:?}");
    Ok(())
}

#[test]
fn matmul_on_two_threads_equals_tracts() -> TractResult<()> {
    use tract_linalg::multithread::{Executor, multithread_tract_scope};
    // 2 x 128 rows by 384 x 384: over PARALLEL_MACS, so gemm splits it.
    let weights = Tensor::from_shape(&[384, 384], &values(384 * 384, 21))?;
    let model = einsum_model("amk,kn->amn", &[2, 128, 384], true, weights, Some(tensor1(&values(384, 22))))?;
    let x = Tensor::from_shape(&[2, 128, 384], &values(2 * 128 * 384, 23))?;
    let want = model.clone().into_runnable()?.run(tvec!(x.clone().into_tvalue()))?;
    let mut fast = model;
    substitute(&mut fast)?;
    let plan = fast.into_runnable()?;
    let got = multithread_tract_scope(Executor::multithread(2), || plan.run(tvec!(x.into_tvalue())))?;
    let worst = worst_difference(&want[0].clone().into_tensor(), &got[0].clone().into_tensor())?;
    assert!(worst < 1e-4, "worst |tract - fast| = {worst:e}");
    Ok(())
}

/// A model of one tract EinSum `expr` of two inputs (activations) of these shapes, the first
/// dim of both symbolic (one symbol) when `symbolic_batch`.
fn einsum2_model(expr: &str, a: &[usize], b: &[usize], symbolic_batch: bool) -> TractResult<TypedModel> {
    let mut model = TypedModel::default();
    let batch: TDim = model.symbols.sym("N").into();
    let fact = |shape: &[usize]| {
        let mut dims: TVec<TDim> = shape.iter().map(|&d| d.into()).collect();
        if symbolic_batch {
            dims[0] = batch.clone();
        }
        f32::fact(&*dims)
    };
    let a = model.add_source("a", fact(a))?;
    let b = model.add_source("b", fact(b))?;
    let y = model.wire_node("einsum", EinSum::new(expr.parse()?, f32::datum_type()), &[a, b])?;
    model.select_output_outlets(&y)?;
    Ok(model)
}

#[test]
fn batched_matmul_equals_tracts() -> TractResult<()> {
    // Attention's two products (as tract declutters BERT's), a batched and a plain product,
    // a transposed first operand, and a transposed output.
    let cases: [(&str, &[usize], &[usize]); 6] = [
        ("ambk,anbk->abmn", &[2, 5, 3, 4], &[2, 6, 3, 4]),
        ("abmk,akbn->ambn", &[2, 3, 5, 6], &[2, 6, 3, 4]),
        ("bmk,bkn->bmn", &[3, 4, 5], &[3, 5, 6]),
        ("mk,kn->mn", &[7, 5], &[5, 9]),
        ("km,kn->mn", &[5, 7], &[5, 9]),
        ("bmk,bnk->bnm", &[3, 4, 5], &[3, 6, 5]),
    ];
    for (i, (expr, sa, sb)) in cases.into_iter().enumerate() {
        for symbolic in [false, true] {
            if symbolic && !expr.starts_with(|c| expr.split(',').nth(1).is_some_and(|b| b.starts_with(c))) {
                continue; // a symbolic batch needs the first axis shared by both inputs
            }
            let model = einsum2_model(expr, sa, sb, symbolic)?;
            let a = Tensor::from_shape(sa, &values(sa.iter().product(), 300 + i as u64))?;
            let b = Tensor::from_shape(sb, &values(sb.iter().product(), 400 + i as u64))?;
            let (want, got, swapped) = both_of(model, tvec![a, b])?;
            assert!(swapped, "case {i} ({expr}, symbolic {symbolic}): not swapped");
            let worst = worst_difference(&want, &got)?;
            assert!(worst < 1e-5, "case {i} ({expr}, symbolic {symbolic}): worst |tract - fast| = {worst:e}");
        }
    }
    Ok(())
}

#[test]
fn batched_matmul_leaves_what_it_does_not_cover() -> TractResult<()> {
    // No column axis (a matrix-vector product), and an axis summed over one input only.
    let cases: [(&str, &[usize], &[usize]); 2] = [("bmk,bk->bm", &[3, 4, 5], &[3, 5]), ("mkj,kn->mn", &[4, 5, 2], &[5, 6])];
    for (expr, sa, sb) in cases {
        let mut model = einsum2_model(expr, sa, sb, false)?;
        substitute(&mut model)?;
        assert!(!model.nodes().iter().any(|n| n.op().name().starts_with("Fast")), "{expr}: swapped");
    }
    Ok(())
}

/// Attention's scores times a constant scalar: the `Mul` is folded into the product (gemm's
/// scale); a per-column constant, or a product that is also a model output, keeps its `Mul`.
#[test]
fn batched_matmul_folds_a_scalar_scale() -> TractResult<()> {
    let (sa, sb) = ([2usize, 5, 3, 4], [2usize, 6, 3, 4]);
    for (i, (scale_shape, also_output, folded)) in
        [(&[1usize, 1, 1, 1][..], false, true), (&[1, 1, 1, 6][..], false, false), (&[1, 1, 1, 1][..], true, false)].into_iter().enumerate()
    {
        let mut model = einsum2_model("ambk,anbk->abmn", &sa, &sb, false)?;
        let scores = model.output_outlets()?[0];
        let len = scale_shape.iter().product();
        let k = model.add_const("k", Tensor::from_shape(scale_shape, &values(len, 500 + i as u64))?)?;
        let y = model.wire_node("scaled", TypedBinOp(Box::new(Mul), None), &[scores, k])?[0];
        model.select_output_outlets(&if also_output { vec![y, scores] } else { vec![y] })?;
        let a = Tensor::from_shape(&sa, &values(sa.iter().product(), 510 + i as u64))?;
        let b = Tensor::from_shape(&sb, &values(sb.iter().product(), 520 + i as u64))?;
        let mut fast = model.clone();
        substitute(&mut fast)?;
        let names: Vec<String> = fast.clone().into_compact()?.nodes().iter().map(|n| n.op().name().to_string()).collect();
        assert!(names.iter().any(|n| n == "FastBatchedMatMul"), "case {i}: {names:?}");
        assert_eq!(names.iter().any(|n| n == "Mul"), !folded, "case {i}: {names:?}");
        let (want, got, _) = both_of(model, tvec![a, b])?;
        let worst = worst_difference(&want, &got)?;
        assert!(worst < 1e-5, "case {i}: worst |tract - fast| = {worst:e}");
    }
    Ok(())
}

#[test]
fn batched_matmul_on_two_threads_equals_tracts() -> TractResult<()> {
    use tract_linalg::multithread::{Executor, multithread_tract_scope};
    // 4 sentences x 12 heads of 128 x 128 x 32: over PARALLEL_MACS, so the heads are split.
    let shape = [4, 128, 12, 32];
    let model = einsum2_model("ambk,anbk->abmn", &shape, &shape, true)?;
    let a = Tensor::from_shape(&shape, &values(shape.iter().product(), 31))?;
    let b = Tensor::from_shape(&shape, &values(shape.iter().product(), 32))?;
    let inputs = || tvec![a.clone().into_tvalue(), b.clone().into_tvalue()];
    let want = model.clone().into_runnable()?.run(inputs())?;
    let mut fast = model;
    substitute(&mut fast)?;
    let plan = fast.into_runnable()?;
    let got = multithread_tract_scope(Executor::multithread(2), || plan.run(inputs()))?;
    let worst = worst_difference(&want[0].clone().into_tensor(), &got[0].clone().into_tensor())?;
    assert!(worst < 1e-4, "worst |tract - fast| = {worst:e}");
    Ok(())
}

fn add_node(model: &mut TypedModel, name: &str, a: OutletId, b: OutletId) -> TractResult<OutletId> {
    Ok(model.wire_node(name, TypedBinOp(Box::new(Add), None), &[a, b])?[0])
}

/// Each case as an Add and as a Mul (both FastBroadcast's).
#[test]
fn add_and_mul_equal_tracts_on_every_broadcast() -> TractResult<()> {
    // Same shapes, the attention mask over heads and queries, a value per row, the full operand
    // second, both broadcast, broadcast in the middle, unit axes, and scalars.
    let cases: [(&[usize], &[usize]); 10] = [
        (&[2, 3, 40], &[2, 3, 40]),
        (&[2, 3, 5, 7], &[2, 1, 1, 7]),
        (&[2, 3, 4], &[2, 3, 1]),
        (&[2, 1, 1, 7], &[2, 3, 5, 7]),
        (&[2, 1, 4], &[1, 3, 1]),
        (&[3, 1, 4], &[3, 5, 4]),
        (&[3, 5, 1], &[1, 5, 4]),
        (&[1, 5], &[1, 5]),
        (&[4, 1], &[4, 1]),
        (&[], &[]),
    ];
    for ((i, (sa, sb)), mul) in cases.into_iter().enumerate().flat_map(|c| [(c, false), (c, true)]) {
        for symbolic in [false, true] {
            let mut model = TypedModel::default();
            let n: TDim = model.symbols.sym("N").into();
            let fact = |shape: &[usize]| {
                let mut dims: TVec<TDim> = shape.iter().map(|&d| d.into()).collect();
                if symbolic && shape.first() == Some(&2) {
                    dims[0] = n.clone(); // a batch axis both operands share
                }
                f32::fact(&*dims)
            };
            if symbolic && !(sa.first() == Some(&2) && sb.first() == Some(&2)) {
                continue;
            }
            let a = model.add_source("a", fact(sa))?;
            let b = model.add_source("b", fact(sb))?;
            let y = if mul {
                model.wire_node("mul", TypedBinOp(Box::new(Mul), None), &[a, b])?[0]
            } else {
                add_node(&mut model, "add", a, b)?
            };
            model.select_output_outlets(&[y])?;
            let ta = Tensor::from_shape(sa, &values(sa.iter().product(), 500 + i as u64))?;
            let tb = Tensor::from_shape(sb, &values(sb.iter().product(), 600 + i as u64))?;
            let (want, got, swapped) = both_of(model, tvec![ta, tb])?;
            assert!(swapped, "case {i} {sa:?}, {sb:?}, mul {mul}: not swapped");
            assert_eq!(want.shape(), got.shape(), "case {i}");
            assert_eq!(floats(&want)?, floats(&got)?, "case {i} {sa:?}, {sb:?}, mul {mul}, symbolic {symbolic}");
        }
    }
    Ok(())
}

#[test]
fn add_in_place_leaves_a_shared_operand_alone() -> TractResult<()> {
    // a feeds two sums: summing into a's buffer for the first must not change what the second
    // reads, nor the model output that is a itself.
    let mut model = TypedModel::default();
    let a = model.add_source("a", f32::fact([3, 8]))?;
    let b = model.add_source("b", f32::fact([3, 8]))?;
    let s = add_node(&mut model, "s", a, b)?;
    let t = add_node(&mut model, "t", a, s)?;
    model.select_output_outlets(&[t, a])?;
    let inputs = tvec![Tensor::from_shape(&[3, 8], &values(24, 71))?, Tensor::from_shape(&[3, 8], &values(24, 72))?];
    let values_of = || inputs.iter().map(|t| t.clone().into_tvalue()).collect::<TVec<_>>();
    let want = model.clone().into_runnable()?.run(values_of())?;
    let mut fast = model;
    substitute(&mut fast)?;
    assert_eq!(fast.nodes().iter().filter(|n| n.op().name() == "FastAdd").count(), 2);
    let got = fast.into_runnable()?.run(values_of())?;
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(floats(&w.clone().into_tensor())?, floats(&g.clone().into_tensor())?);
    }
    Ok(())
}

#[test]
fn add_of_a_constant_stays_tracts() -> TractResult<()> {
    let mut model = TypedModel::default();
    let a = model.add_source("a", f32::fact([3, 8]))?;
    let c = model.add_const("c", Tensor::from_shape(&[1, 8], &values(8, 73))?)?;
    let y = add_node(&mut model, "add", a, c)?;
    model.select_output_outlets(&[y])?;
    substitute(&mut model)?;
    assert!(!model.nodes().iter().any(|n| n.op().name().starts_with("Fast")));
    Ok(())
}

/// One 2-D convolution of `case` (one group, constant `weights` and `bias`, a ReLU after when
/// `relu`) on an input from `seed`, by tract and with the fast kernels swapped in (asserted):
/// `(tract's, ours)`.
fn conv_vs_tract(case: &Case, o: usize, weights: Tensor, bias: Tensor, relu: bool, seed: u64) -> TractResult<(Tensor, Tensor)> {
    let (mut model, mut y) = conv_model(case, o, 1, Some(weights), bias)?;
    if relu {
        let zero = model.add_const("zero", Tensor::zero::<f32>(&[1, 1, 1, 1])?)?;
        y = model.wire_node("relu", TypedBinOp(Box::new(Max), None), &[y, zero])?[0];
    }
    model.select_output_outlets(&[y])?;
    let (want, got, swapped) = both(model, input_for(case, seed))?;
    assert!(swapped, "input {:?}, kernel {:?}: not swapped", case.shape, case.kernel);
    assert_eq!(want.shape(), got.shape(), "input {:?}", case.shape);
    Ok((want, got))
}

/// The direct convolution (stride 1, AVX-512) tiles output channels by 8 and pixels by 3
/// vectors of 16: these channel counts and widths leave every remainder of both, and the
/// kernels every padding of a row's first and last vector.
#[test]
fn direct_conv_covers_every_tile_remainder() -> TractResult<()> {
    for (i, (o, width, kernel, pads)) in [
        (19usize, 17usize, [3usize, 3usize], [1usize, 1usize]),
        (8, 16, [3, 3], [1, 1]),
        (1, 6, [3, 3], [0, 2]),
        (12, 40, [5, 5], [2, 2]),
        (7, 33, [1, 3], [0, 1]),
        (3, 64, [3, 1], [1, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        let padding = PaddingSpec::Explicit(tvec![pads[0], pads[1]], tvec![pads[0], pads[1]]);
        let case = plain(vec![2, 3, 11, width], kernel.to_vec(), padding);
        let weights = Tensor::from_shape(&[o, 3, kernel[0], kernel[1]], &values(o * 3 * kernel[0] * kernel[1], 40 + i as u64))?;
        let bias = tensor1(&values(o, 50 + i as u64));
        let (want, got) = conv_vs_tract(&case, o, weights, bias, i % 2 == 0, 60 + i as u64)?;
        let worst = floats(&want)?.iter().zip(floats(&got)?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "case {i} (o {o}, width {width}, kernel {kernel:?}): worst |tract - fast| = {worst:e}");
    }
    Ok(())
}

/// Winograd F(4x4, 3x3) (3x3, stride 1, >= 8 input channels, AVX-512): odd and even output
/// sizes (a last tile half outside), every padding from 0 to 2 on either side, channel
/// counts that leave each block remainder, tile rows wider than one vector, with and without
/// a ReLU, batches of 2.
#[test]
fn winograd_conv_matches_tract_on_odd_and_even_sizes() -> TractResult<()> {
    for (i, (c, o, h, w, pads)) in [
        (8usize, 19usize, 11usize, 17usize, [1usize, 1usize, 1usize, 1usize]),
        (16, 32, 16, 16, [1, 1, 1, 1]),
        (9, 5, 6, 40, [0, 2, 1, 0]),
        (12, 8, 9, 9, [2, 0, 0, 2]),
        (8, 3, 34, 35, [0, 0, 0, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        let padding = PaddingSpec::Explicit(tvec![pads[0], pads[1]], tvec![pads[2], pads[3]]);
        let case = plain(vec![2, c, h, w], vec![3, 3], padding);
        let weights = Tensor::from_shape(&[o, c, 3, 3], &values(o * c * 9, 90 + i as u64))?;
        let bias = tensor1(&values(o, 95 + i as u64));
        let (want, got) = conv_vs_tract(&case, o, weights, bias, i % 2 == 1, 99 + i as u64)?;
        // The transforms round differently from a direct sum: relative to the output's scale.
        let scale = floats(&want)?.iter().fold(1f32, |m, v| m.max(v.abs()));
        let worst = floats(&want)?.iter().zip(floats(&got)?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5 * scale, "case {i} (c {c}, o {o}, {h}x{w}, pads {pads:?}): worst {worst:e}, scale {scale}");
    }
    Ok(())
}

/// A sum over `axes` of a source of `shape`, then (when `scale`) a multiplication by a
/// constant of `scale_shape`.
fn sum_model(shape: &[usize], axes: &[usize], scale: Option<&[usize]>) -> TractResult<TypedModel> {
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape))?;
    let mut y = model.wire_node("sum", Reduce::new(axes.iter().copied().collect(), Reducer::Sum), &[x])?[0];
    if let Some(s) = scale {
        let len = s.iter().product();
        let k = model.add_const("k", Tensor::from_shape(s, &values(len, 77))?)?;
        y = model.wire_node("scale", TypedBinOp(Box::new(Mul), None), &[y, k])?[0];
    }
    model.select_output_outlets(&[y])?;
    Ok(model)
}

#[test]
fn trailing_sums_equal_tracts_and_fold_a_scalar_scale() -> TractResult<()> {
    let one = [1usize, 1, 1, 1];
    for (i, (shape, axes, scale, folded)) in [
        (vec![2usize, 5, 7, 9], vec![2usize, 3], Some(&one[..]), true), // a global average pool
        (vec![3, 40], vec![1], None, true),
        (vec![2, 3, 17], vec![2], Some(&[1usize, 1, 1][..]), true),
        (vec![2, 3, 4, 5], vec![1, 2, 3], None, true),
        // A per-channel scale stays tract's Mul after the fast sum.
        (vec![2, 5, 7, 9], vec![2, 3], Some(&[1usize, 5, 1, 1][..]), false),
    ]
    .into_iter()
    .enumerate()
    {
        let model = sum_model(&shape, &axes, scale)?;
        let mut fast = model.clone();
        substitute(&mut fast)?;
        let names: Vec<String> = fast.into_compact()?.nodes().iter().map(|n| n.op().name().to_string()).collect();
        assert!(names.iter().any(|n| n == "FastSumRows"), "case {i}: {names:?}");
        assert_eq!(names.iter().any(|n| n == "Mul"), scale.is_some() && !folded, "case {i}: {names:?}");
        let len = shape.iter().product();
        let (want, got, _) = both(model, Tensor::from_shape(&shape, &values(len, 90 + i as u64))?)?;
        assert_eq!(want.shape(), got.shape(), "case {i}");
        let worst = floats(&want)?.iter().zip(floats(&got)?).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-5, "case {i}: worst |tract - fast| = {worst:e}");
    }
    // Not trailing, or every axis: tract's.
    for (shape, axes) in [(vec![2usize, 5, 7], vec![1usize]), (vec![4, 6], vec![0, 1])] {
        let mut model = sum_model(&shape, &axes, None)?;
        substitute(&mut model)?;
        assert!(model.nodes().iter().all(|n| n.op().name() != "FastSumRows"), "{shape:?} over {axes:?}");
    }
    Ok(())
}

/// ONNX's `LayerNormalization` over `axis` of a source of `shape`, as tract-onnx expands it
/// (sum, scaled to the mean, deviation, its squares' mean, epsilon, reciprocal root), then
/// decluttered, which turns the tail into `RmsNorm`.
fn layer_norm_model(shape: &[usize], axis: usize, eps: f32) -> TractResult<TypedModel> {
    use tract_onnx::tract_core::ops::math::{Sub, rsqrt, square};
    use tract_onnx::tract_core::ops::nn::{Reduce, Reducer};
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape))?;
    let ones = vec![1usize; shape.len()];
    let inv_n = model.add_const("inv_n", Tensor::from_shape(&ones, &[1.0 / shape[axis] as f32])?)?;
    let eps = model.add_const("eps", Tensor::from_shape(&ones, &[eps])?)?;
    let bin = |op: Box<dyn tract_onnx::tract_core::ops::binary::BinMiniOp>| TypedBinOp(op, None);
    let sum = model.wire_node("sum", Reduce::new(tvec![axis], Reducer::Sum), &[x])?[0];
    let mean = model.wire_node("mean", bin(Box::new(Mul)), &[sum, inv_n])?[0];
    let d = model.wire_node("d", bin(Box::new(Sub)), &[x, mean])?[0];
    let dd = model.wire_node("dd", square(), &[d])?[0];
    let sum_dd = model.wire_node("sum_dd", Reduce::new(tvec![axis], Reducer::Sum), &[dd])?[0];
    let var = model.wire_node("var", bin(Box::new(Mul)), &[sum_dd, inv_n])?[0];
    let var_eps = model.wire_node("var_eps", bin(Box::new(Add)), &[var, eps])?[0];
    let inv = model.wire_node("inv", rsqrt(), &[var_eps])?[0];
    let y = model.wire_node("normalized", bin(Box::new(Mul)), &[d, inv])?[0];
    model.select_output_outlets(&[y])?;
    model.into_decluttered()
}

/// Over the last axis (a transformer's rows, of odd and vector-sized lengths) and over the
/// channels of an NCHW image (columns of pixels, more of them than one block holds), with
/// values offset far from zero, where a one-pass variance would lose its digits.
#[test]
fn layer_norm_equals_tracts_on_any_axis() -> TractResult<()> {
    for (i, (shape, axis)) in [
        (vec![2usize, 7, 33], 2usize),
        (vec![3, 16], 1),
        (vec![1, 5, 1], 1),
        (vec![2, 24, 9, 11], 1),
        (vec![1, 3, 70], 1),
        (vec![2, 3, 4, 5], 2),
    ]
    .into_iter()
    .enumerate()
    {
        let model = layer_norm_model(&shape, axis, 1e-6)?;
        let len = shape.iter().product();
        let data: Vec<f32> = values(len, 140 + i as u64).iter().map(|v| 100.0 + v * 3.0).collect();
        let (want, got, swapped) = both(model, Tensor::from_shape(&shape, &data)?)?;
        assert!(swapped, "case {i}: not swapped");
        let worst = worst_difference(&want, &got)?;
        assert!(worst < 1e-4, "case {i} {shape:?} axis {axis}: worst |tract - fast| = {worst:e}");
    }
    // The mean alone, read elsewhere too: tract's chain stays.
    let mut model = layer_norm_model(&[2, 8], 1, 1e-5)?;
    let mean = model.node_by_name("mean")?.id;
    let outputs = [model.output_outlets()?[0], OutletId::new(mean, 0)];
    model.select_output_outlets(&outputs)?;
    substitute(&mut model)?;
    assert!(model.nodes().iter().all(|n| n.op().name() != "FastLayerNorm"));
    Ok(())
}

/// A softmax over `axes` of a source of `shape`.
fn softmax_model(shape: &[usize], axes: &[usize], kind: SoftmaxKind) -> TractResult<TypedModel> {
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape))?;
    let y = model.wire_node("softmax", Softmax::new(axes.iter().copied().collect(), None, kind), &[x])?[0];
    model.select_output_outlets(&[y])?;
    Ok(model)
}

/// Trailing axes of odd and vector-sized lengths, values far apart (-1e4 "masked" keys and
/// -3.4e38), and rows holding a NaN or an infinity, which come out NaN as tract's do.
#[test]
fn softmax_equals_tracts_over_trailing_axes() -> TractResult<()> {
    for (i, (shape, axes)) in
        [(vec![2usize, 3, 5, 7], vec![3usize]), (vec![4, 128], vec![1]), (vec![3, 17, 33], vec![2]), (vec![2, 3, 4, 5], vec![2, 3])]
            .into_iter()
            .enumerate()
    {
        let len: usize = shape.iter().product();
        let mut data: Vec<f32> = values(len, 120 + i as u64).iter().map(|v| v * 30.0).collect();
        for (j, v) in data.iter_mut().enumerate() {
            match j % 11 {
                3 => *v = -1e4,
                7 => *v = -3.4e38,
                _ => {}
            }
        }
        let row: usize = axes.iter().map(|&a| shape[a]).product();
        data[row + 1] = f32::NAN; // the second row
        data[2 * row] = f32::INFINITY; // the third
        let model = softmax_model(&shape, &axes, SoftmaxKind::Softmax)?;
        let (want, got, swapped) = both(model, Tensor::from_shape(&shape, &data)?)?;
        assert!(swapped, "case {i}: not swapped");
        let (want, got) = (floats(&want)?, floats(&got)?);
        for (j, (a, b)) in want.iter().zip(&got).enumerate() {
            let fine = if a.is_nan() { b.is_nan() } else { (a - b).abs() <= 1e-6 };
            assert!(fine, "case {i} {shape:?} over {axes:?}, value {j}: tract {a}, fast {b}");
        }
        assert!(got[row..2 * row].iter().all(|v| v.is_nan()), "case {i}: the NaN row");
    }
    // A leading axis, or a log-softmax: tract's.
    for (axes, kind) in [(vec![0usize], SoftmaxKind::Softmax), (vec![1], SoftmaxKind::LogSoftmax)] {
        let mut model = softmax_model(&[3, 8], &axes, kind)?;
        substitute(&mut model)?;
        assert!(model.nodes().iter().all(|n| n.op().name() != "FastSoftmax"), "{axes:?} {kind:?}");
    }
    Ok(())
}

/// tract's exact GELU, swapped, over -12..12 (both tails, zero) and a NaN: within 1e-6 of
/// tract's, relative to 1 + |x| (the A&S erf is good to 1.5e-7).
#[test]
fn gelu_equals_tracts() -> TractResult<()> {
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    use tract_onnx::tract_core::ops::nn::GeluExact;
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact([3, 1001]))?;
    let y = model.wire_node("gelu", ElementWiseOp(Box::new(GeluExact {}), None), &[x])?[0];
    model.select_output_outlets(&[y])?;
    let mut data: Vec<f32> = (0..3003).map(|i| i as f32 * 0.008 - 12.0).collect();
    data[1500] = f32::NAN;
    let input = Tensor::from_shape(&[3, 1001], &data)?;
    let (want, got, swapped) = both(model, input)?;
    assert!(swapped, "not swapped");
    for (i, ((a, b), x)) in floats(&want)?.iter().zip(floats(&got)?).zip(&data).enumerate() {
        let fine = if a.is_nan() { b.is_nan() } else { (a - b).abs() <= 1e-6 * (1.0 + x.abs()) };
        assert!(fine, "value {i} (x {x}): tract {a}, fast {b}");
    }
    Ok(())
}

/// A softmax then a GELU large enough to be shared by rows with a second thread
/// (`by_rows`), against tract's on one.
#[test]
fn softmax_and_gelu_on_two_threads_equal_tracts() -> TractResult<()> {
    use tract_linalg::multithread::{Executor, multithread_tract_scope};
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    use tract_onnx::tract_core::ops::nn::GeluExact;
    let shape = [64usize, 1031];
    let mut model = softmax_model(&shape, &[1], SoftmaxKind::Softmax)?;
    let y = model.output_outlets()?[0];
    let z = model.wire_node("gelu", ElementWiseOp(Box::new(GeluExact {}), None), &[y])?[0];
    model.select_output_outlets(&[z])?;
    let data: Vec<f32> = values(shape.iter().product(), 140).iter().map(|v| v * 8.0).collect();
    let input = Tensor::from_shape(&shape, &data)?;
    let want = model.clone().into_runnable()?.run(tvec![input.clone().into_tvalue()])?;
    let mut fast = model;
    substitute(&mut fast)?;
    let names: Vec<String> = fast.nodes().iter().map(|n| n.op().name().to_string()).collect();
    assert!(names.iter().any(|n| n == "FastSoftmax") && names.iter().any(|n| n == "FastGelu"), "{names:?}");
    let plan = fast.into_runnable()?;
    let got = multithread_tract_scope(Executor::multithread(2), || plan.run(tvec![input.into_tvalue()]))?;
    let worst = worst_difference(&want[0].clone().into_tensor(), &got[0].clone().into_tensor())?;
    assert!(worst < 1e-6, "worst |tract - fast| = {worst:e}");
    Ok(())
}

/// A Pad of `pads` and `mode` on a source of `shape`, swapped after tract's optimizer
/// (`substitute_optimized`, as a load does).
fn pad_both(shape: &[usize], pads: Vec<(usize, usize)>, mode: tract_onnx::tract_core::ops::array::PadMode, seed: u64) -> TractResult<(Vec<f32>, Vec<f32>, bool)> {
    use tract_onnx::tract_core::ops::array::Pad;
    let mut model = TypedModel::default();
    let x = model.add_source("x", f32::fact(shape))?;
    let y = model.wire_node("pad", Pad::new(pads, mode), &[x])?[0];
    model.select_output_outlets(&[y])?;
    let input = Tensor::from_shape(shape, &values(shape.iter().product(), seed))?;
    let want = model.clone().into_runnable()?.run(tvec![input.clone().into_tvalue()])?;
    let mut fast = model.into_optimized()?;
    super::substitute_optimized(&mut fast)?;
    let swapped = fast.nodes().iter().any(|n| n.op().name() == "FastPad");
    let got = fast.into_runnable()?.run(tvec![input.into_tvalue()]);
    let got = match got {
        Ok(got) => floats(&got[0].clone().into_tensor())?,
        Err(e) => return Err(e),
    };
    Ok((floats(&want[0].clone().into_tensor())?, got, swapped))
}

/// Constant, reflect and edge pads along the last axis equal tract's, one side or both, rows
/// of one value and more; rows too short to reflect fall back to tract's op; a pad on another
/// axis stays tract's.
#[test]
fn pad_equals_tracts_along_the_last_axis() -> TractResult<()> {
    use tract_onnx::tract_core::ops::array::PadMode;
    let constant = |v: f32| PadMode::Constant(Arc::new(tensor0(v)));
    for (i, (shape, pads, mode)) in [
        (vec![1usize, 576], vec![(0usize, 0usize), (0usize, 64usize)], PadMode::Reflect),
        (vec![2, 5, 7], vec![(0, 0), (0, 0), (3, 2)], PadMode::Reflect),
        (vec![1, 128, 4], vec![(0, 0), (0, 0), (1, 1)], constant(0.0)),
        (vec![3, 1], vec![(0, 0), (2, 3)], constant(-1.5)),
        (vec![2, 3, 6], vec![(0, 0), (0, 0), (4, 0)], PadMode::Edge),
        (vec![4, 9], vec![(0, 0), (0, 5)], PadMode::Edge),
    ]
    .into_iter()
    .enumerate()
    {
        let (want, got, swapped) = pad_both(&shape, pads.clone(), mode.clone(), 150 + i as u64)?;
        assert!(swapped, "case {i}: not swapped");
        assert_eq!(want, got, "case {i}: {shape:?} {pads:?} {mode:?}");
    }
    // Reflecting 3 values into rows of 3: tract's op runs (and says what it says).
    let (want, got, swapped) = pad_both(&[2, 3], vec![(0, 0), (3, 1)], PadMode::Reflect, 160).map_or_else(
        |_| Ok::<_, TractError>((vec![], vec![], true)),
        Ok,
    )?;
    assert!(swapped);
    assert_eq!(want, got);
    let (want, got, swapped) = pad_both(&[3, 4], vec![(1, 0), (0, 0)], constant(0.0), 161)?;
    assert!(!swapped, "a pad of the first axis was swapped");
    assert_eq!(want, got);
    Ok(())
}

/// A product of a run beside others stays on its thread (the cores are busy with the other
/// runs); a product of a lone run may split. Only the first is asserted inside: other tests
/// may count runs of their own meanwhile, which only ever makes `alone` false.
#[test]
fn products_of_runs_side_by_side_stay_on_their_thread() {
    use tract_linalg::multithread::{Executor, multithread_tract_scope};
    multithread_tract_scope(Executor::multithread(2), || {
        crate::linger::counted_run(|| crate::linger::counted_run(|| assert!(super::threads_for(super::PARALLEL_MACS).is_none())));
    });
}

/// Every stride-th value along the last axis (strides 2 and 3, rows of odd and even lengths)
/// and along an inner axis (row copies), from offsets 0, 1 and 2, equal tract's.
#[test]
fn downsample_equals_tracts() -> TractResult<()> {
    use tract_onnx::tract_core::ops::Downsample;
    let mut checked = 0;
    for shape in [vec![2usize, 3, 9, 33], vec![1, 4, 16, 16], vec![2, 5]] {
        for axis in 1..shape.len() {
            for (stride, modulo) in [(2isize, 0usize), (2, 1), (3, 2), (1, 1), (3, 0)] {
                let mut model = TypedModel::default();
                let x = model.add_source("x", f32::fact(&shape))?;
                let y = model.wire_node("down", Downsample { axis, stride, modulo }, &[x])?[0];
                model.select_output_outlets(&[y])?;
                let input = Tensor::from_shape(&shape, &values(shape.iter().product(), checked as u64))?;
                let want = model.clone().into_runnable()?.run(tvec![input.clone().into_tvalue()])?;
                let mut fast = model;
                super::substitute_optimized(&mut fast)?;
                assert!(fast.nodes().iter().any(|n| n.op().name() == "FastDownsample"));
                let got = fast.into_runnable()?.run(tvec![input.into_tvalue()])?;
                let (want, got) = (want[0].clone().into_tensor(), got[0].clone().into_tensor());
                let case = format!("{shape:?} axis {axis} stride {stride} modulo {modulo}");
                assert_eq!(want.shape(), got.shape(), "{case}");
                assert_eq!(floats(&want)?, floats(&got)?, "{case}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 35);
    Ok(())
}
