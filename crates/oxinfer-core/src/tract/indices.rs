//! Inputs that index a constant table (token ids into an embedding, token type ids into a
//! type embedding): their values are checked against the table's size before a run, so an id
//! out of range is an input error that names the input, not a panic inside the engine.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;

use crate::dtype::DType;
use crate::error::{Error, Result};

/// One input read as indices along an axis of `len` entries of a constant table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexLimit {
    /// Position among the model's inputs.
    pub input: usize,
    /// The table's size along the gathered axis: values must lie in `-len .. len` (ONNX counts
    /// negative indices from the end).
    pub len: usize,
    /// The table's node, for the message.
    pub table: String,
}

/// The limits of every input that a `Gather` of a constant table reads directly, found in the
/// decluttered model (whose inputs are the model's, in order).
pub(crate) fn index_limits(model: &TypedModel) -> TractResult<Vec<IndexLimit>> {
    let mut limits = Vec::new();
    for node in &model.nodes {
        let Some(gather) = node.op_as::<Gather>() else {
            continue;
        };
        let [data, indices] = node.inputs[..] else {
            continue;
        };
        let Some(input) = model.inputs.iter().position(|&o| o == indices) else {
            continue;
        };
        let fact = model.outlet_fact(data)?;
        if fact.konst.is_none() {
            continue;
        }
        let Some(len) = fact.shape.get(gather.axis).and_then(|d| d.as_i64()).and_then(|d| usize::try_from(d).ok()) else {
            continue;
        };
        let limit = IndexLimit { input, len, table: model.node(data.node).name.clone() };
        // A tighter table wins where one input indexes several.
        match limits.iter_mut().find(|l: &&mut IndexLimit| l.input == input) {
            Some(l) if l.len > len => *l = limit,
            Some(_) => {}
            None => limits.push(limit),
        }
    }
    Ok(limits)
}

/// Checks the raw little-endian values of input `name` (`dtype`) against `limit`. The first bad
/// value is named with its flat position.
pub(crate) fn check_indices(limit: &IndexLimit, name: &str, dtype: DType, data: &[u8]) -> Result<()> {
    let len = limit.len as i64;
    let bad = |at: usize, v: i64| {
        let range = if len == 0 { "none: the table is empty".to_string() } else { format!("0..{} (or -{len}..-1 from the end)", len - 1) };
        Err(Error::input_value(format!(
            "input '{name}': value {v} at flat position {at} is out of range for the table '{}' it indexes ({len} entries); valid: {range}",
            limit.table
        )))
    };
    let ok = |v: i64| v >= -len && v < len;
    match dtype {
        DType::Int64 => {
            for (at, b) in data.chunks_exact(8).enumerate() {
                let v = i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                if !ok(v) {
                    return bad(at, v);
                }
            }
        }
        DType::Int32 => {
            for (at, b) in data.chunks_exact(4).enumerate() {
                let v = i64::from(i32::from_le_bytes(b.try_into().unwrap_or([0; 4])));
                if !ok(v) {
                    return bad(at, v);
                }
            }
        }
        // Other dtypes cannot index (ONNX Gather takes int32 or int64): the dtype check refused them.
        _ => {}
    }
    Ok(())
}
