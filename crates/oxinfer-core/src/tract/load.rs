//! Loading: bytes → typed, optimized, runnable plan, plus the metadata the API exposes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_hir::infer::InferenceFact;
use tract_onnx::tract_hir::prelude::InferenceModelExt;

use crate::dtype::DType;
use crate::error::{Error, ErrorCode, Result, chain};
use crate::panic::guard;
use crate::tensor::{Dim, OutputTensor, TensorInfo};
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

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// Input facts by input name.
    pub inputs: Vec<(String, InputSpec)>,
    /// Intra-op threads; `None` uses every CPU this process may use.
    pub threads: Option<usize>,
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
    pub(crate) plan: Arc<TypedRunnableModel>,
    pub(crate) inputs: Vec<TensorInfo>,
    pub(crate) outputs: Vec<TensorInfo>,
    sha256: String,
    ops: Vec<OpCount>,
    threads: usize,
}

impl TractModel {
    pub fn load(source: ModelSource<'_>, options: &LoadOptions) -> Result<TractModel> {
        let owned;
        let (bytes, origin) = match source {
            ModelSource::Path(p) => {
                owned = std::fs::read(p).map_err(|e| {
                    Error::model_load(format!("cannot read model file '{}': {e}", p.display()))
                })?;
                (&owned[..], format!("'{}'", p.display()))
            }
            ModelSource::Bytes(b) => (b, format!("the given bytes ({} bytes)", b.len())),
        };
        guard(ErrorCode::ModelLoad, "loading the model", || load_bytes(bytes, &origin, options))
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

    pub(crate) fn input_index(&self, name: &str) -> Option<usize> {
        self.inputs.iter().position(|i| i.name == name)
    }

    /// Wraps the engine's output values as API tensors, without copying them.
    pub(crate) fn wrap_outputs(&self, values: TVec<TValue>) -> Result<Vec<OutputTensor>> {
        values
            .into_iter()
            .zip(&self.outputs)
            .map(|(v, info)| {
                let tensor = v.into_arc_tensor();
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

fn load_bytes(bytes: &[u8], origin: &str, options: &LoadOptions) -> Result<TractModel> {
    let sha256 = hex(&Sha256::digest(bytes));
    let fail = |stage: &str, e: &dyn std::fmt::Display| {
        Error::model_load(format!("cannot {stage} the ONNX model from {origin}: {}", chain(e)))
    };
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| fail("parse", &e))?;
    let ops = count_ops(&model);
    apply_input_specs(&mut model, &options.inputs)?;
    let typed = model.into_optimized().map_err(|e| fail("analyse and optimize", &e))?;
    let inputs = describe(&typed, typed.input_outlets().map_err(|e| fail("read", &e))?, "input")?;
    let outputs =
        describe(&typed, typed.output_outlets().map_err(|e| fail("read", &e))?, "output")?;
    let threads = options.threads.unwrap_or_else(available_cpus).max(1);
    let run_options = RunOptions { executor: Some(tract_executor(threads)), ..Default::default() };
    let plan = typed
        .into_runnable_with_options(&run_options)
        .map_err(|e| fail("plan", &e))?;
    Ok(TractModel { plan, inputs, outputs, sha256, ops, threads })
}

fn apply_input_specs(model: &mut InferenceModel, specs: &[(String, InputSpec)]) -> Result<()> {
    let names: Vec<String> = model
        .input_outlets()
        .map_err(|e| Error::model_load(chain(&e)))?
        .iter()
        .map(|o| model.node(o.node).name.clone())
        .collect();
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

fn describe(model: &TypedModel, outlets: &[OutletId], kind: &str) -> Result<Vec<TensorInfo>> {
    outlets
        .iter()
        .map(|&o| {
            let name = model.outlet_label(o).unwrap_or(&model.node(o.node).name).to_string();
            let fact = model.outlet_fact(o).map_err(|e| Error::model_load(chain(&e)))?;
            let dtype = DType::from_tract(fact.datum_type).ok_or_else(|| {
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
