//! Tensors across the boundary: inputs are read in place from JS typed arrays (held by a
//! reference until the work completes); outputs become external ArrayBuffers that own the
//! engine's buffer (napi-rs copies instead where the runtime forbids external buffers), except
//! small ones (<= 4 KiB), which are copied into a JS-owned buffer because that is cheaper.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;
use oxinfer_core::{DType, ErrorCode, Feed, OutputTensor};

use crate::error::{IntoJs, js_error};

/// Any JS typed array, held alive while the engine reads it.
pub enum TensorData {
    F32(Float32Array),
    F64(Float64Array),
    I64(BigInt64Array),
    U64(BigUint64Array),
    I32(Int32Array),
    U32(Uint32Array),
    I16(Int16Array),
    U16(Uint16Array),
    I8(Int8Array),
    U8(Uint8Array),
    U8Clamped(Uint8ClampedArray),
}

fn bytes_of<T>(s: &[T]) -> &[u8] {
    // SAFETY: any initialized memory may be viewed as bytes.
    unsafe { std::slice::from_raw_parts(s.as_ptr() as *const u8, std::mem::size_of_val(s)) }
}

impl TensorData {
    pub fn bytes(&self) -> &[u8] {
        match self {
            TensorData::F32(a) => bytes_of(a),
            TensorData::F64(a) => bytes_of(a),
            TensorData::I64(a) => bytes_of(a),
            TensorData::U64(a) => bytes_of(a),
            TensorData::I32(a) => bytes_of(a),
            TensorData::U32(a) => bytes_of(a),
            TensorData::I16(a) => bytes_of(a),
            TensorData::U16(a) => bytes_of(a),
            TensorData::I8(a) => bytes_of(a),
            TensorData::U8(a) => bytes_of(a),
            TensorData::U8Clamped(a) => bytes_of(a),
        }
    }
}

impl TypeName for TensorData {
    fn type_name() -> &'static str {
        "TypedArray"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for TensorData {}

impl FromNapiValue for TensorData {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut is_typed = false;
        unsafe { sys::napi_is_typedarray(env, value, &mut is_typed) };
        if !is_typed {
            return Err(js_error(ErrorCode::InputDtype, "tensor data must be a TypedArray"));
        }
        let mut kind = 0;
        let status = unsafe {
            sys::napi_get_typedarray_info(
                env,
                value,
                &mut kind,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if status != sys::Status::napi_ok {
            return Err(js_error(ErrorCode::InputDtype, "cannot read the typed array"));
        }
        use sys::TypedarrayType as T;
        // SAFETY: `value` is a typed array of the matching kind.
        unsafe {
            Ok(match kind {
                T::float32_array => TensorData::F32(FromNapiValue::from_napi_value(env, value)?),
                T::float64_array => TensorData::F64(FromNapiValue::from_napi_value(env, value)?),
                T::bigint64_array => TensorData::I64(FromNapiValue::from_napi_value(env, value)?),
                T::biguint64_array => TensorData::U64(FromNapiValue::from_napi_value(env, value)?),
                T::int32_array => TensorData::I32(FromNapiValue::from_napi_value(env, value)?),
                T::uint32_array => TensorData::U32(FromNapiValue::from_napi_value(env, value)?),
                T::int16_array => TensorData::I16(FromNapiValue::from_napi_value(env, value)?),
                T::uint16_array => TensorData::U16(FromNapiValue::from_napi_value(env, value)?),
                T::int8_array => TensorData::I8(FromNapiValue::from_napi_value(env, value)?),
                T::uint8_array => TensorData::U8(FromNapiValue::from_napi_value(env, value)?),
                T::uint8_clamped_array => {
                    TensorData::U8Clamped(FromNapiValue::from_napi_value(env, value)?)
                }
                other => {
                    return Err(js_error(
                        ErrorCode::InputDtype,
                        format!("unsupported typed array kind {other} (Float16Array: pass a Uint16Array of its bits)"),
                    ));
                }
            })
        }
    }
}

/// One named input, as the TypeScript layer sends it (dtype already resolved and checked
/// against the array kind there).
#[napi(object, object_to_js = false)]
pub struct NativeFeed {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    #[napi(ts_type = "ArrayBufferView")]
    pub data: TensorData,
}

/// Feeds with their shapes and dtypes converted; borrowed by [`Feed`]s.
pub struct Converted {
    names: Vec<String>,
    dtypes: Vec<DType>,
    shapes: Vec<Vec<usize>>,
}

impl Converted {
    pub fn new(feeds: &[NativeFeed]) -> Result<Converted> {
        let mut c = Converted { names: vec![], dtypes: vec![], shapes: vec![] };
        for f in feeds {
            c.dtypes.push(f.dtype.parse::<DType>().js()?);
            let shape = f
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<std::result::Result<Vec<usize>, _>>()
                .map_err(|_| {
                    js_error(
                        ErrorCode::InputShape,
                        format!("input '{}': shape {:?} has a negative dimension", f.name, f.shape),
                    )
                })?;
            c.shapes.push(shape);
            c.names.push(f.name.clone());
        }
        Ok(c)
    }

