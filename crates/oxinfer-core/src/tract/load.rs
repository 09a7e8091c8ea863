//! Loading: bytes → typed, optimized, runnable plan, plus the metadata the API exposes.

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_hir::infer::{Factoid, InferenceFact};
use tract_onnx::tract_hir::prelude::InferenceModelExt;

use crate::precision::Precision;
use crate::dtype::DType;
use crate::error::{Error, ErrorCode, Result, chain};
use crate::panic::guard;
use crate::tensor::{Dim, Feed, OutputTensor, TensorInfo, shape_string};

use super::bind::to_tensor;
use super::plans::{Plans, ShapePlans};
use super::indices::IndexLimit;
use super::onnx as onnx_ops;
use crate::threads::{available_cpus, tract_executor};

/// Where a model comes from.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    Path(&'a Path),
    Bytes(&'a [u8]),
}

/// What the caller knows about an input, overriding what the file declares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputSpec {
    pub dtype: Option<DType>,
    pub shape: Option<Vec<Dim>>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions<'a> {
    /// Input facts by input name.
    pub inputs: Vec<(String, InputSpec)>,
    /// Inputs fixed to a value at load time: they stop being inputs, and the optimizer folds
    /// what depends on them (Silero VAD's `sr` selects its 16 kHz or 8 kHz graph).
    pub constants: Vec<Feed<'a>>,
    /// Intra-op threads; `None` uses every CPU this process may use.
    pub threads: Option<usize>,
    /// How products by constant weights are computed (f32 unless asked; see crate::bf16).
    pub precision: Precision,
    /// Bytes of external data files by the location the model names, for a model given as bytes
    /// (a model loaded by path finds its files beside it).
    pub external_data: Vec<(String, &'a [u8])>,
}

/// How often an op type occurs in the model as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpCount {
    pub op: String,
    pub count: usize,
}

/// A loaded, optimized ONNX model. `Send + Sync`: share it behind an `Arc`.
#[derive(Debug)]
pub struct TractModel {
    pub(crate) plans: Plans,
    pub(crate) inputs: Vec<TensorInfo>,
    pub(crate) outputs: Vec<TensorInfo>,
    sha256: String,
    ops: Vec<OpCount>,
    pub(crate) threads: usize,
    /// Whether a batch may be cut into slices run at once (see split.rs).
    pub(crate) split: bool,
    /// The precision its products by constant weights run in on this CPU.
    precision: Precision,
    /// Inputs that index constant tables, checked before each run (indices.rs).
    pub(crate) index_limits: Vec<IndexLimit>,
    file_bytes: usize,
}

impl TractModel {
    pub fn load(source: ModelSource<'_>, options: &LoadOptions<'_>) -> Result<TractModel> {
        let owned;
        let (bytes, origin, dir) = match source {
            ModelSource::Path(p) => {
                owned = std::fs::read(p).map_err(|e| {
                    Error::model_load(format!("cannot read model file '{}': {e}", p.display()))
                })?;
                (&owned[..], format!("'{}'", p.display()), Some(p.parent().unwrap_or(Path::new("."))))
            }
            ModelSource::Bytes(b) => (b, format!("the given bytes ({} bytes)", b.len()), None),
        };
        guard(ErrorCode::ModelLoad, "loading the model", || load_bytes(bytes, &origin, dir, options))
    }

    pub fn inputs(&self) -> &[TensorInfo] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[TensorInfo] {
        &self.outputs
    }
    /// Hex SHA-256 of the model file's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
    /// Op types of the model as written in the file, most frequent first.
    pub fn ops(&self) -> &[OpCount] {
        &self.ops
    }
    pub fn threads(&self) -> usize {
        self.threads
    }
    /// The precision of its products by constant weights: the one asked for where this CPU
    /// has it (`Bfloat16` needs AVX512-BF16), else `Float32`.
    pub fn precision(&self) -> Precision {
        self.precision
    }
    /// Whether one plan serves every input shape, or each new shape is planned at its first run.
    pub fn planning(&self) -> super::Planning {
        self.plans.planning()
    }
    /// How many per-shape plans are cached now.
    pub fn shape_plans(&self) -> usize {
        self.plans.cached()
    }
    /// Whether a batch runs as one slice per thread (its items are independent; see split.rs).
    pub fn splits_batches(&self) -> bool {
        self.split && self.threads > 1
    }

