//! The napi-rs binding of oxinfer-core. It converts JS values, schedules work on the libuv
//! pool and maps errors; it holds no ML logic.

mod error;
mod tensor;
mod tract_model;

pub use tract_model::{NativeTractModel, NativeTractSession};
