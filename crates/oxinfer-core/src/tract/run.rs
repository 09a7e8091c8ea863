//! One run: bind, execute on the shared plan, wrap the outputs.

use crate::error::{Error, ErrorCode, Result, chain};
use crate::panic::guard;
use crate::tensor::{Feed, OutputTensor};
use tract_onnx::prelude::*;

use super::TractModel;
use super::bind::{Fallback, NoFallback};

impl TractModel {
    /// Runs the model once. Safe to call from many threads at once: each call gets its own
    /// execution state over the shared plan.
    pub fn run(&self, feeds: &[Feed<'_>]) -> Result<Vec<OutputTensor>> {
        self.run_with(feeds, &NoFallback)
    }

    pub(crate) fn run_with(
        &self,
        feeds: &[Feed<'_>],
        fallback: &dyn Fallback,
    ) -> Result<Vec<OutputTensor>> {
        let values = self.bind(feeds, fallback)?;
        self.execute(values)
    }

    pub(crate) fn execute(&self, values: TVec<TValue>) -> Result<Vec<OutputTensor>> {
        let outputs = guard(ErrorCode::Engine, "running the model", || {
            self.plan
                .run(values)
                .map_err(|e| Error::engine(format!("the model failed to run: {}", chain(&e))))
        })?;
        self.wrap_outputs(outputs)
    }
}