    /// Loads through the process-wide model cache: the same source and options give the same
    /// model, and concurrent loads of one key load once.
    pub fn load_cached(
        source: ModelSource<'_>,
        options: &LoadOptions<'_>,
    ) -> Result<crate::cache::Handle<TractModel>> {
        let key = cache_key(source, options)?;
        crate::cache::global().acquire("tract", key, || TractModel::load(source, options))
    }

    pub(crate) fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }

    /// Wraps the engine's output values as API tensors, without copying them.
    pub(crate) fn wrap_outputs(&self, values: TVec<TValue>) -> Result<Vec<OutputTensor>> {
        values
            .into_iter()
            .zip(&self.outputs)
            .map(|(v, info)| {
                let mut tensor = v.into_arc_tensor();
                if tensor.datum_type() == DatumType::TDim {
                    // Shape computations surface as symbolic dims; by now they are numbers.
                    tensor = tensor
                        .cast_to_dt(DatumType::I64)
                        .map_err(|e| Error::engine(format!("output '{}': {}", info.name, chain(&e))))?
                        .into_owned()
                        .into_arc_tensor();
                }
                let dtype = DType::from_tract(tensor.datum_type()).ok_or_else(|| {
                    Error::engine(format!(
                        "output '{}' has element type {:?}, which oxinfer cannot return",
                        info.name,
                        tensor.datum_type()
                    ))
                })?;
                Ok(OutputTensor::whole(info.name.clone(), dtype, tensor))
            })
            .collect()
    }
}

