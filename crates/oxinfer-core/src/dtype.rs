//! Element types as the public API names them, and their tract equivalents.

use std::fmt;
use std::str::FromStr;

use tract_onnx::prelude::{DatumType, f16};

use crate::error::{Error, Result};

/// Element type of a tensor. The names are those of the JS API (`'float32'`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Float32,
    Float64,
    Float16,
    Int64,
    Int32,
    Int16,
    Int8,
    Uint64,
    Uint32,
    Uint16,
    Uint8,
    Bool,
}

impl DType {
    pub const ALL: [DType; 12] = [
        DType::Float32,
        DType::Float64,
        DType::Float16,
        DType::Int64,
        DType::Int32,
        DType::Int16,
        DType::Int8,
        DType::Uint64,
        DType::Uint32,
        DType::Uint16,
        DType::Uint8,
        DType::Bool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Float16 => "float16",
            DType::Int64 => "int64",
            DType::Int32 => "int32",
            DType::Int16 => "int16",
            DType::Int8 => "int8",
            DType::Uint64 => "uint64",
            DType::Uint32 => "uint32",
            DType::Uint16 => "uint16",
            DType::Uint8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Float64 | DType::Int64 | DType::Uint64 => 8,
            DType::Float32 | DType::Int32 | DType::Uint32 => 4,
            DType::Float16 | DType::Int16 | DType::Uint16 => 2,
            DType::Int8 | DType::Uint8 | DType::Bool => 1,
        }
    }

    pub fn to_tract(self) -> DatumType {
        match self {
            DType::Float32 => DatumType::F32,
            DType::Float64 => DatumType::F64,
            DType::Float16 => DatumType::F16,
            DType::Int64 => DatumType::I64,
            DType::Int32 => DatumType::I32,
            DType::Int16 => DatumType::I16,
            DType::Int8 => DatumType::I8,
            DType::Uint64 => DatumType::U64,
            DType::Uint32 => DatumType::U32,
            DType::Uint16 => DatumType::U16,
            DType::Uint8 => DatumType::U8,
            DType::Bool => DatumType::Bool,
        }
    }

    /// The public dtype of a tract datum type; `None` for types the API does not carry
    /// (strings, quantized types, complex numbers).
    pub fn from_tract(dt: DatumType) -> Option<DType> {
        // Quantized types unquantize to their storage type for the API's purposes.
        Some(match dt.unquantized() {
            DatumType::F32 => DType::Float32,
            DatumType::F64 => DType::Float64,
            DatumType::F16 => DType::Float16,
            DatumType::I64 => DType::Int64,
            DatumType::I32 => DType::Int32,
            DatumType::I16 => DType::Int16,
            DatumType::I8 => DType::Int8,
            DatumType::U64 => DType::Uint64,
            DatumType::U32 => DType::Uint32,
            DatumType::U16 => DType::Uint16,
            DatumType::U8 => DType::Uint8,
            DatumType::Bool => DType::Bool,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<DType> {
        DType::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let names: Vec<&str> = DType::ALL.iter().map(|d| d.name()).collect();
            Error::input_dtype(format!("unknown dtype '{s}'; expected one of {}", names.join(", ")))
        })
    }
}

// Keeps the f16 import honest: the API carries float16 as raw u16 bits.
const _: () = assert!(std::mem::size_of::<f16>() == 2);
