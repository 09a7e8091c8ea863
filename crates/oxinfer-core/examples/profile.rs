//! Per-node time of a tract run: where a model's time goes.
//!
//! cargo run --release -p oxinfer-core --example profile -- MODEL.onnx NAME:DTYPE:SHAPE... \
//!     [--constant NAME:DTYPE:SHAPE:=V]... [--threads N] [--runs N] [--fixed] [--bf16 | --int8]
//!
//! e.g. `... -- .cache/fixtures/cnn.onnx image:float32:1,3,32,32 --threads 1`. Inputs get
//! deterministic pseudo-random values: floats in -1..1, integers in 0..100 or in 0..MAX for
//! `NAME:DTYPE:SHAPE:MAX` (token ids must stay inside the vocabulary, type ids below 2:
//! `token_type_ids:int64:32,128:1`), or all V for `NAME:DTYPE:SHAPE:=V`; an empty SHAPE is a
//! scalar. `--constant` fixes an input at load (the `constants` load option; Silero VAD:
//! `input:float32:1,576 state:float32:2,1,128 --constant sr:int64::=16000 --fixed`).
//! `--fixed` loads the model with the given shapes fixed, as a `load(..., { inputs })` would;
//! without it the file's symbolic shapes stay. `--bf16` / `--int8` load with that precision.
//!
//! The allocator is the addon's (mimalloc): with glibc's, megabyte tensors freed and allocated
//! again each run were unmapped and faulted back in, which the times of the ops that allocate
//! them showed (ms per op on the MiniLM-shaped encoder) and node does not pay.

use std::process::ExitCode;
use std::time::Duration;

use oxinfer_core::precision::Precision;
use oxinfer_core::tract::{InputSpec, LoadOptions, ModelSource, TractModel};
use oxinfer_core::{DType, Dim, Feed};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Input {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn parse_input(arg: &str) -> Result<Input, String> {
    let mut parts = arg.splitn(4, ':');
    let (Some(name), Some(dtype), Some(shape)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("'{arg}': expected NAME:DTYPE:SHAPE[:MAX], e.g. image:float32:1,3,32,32"));
    };
    // `=V` instead of MAX: every integer is V (Silero VAD's `sr:int64:=16000`).
    let (max, value): (u64, Option<i64>) = match parts.next() {
        Some(v) if v.starts_with('=') => (1, Some(v[1..].parse().map_err(|_| format!("'{arg}': '{v}' is not =INTEGER"))?)),
        Some(m) => (m.parse().ok().filter(|&m: &u64| m > 0).ok_or(format!("'{arg}': MAX '{m}' is not a whole number >= 1"))?, None),
        None => (100, None),
    };
    let dtype: DType = dtype.parse().map_err(|e| format!("'{arg}': {e}"))?;
    // An empty shape is a scalar.
    let shape = shape
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| format!("'{arg}': '{d}' is not a dimension")))
        .collect::<Result<Vec<_>, _>>()?;
    let len: usize = shape.iter().product();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bytes = match dtype {
        DType::Float32 => (0..len).flat_map(|_| ((next() % 2001) as f32 / 1000.0 - 1.0).to_le_bytes()).collect(),
        DType::Int64 => (0..len).flat_map(|_| value.unwrap_or((next() % max) as i64).to_le_bytes()).collect(),
        DType::Int32 => (0..len).flat_map(|_| (value.unwrap_or((next() % max) as i64) as i32).to_le_bytes()).collect(),
        other => return Err(format!("'{arg}': dtype {other} is not generated here (float32, int64, int32 are)")),
    };
    Ok(Input { name: name.to_string(), dtype, shape, bytes })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("profile: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: profile MODEL.onnx NAME:DTYPE:SHAPE... [--constant NAME:DTYPE:SHAPE:=V] [--threads N] [--runs N] [--fixed] [--bf16 | --int8]")?;
    let (mut inputs, mut constants, mut threads, mut runs, mut fixed) = (Vec::new(), Vec::new(), None, 200, false);
    let mut precision = Precision::Float32;
    while let Some(a) = args.next() {
        let mut number = |flag: &str| {
            args.next().and_then(|v| v.parse::<usize>().ok()).ok_or(format!("{flag} needs a number"))
        };
        match a.as_str() {
            "--threads" => threads = Some(number("--threads")?),
            "--runs" => runs = number("--runs")?,
            "--fixed" => fixed = true,
            "--bf16" => precision = Precision::Bfloat16,
            "--int8" => precision = Precision::Int8,
            "--constant" => constants.push(parse_input(&args.next().ok_or("--constant needs NAME:DTYPE:SHAPE[:MAX|:=V]")?)?),
            _ => inputs.push(parse_input(&a)?),
        }
    }
    let specs = if fixed {
        let spec = |i: &Input| InputSpec { dtype: Some(i.dtype), shape: Some(i.shape.iter().map(|&d| Dim::Fixed(d)).collect()) };
        inputs.iter().map(|i| (i.name.clone(), spec(i))).collect()
    } else {
        Vec::new()
    };
    let constants = constants.iter().map(|i: &Input| Feed::new(&i.name, i.dtype, &i.shape, &i.bytes)).collect();
    let options = LoadOptions { inputs: specs, constants, threads, precision, external_data: Vec::new() };
    let model = TractModel::load(ModelSource::Path(path.as_ref()), &options).map_err(|e| e.to_string())?;
    let feeds: Vec<Feed<'_>> = inputs.iter().map(|i| Feed::new(&i.name, i.dtype, &i.shape, &i.bytes)).collect();
    let costs = model.profile(&feeds, runs).map_err(|e| e.to_string())?;
    // The same runs through the serving path (bind, plan, outputs), for what the nodes leave out.
    let mut whole = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = std::time::Instant::now();
        model.run(&feeds).map_err(|e| e.to_string())?;
        whole.push(start.elapsed());
    }
    whole.sort();
    println!("TractModel::run: median {:.1} µs", us(whole[whole.len() / 2]));
    let total: Duration = costs.iter().map(|c| c.median).sum();
    println!("{} nodes, {runs} runs, threads {}, products in {}: sum of medians {:.1} µs", costs.len(), model.threads(), model.precision().name(), us(total));
    let mut by_cost: Vec<_> = costs.iter().collect();
    by_cost.sort_by(|a, b| b.median.cmp(&a.median));
    for c in by_cost {
        let share = 100.0 * c.median.as_secs_f64() / total.as_secs_f64().max(f64::MIN_POSITIVE);
        println!("{:>9.1} µs {share:>5.1}%  {:<24} {}", us(c.median), c.op, c.node);
    }
    Ok(())
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