fn load_bytes(bytes: &[u8], origin: &str, dir: Option<&Path>, options: &LoadOptions<'_>) -> Result<TractModel> {
    let sha256 = hex(&Sha256::digest(bytes));
    let fail = |stage: &str, e: &dyn std::fmt::Display| {
        Error::model_load(format!("cannot {stage} the ONNX model from {origin}: {}", chain(e)))
    };
    // The shapes a file records for intermediate values (value_info) are hints that exporters
    // write for the sizes they traced with; they would override the caller's and the analysis's.
    let mut onnx = tract_onnx::onnx().with_ignore_value_info(true);
    onnx_ops::register(&mut onnx.op_register);
    let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| fail("parse", &e))?;
    super::validate::check_model(&proto)
        .map_err(|why| Error::model_load(format!("the ONNX model from {origin} is invalid: {why}")))?;
    super::external::resolve(&mut proto, dir, &options.external_data)?;
    onnx_ops::contrib::rewrite(&mut proto);
    onnx_ops::integer::rewrite(&mut proto);
    onnx_ops::loss::rewrite(&mut proto);
    onnx_ops::float16::rewrite(&mut proto);
    let dir_str = dir.map(|d| d.to_string_lossy().into_owned());
    let parsed = onnx.parse(&proto, dir_str.as_deref()).map_err(|e| fail("parse", &e))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(Error::model_load(format!(
            "the ONNX model from {origin} uses values that no node or input defines: {}",
            parsed.unresolved_inputs.join(", ")
        )));
    }
    let mut model = parsed.model;
    check_implemented(&model, &proto)?;
    let declared_outputs = declared_outputs(&proto);
    let weight_bytes = weight_bytes(&proto);
    drop(proto);
    let ops = count_ops(&model);
    apply_input_specs(&mut model, &options.inputs)?;
    apply_constants(&mut model, &options.constants)?;
    name_unknown_dims(&mut model)?;
    // Names as the file gives them: optimization may rename the nodes behind them (an input
    // feeding an Identity takes the Identity's name), but it keeps their order.
    let input_names = input_names(&model);
    let output_names: Vec<String> = model
        .outputs
        .iter()
        .map(|&o| model.outlet_label(o).unwrap_or(&model.node(o.node).name).to_string())
        .collect();
    let precision = options.precision.effective();
    let threads = options.threads.unwrap_or_else(available_cpus).max(1);
    let run_options = RunOptions { executor: Some(tract_executor(threads)), ..Default::default() };
    // Kept for plans per shape, should the analysis give up on symbols or on integer inputs
    // it needs the values of (plans.rs).
    let symbolic = (has_symbolic_inputs(&model) || has_integer_inputs(&model)).then(|| model.clone());
    let (plans, inputs, outputs, split, index_limits) = match optimize(model, precision) {
        Ok(opt) => {
            let typed = &opt.model;
            let inputs = describe(typed, &typed.inputs, &input_names, "input")?;
            let outputs = describe(typed, &typed.outputs, &output_names, "output")?;
            match symbolic {
                Some(model) if opt.convolves_symbols => {
                    (Plans::per_shape(ShapePlans::new(model, precision, run_options, weight_bytes)), inputs, outputs, opt.split, opt.index_limits)
                }
                symbolic => {
                    let plan = opt.model.into_runnable_with_options(&run_options).map_err(|e| fail("plan", &e))?;
                    let fallback = symbolic.map(|model| ShapePlans::new(model, precision, run_options, weight_bytes));
                    (Plans::symbolic(plan, fallback), inputs, outputs, opt.split, opt.index_limits)
                }
            }
        }
        Err(_) if symbolic.is_some() => {
            let model = symbolic.unwrap_or_default();
            let inputs = describe_inputs(&model, &input_names)?;
            let outputs = declared_outputs
                .map_err(|why| Error::model_load(format!("the ONNX model from {origin}: {why}")))?;
            (Plans::per_shape(ShapePlans::new(model, precision, run_options, weight_bytes)), inputs, outputs, false, Vec::new())
        }
        Err(e) => {
            let mut err = fail("analyse and optimize", &e);
            if ops.iter().any(|o| o.op == "If") {
                err.message.push_str(
                    " (hint: this model branches with If; when a branch depends on an input, fix that \
                     input with the `constants` load option and the shapes with `inputs`)",
                );
            }
            return Err(err);
        }
    };
    Ok(TractModel { plans, inputs, outputs, sha256, ops, threads, split, precision, index_limits, file_bytes: bytes.len() })
}

/// The bytes of the model's initializers, external data included once resolved.
fn weight_bytes(proto: &tract_onnx::pb::ModelProto) -> usize {
    proto.graph.as_ref().map_or(0, |g| {
        g.initializer.iter().map(|t| t.raw_data.len() + 4 * t.float_data.len() + 8 * (t.int64_data.len() + t.double_data.len())).sum()
    })
}

fn has_symbolic_inputs(model: &InferenceModel) -> bool {
    (0..model.inputs.len()).any(|ix| {
        model.input_fact(ix).is_ok_and(|f| f.shape.dims().any(|d| d.concretize().is_none_or(|d| d.to_usize().is_err())))
    })
}

fn has_integer_inputs(model: &InferenceModel) -> bool {
    (0..model.inputs.len()).any(|ix| {
        model.input_fact(ix).is_ok_and(|f| f.datum_type.concretize().is_some_and(|dt| dt.is_integer()))
    })
}

/// An op that tract-onnx does not know fails the load here, named with its node and domain,
/// whatever path the load would take.
fn check_implemented(model: &InferenceModel, proto: &tract_onnx::pb::ModelProto) -> Result<()> {
    use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;
    let Some(node) = model.nodes().iter().find(|n| n.op_is::<UnimplementedOp>()) else { return Ok(()) };
    // tract names a node the file leaves unnamed after its first output.
    let written = proto.graph.as_ref().and_then(|g| {
        g.node.iter().find(|p| p.name == node.name || (p.name.is_empty() && p.output.first() == Some(&node.name)))
    });
    let (op, domain) = written.map_or(("?", ""), |p| (p.op_type.as_str(), p.domain.as_str()));
    let domain = if domain.is_empty() { "ai.onnx".to_string() } else { domain.to_string() };
    Err(Error::model_load(format!(
        "node '{}' uses the operator {op} (domain {domain}), which oxinfer does not support",
        node.name
    )))
}

