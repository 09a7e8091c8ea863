//! The tract engine: ONNX models on CPU.
//!
//! [`TractModel::load`] parses, types and optimizes a model once; the resulting plan is shared
//! (`Arc`) by every concurrent [`TractModel::run`]. [`TractSession`] keeps recurrent state
//! between runs.

mod batch;
mod bind;
mod external;
mod fast;
mod if_op;
mod indices;
mod load;
mod profile;
mod run;
mod session;
mod split;
mod validate;

pub use load::{InputSpec, LoadOptions, ModelSource, OpCount, TractModel};
pub use profile::NodeCost;
pub use session::{SessionOptions, TractSession, carry_pairs};
