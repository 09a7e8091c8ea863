//! ONNX ops registered on tract's parser in place of, or beside, tract-onnx's own: where
//! tract's version rejects what real exporters write (symbolic shapes, float16, onnxruntime's
//! quantized operators), and rewrites of the file's graph for what tract lacks.

pub(crate) mod contrib;
pub(crate) mod float16;
pub(crate) mod integer;
pub(crate) mod loss;
mod proto;
mod flatten;
mod gemm;
pub(crate) mod if_op;

use tract_onnx::model::OnnxOpRegister;

pub fn register(reg: &mut OnnxOpRegister) {
    if_op::register(reg);
    reg.insert("Flatten", flatten::build);
    reg.insert("Gemm", gemm::build);
}