/// The outputs as the file declares them: names, element types and dims (symbols by name).
fn declared_outputs(proto: &tract_onnx::pb::ModelProto) -> std::result::Result<Vec<TensorInfo>, String> {
    use tract_onnx::pb::{tensor_proto::DataType, tensor_shape_proto::dimension::Value, type_proto};
    let graph = proto.graph.as_ref().ok_or("it has no graph")?;
    graph
        .output
        .iter()
        .map(|o| {
            let Some(type_proto::Value::TensorType(t)) = o.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
                return Err(format!("output '{}' declares no tensor type", o.name));
            };
            let dtype = DataType::try_from(t.elem_type)
                .ok()
                .and_then(|d| DatumType::try_from(d).ok())
                .and_then(DType::from_tract)
                .ok_or_else(|| format!("output '{}' has an element type oxinfer cannot return", o.name))?;
            let shape = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .enumerate()
                        .map(|(axis, d)| match &d.value {
                            Some(Value::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                            Some(Value::DimParam(p)) if !p.is_empty() => Dim::Symbol(p.clone()),
                            _ => Dim::Symbol(format!("{}_{axis}", o.name)),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(TensorInfo { name: o.name.clone(), dtype, shape })
        })
        .collect()
}

/// The inputs of a model not yet typed, from their facts (every input's type is declared).
fn describe_inputs(model: &InferenceModel, names: &[String]) -> Result<Vec<TensorInfo>> {
    names
        .iter()
        .enumerate()
        .map(|(ix, name)| {
            let fact = model.input_fact(ix).map_err(|e| Error::model_load(chain(&e)))?;
            let dtype = fact.datum_type.concretize().and_then(DType::from_tract).ok_or_else(|| {
                Error::model_load(format!("input '{name}' has an element type oxinfer does not support"))
            })?;
            let shape = fact
                .shape
                .dims()
                .map(|d| match d.concretize() {
                    Some(d) => match d.to_usize() {
                        Ok(n) => Dim::Fixed(n),
                        Err(_) => Dim::Symbol(d.to_string()),
                    },
                    None => Dim::Symbol(format!("{name}_?")),
                })
                .collect();
            Ok(TensorInfo { name: name.clone(), dtype, shape })
        })
        .collect()
}

/// Types and optimizes the model, with oxinfer's fast kernels in place of the ops they cover;
/// also says whether its batches may be split (judged on tract's own ops, whose axes mappings
/// the analysis reads) and are worth splitting (it computes products), and which inputs index
/// constant tables.
pub(crate) fn optimize(model: InferenceModel, precision: Precision) -> TractResult<Optimized> {
    // Declutter first, so the fast kernels see tract's normalized ops; then tract optimizes the
    // rest around them.
    let mut typed = model.into_typed()?;
    super::symbolic_values::keep_symbolic_products(&mut typed)?;
    super::dequantize::keep_before_mixing_ops(&mut typed)?;
    let mut typed = typed.into_decluttered()?;
    let split = super::split::splittable(&typed)?;
    let index_limits = super::indices::index_limits(&typed)?;
    let convolves_symbols = convolves_symbols(&typed)?;
    super::fast::substitute_with(&mut typed, precision)?;
    let split = split && super::fast::has_products(&typed);
    let mut model = typed.into_optimized()?;
    super::fast::substitute_optimized(&mut model)?;
    Ok(Optimized { model, split, index_limits, convolves_symbols })
}

/// A model typed and optimized, with what the load reads from its analysis.
pub(crate) struct Optimized {
    pub(crate) model: TypedModel,
    /// Whether its batches may be split and are worth splitting.
    pub(crate) split: bool,
    /// The inputs that index constant tables.
    pub(crate) index_limits: Vec<IndexLimit>,
    /// Whether a convolution or pooling reads an input of symbolic shape. tract's fast
    /// convolutions (depthwise, direct, lazy im2col) and oxinfer's need every dim known; with a
    /// symbolic dim a convolution falls back to a generic im2col and one product per group,
    /// several times slower (a depthwise convolution most), so such a model is planned per shape.
    pub(crate) convolves_symbols: bool,
}

fn convolves_symbols(model: &TypedModel) -> TractResult<bool> {
    use tract_onnx::tract_core::ops::cnn::{Conv, Deconv, MaxPool, SumPool};
    for node in model.nodes() {
        let op = node.op();
        if op.is::<Conv>() || op.is::<Deconv>() || op.is::<MaxPool>() || op.is::<SumPool>() {
            if model.outlet_fact(node.inputs[0])?.shape.as_concrete().is_none() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn apply_input_specs(model: &mut InferenceModel, specs: &[(String, InputSpec)]) -> Result<()> {
    let names = input_names(model);
    for (name, spec) in specs {
        let ix = names.iter().position(|n| n == name).ok_or_else(|| {
            Error::input_name(format!(
                "load option inputs.{name}: the model has no input named '{name}'; its inputs are {}",
                names.join(", ")
            ))
        })?;
        let mut fact: InferenceFact =
            model.input_fact(ix).map_err(|e| Error::model_load(chain(&e)))?.clone();
        if let Some(dtype) = spec.dtype {
            fact = fact.with_datum_type(dtype.to_tract());
        }
        if let Some(shape) = &spec.shape {
            let dims = shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => Ok(TDim::from(*n)),
                    Dim::Symbol(s) => model.symbols.parse_tdim(s).map_err(|e| {
                        Error::input_shape(format!(
                            "load option inputs.{name}.shape: cannot read dimension '{s}': {}",
                            chain(&e)
                        ))
                    }),
                })
                .collect::<Result<Vec<TDim>>>()?;
            fact = fact.with_shape(dims);
        }
        model.set_input_fact(ix, fact).map_err(|e| {
            Error::model_load(format!("load option inputs.{name}: {}", chain(&e)))
        })?;
    }
    Ok(())
}

fn input_names(model: &InferenceModel) -> Vec<String> {
    model.inputs.iter().map(|o| model.node(o.node).name.clone()).collect()
}

fn apply_constants(model: &mut InferenceModel, constants: &[Feed<'_>]) -> Result<()> {
    for feed in constants {
        let names = input_names(model);
        let ix = names.iter().position(|n| n == feed.name).ok_or_else(|| {
            Error::input_name(format!(
                "load option constants.{}: the model has no input named '{}'; its inputs are {}",
                feed.name,
                feed.name,
                names.join(", ")
            ))
        })?;
        let t = &feed.tensor;
        let declared = model.input_fact(ix).map_err(|e| Error::model_load(chain(&e)))?;
        if let Some(dt) = declared.datum_type.concretize() {
            if dt != t.dtype.to_tract() {
                return Err(Error::input_dtype(format!(
                    "load option constants.{}: expected {}, got {}",
                    feed.name,
                    DType::from_tract(dt).map(|d| d.name()).unwrap_or("an unsupported type"),
                    t.dtype
                )));
            }
        }
        let count = crate::tensor::element_count(feed.name, t.shape)?;
        if count * t.dtype.size() != t.data.len() {
            return Err(Error::input_shape(format!(
                "load option constants.{}: shape {} needs {count} elements, but the data has {}",
                feed.name,
                shape_string(t.shape),
                t.data.len() / t.dtype.size()
            )));
        }
        let tensor = to_tensor(t.dtype, t.shape, t.data)?;
        let node = model.inputs[ix].node;
        let konst = tract_onnx::tract_hir::ops::konst::Const::new(tensor.clone().into_arc_tensor())
            .map_err(|e| Error::model_load(chain(&e)))?;
        model.node_mut(node).op = Box::new(konst);
        model
            .set_outlet_fact(OutletId::new(node, 0), InferenceFact::from(tensor))
            .map_err(|e| Error::model_load(chain(&e)))?;
        model.inputs.remove(ix);
    }
    Ok(())
}

/// ONNX lets a file leave a dim unnamed (Silero VAD's `input` is `[?, ?]`); tract needs a
/// symbol there, so each unnamed dim becomes `{input}_{axis}` (caller facts take precedence).
fn name_unknown_dims(model: &mut InferenceModel) -> Result<()> {
    let fail = |e: TractError| Error::model_load(chain(&e));
    for ix in 0..model.inputs.len() {
        let name = model.node(model.inputs[ix].node).name.clone();
        let fact = model.input_fact(ix).map_err(fail)?.clone();
        if fact.shape.is_open() || fact.shape.dims().all(|d| d.concretize().is_some()) {
            continue;
        }
        let dims: Vec<TDim> = fact
            .shape
            .dims()
            .enumerate()
            .map(|(axis, d)| match d.concretize() {
                Some(d) => d,
                None => TDim::Sym(model.symbols.sym(&format!("{name}_{axis}"))),
            })
            .collect();
        model.set_input_fact(ix, fact.with_shape(dims)).map_err(fail)?;
    }
    Ok(())
}

fn describe(model: &TypedModel, outlets: &[OutletId], names: &[String], kind: &str) -> Result<Vec<TensorInfo>> {
    if outlets.len() != names.len() {
        return Err(Error::model_load(format!(
            "the optimized model has {} {kind}s where the file declares {}",
            outlets.len(),
            names.len()
        )));
    }
    outlets
        .iter()
        .zip(names)
        .map(|(&o, name)| {
            let name = name.clone();
            let fact = model.outlet_fact(o).map_err(|e| Error::model_load(chain(&e)))?;
            let datum_type = if fact.datum_type == DatumType::TDim { DatumType::I64 } else { fact.datum_type };
            let dtype = DType::from_tract(datum_type).ok_or_else(|| {
                Error::model_load(format!(
                    "{kind} '{name}' has element type {:?}, which oxinfer does not support",
                    fact.datum_type
                ))
            })?;
            let shape = fact
                .shape
                .iter()
                .map(|d| match d.to_usize() {
                    Ok(n) => Dim::Fixed(n),
                    Err(_) => Dim::Symbol(d.to_string()),
                })
                .collect();
            Ok(TensorInfo { name, dtype, shape })
        })
        .collect()
}

fn count_ops(model: &InferenceModel) -> Vec<OpCount> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for node in model.nodes() {
        let name = node.op.name().to_string();
        if name != "Source" {
            *counts.entry(name).or_default() += 1;
        }
    }
    let mut ops: Vec<OpCount> = counts.into_iter().map(|(op, count)| OpCount { op, count }).collect();
    ops.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.op.cmp(&b.op)));
    ops
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl crate::cache::Weigh for TractModel {
    /// The file's size: an estimate (tract's optimized plan is usually of that order).
    fn bytes(&self) -> usize {
        self.file_bytes
    }
}

/// The cache key of a load: where the model comes from (a file's path, size and mtime, or the
/// bytes' hash) and every option that changes the loaded plan.
fn cache_key(source: ModelSource<'_>, options: &LoadOptions<'_>) -> Result<String> {
    let origin = match source {
        ModelSource::Path(p) => crate::cache::file_identity(p).map_err(|e| {
            Error::model_load(format!("cannot read model file '{}': {e}", p.display()))
        })?,
        ModelSource::Bytes(b) => format!("bytes:{}", hex(&Sha256::digest(b))),
    };
    let threads = options.threads.unwrap_or_else(available_cpus);
    let precision = options.precision.effective().name();
    let mut key = format!("tract:{origin}|threads={threads}|precision={precision}|inputs={:?}", options.inputs);
    for (location, data) in &options.external_data {
        key.push_str(&format!("|external {location}={}", hex(&Sha256::digest(data))));
    }
    for c in &options.constants {
        key.push_str(&format!(
            "|const {}:{}{:?}={}",
            c.name,
            c.tensor.dtype,
            c.tensor.shape,
            hex(&Sha256::digest(c.tensor.data))
        ));
    }
    Ok(key)
}