    pub fn feeds<'a>(&'a self, data: &'a [NativeFeed]) -> Vec<Feed<'a>> {
        (0..self.names.len())
            .map(|i| Feed::new(&self.names[i], self.dtypes[i], &self.shapes[i], data[i].data.bytes()))
            .collect()
    }
}

/// An engine output on its way to JS.
pub struct OutputData(pub OutputTensor);

impl TypeName for OutputData {
    fn type_name() -> &'static str {
        "TypedArray"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

macro_rules! external {
    ($array:ident, $elem:ty, $t:expr, $env:expr) => {{
        let keep = $t.keep_alive();
        let ptr = $t.bytes().as_ptr() as *mut $elem;
        // SAFETY: `ptr` points at `len` aligned elements owned by `keep`, which the finalizer
        // drops only when JS has released the ArrayBuffer; nothing writes to it meanwhile.
        let array = unsafe { $array::with_external_data(ptr, $t.len(), move |_, _| drop(keep)) };
        unsafe { $array::to_napi_value($env, array) }
    }};
}

/// Outputs up to this size are copied into a JS-owned ArrayBuffer instead of wrapped as an
/// external one: an external buffer costs a finalizer and a global handle (about a microsecond
/// per output, measured on a 1-element model), more than copying a few KiB.
const COPY_AT_MOST: usize = 4096;

/// A typed array of `kind` over a fresh JS ArrayBuffer holding a copy of `bytes`.
unsafe fn copied(env: sys::napi_env, kind: sys::napi_typedarray_type, bytes: &[u8], len: usize) -> Result<sys::napi_value> {
    let mut data = std::ptr::null_mut();
    let mut buffer = std::ptr::null_mut();
    let status = unsafe { sys::napi_create_arraybuffer(env, bytes.len(), &mut data, &mut buffer) };
    if status != sys::Status::napi_ok || (data.is_null() && !bytes.is_empty()) {
        return Err(js_error(ErrorCode::Engine, "cannot allocate an output ArrayBuffer"));
    }
    if !bytes.is_empty() {
        // SAFETY: `data` points at `bytes.len()` writable bytes just allocated by the runtime.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data as *mut u8, bytes.len()) };
    }
    let mut array = std::ptr::null_mut();
    let status = unsafe { sys::napi_create_typedarray(env, kind, len, buffer, 0, &mut array) };
    if status != sys::Status::napi_ok {
        return Err(js_error(ErrorCode::Engine, "cannot create an output typed array"));
    }
    Ok(array)
}

/// One output as a typed array of its dtype: copied when small, external otherwise.
macro_rules! output {
    ($array:ident, $elem:ty, $kind:expr, $t:expr, $env:expr) => {{
        if $t.bytes().len() <= COPY_AT_MOST {
            unsafe { copied($env, $kind, $t.bytes(), $t.len()) }
        } else {
            external!($array, $elem, $t, $env)
        }
    }};
}

impl ToNapiValue for OutputData {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let t = &val.0;
        use sys::TypedarrayType as T;
        match t.dtype {
            DType::Float32 => output!(Float32Array, f32, T::float32_array, t, env),
            DType::Float64 => output!(Float64Array, f64, T::float64_array, t, env),
            DType::Int64 => output!(BigInt64Array, i64, T::bigint64_array, t, env),
            DType::Uint64 => output!(BigUint64Array, u64, T::biguint64_array, t, env),
            DType::Int32 => output!(Int32Array, i32, T::int32_array, t, env),
            DType::Uint32 => output!(Uint32Array, u32, T::uint32_array, t, env),
            DType::Int16 => output!(Int16Array, i16, T::int16_array, t, env),
            DType::Uint16 | DType::Float16 => output!(Uint16Array, u16, T::uint16_array, t, env),
            DType::Int8 => output!(Int8Array, i8, T::int8_array, t, env),
            DType::Uint8 | DType::Bool => output!(Uint8Array, u8, T::uint8_array, t, env),
        }
    }
}

#[napi(object, object_from_js = false)]
pub struct NativeOutput {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    #[napi(ts_type = "ArrayBufferView")]
    pub data: OutputData,
}

pub fn to_native_outputs(outputs: Vec<OutputTensor>) -> Vec<NativeOutput> {
    outputs
        .into_iter()
        .map(|t| NativeOutput {
            name: t.name.clone(),
            dtype: t.dtype.name().to_string(),
            shape: t.shape.iter().map(|&d| d as i64).collect(),
            data: OutputData(t),
        })
        .collect()
}
