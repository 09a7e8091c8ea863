//! The tract engine: ONNX models on CPU.
//!
//! [`TractModel::load`] parses, types and optimizes a model once; the resulting plan is shared
//! (`Arc`) by every concurrent [`TractModel::run`]. [`TractSession`] keeps recurrent state
//! between runs.

mod batch;
mod bind;
mod dequantize;
mod external;
mod fast;
mod onnx;
mod indices;
mod load;
mod plans;
mod profile;
mod run;
mod session;
mod split;
mod symbolic_values;
mod validate;

pub use load::{InputSpec, LoadOptions, ModelSource, OpCount, TractModel};
pub use plans::{Planning, SHAPE_PLANS};
pub use profile::NodeCost;
pub use session::{SessionOptions, TractSession, carry_pairs};
