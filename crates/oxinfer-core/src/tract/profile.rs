//! Where a run's time goes: the plan run node by node with each node's evaluation timed.
//! A developer tool (`cargo run --release --example profile`), not a serving path: it runs the
//! whole plan on the calling thread, without the batch split.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tract_onnx::tract_core::plan::{SimpleState, eval};

use super::TractModel;
use super::bind::NoFallback;
use crate::error::{Error, ErrorCode, Result, chain};
use crate::panic::guard;
use crate::tensor::Feed;

/// One node's share of the measured runs.
#[derive(Debug, Clone)]
pub struct NodeCost {
    pub node: String,
    /// The op and its parameters, as tract prints them.
    pub op: String,
    /// Median over the runs of this node's evaluation time.
    pub median: Duration,
}

impl TractModel {
    /// Runs the model `runs` times on these feeds and returns every evaluated node's median time,
    /// in plan order.
    pub fn profile(&self, feeds: &[Feed<'_>], runs: usize) -> Result<Vec<NodeCost>> {
        guard(ErrorCode::Engine, "profiling the model", || self.profile_unguarded(feeds, runs))
    }

    fn profile_unguarded(&self, feeds: &[Feed<'_>], runs: usize) -> Result<Vec<NodeCost>> {
        let values = self.bind(feeds, &NoFallback)?;
        let mut samples: HashMap<usize, Vec<Duration>> = HashMap::new();
        let plan = self.plans.plan_for(&values).map_err(|e| Error::engine(chain(&e)))?;
        let mut state = SimpleState::new(&plan).map_err(|e| Error::engine(chain(&e)))?;
        for _ in 0..runs.max(1) {
            state
                .run_plan_with_eval(values.clone(), |ctx, op_state, node, inputs| {
                    let start = Instant::now();
                    let out = eval(ctx, op_state, node, inputs);
                    samples.entry(node.id).or_default().push(start.elapsed());
                    out
                })
                .map_err(|e| Error::engine(format!("the model failed to run: {}", chain(&e))))?;
        }
        let model = plan.model();
        Ok(plan
            .order_without_consts()
            .iter()
            .filter_map(|&id| {
                let mut s = samples.remove(&id)?;
                s.sort();
                let node = model.node(id);
                Some(NodeCost { node: node.name.clone(), op: format!("{}", node.op().name()), median: s[s.len() / 2] })
            })
            .collect())
    }
}
