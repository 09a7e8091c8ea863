//! Intra-op thread pools, shared by every model that asks for the same size.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tract_linalg::multithread::Executor;

/// The CPUs this process may use (std reads cgroup quotas and affinity masks).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A tract executor with `threads` workers. One pool per size, shared across models, so
/// loading many models does not multiply threads.
pub fn tract_executor(threads: usize) -> Executor {
    if threads <= 1 {
        return Executor::SingleThread;
    }
    static POOLS: OnceLock<Mutex<HashMap<usize, Executor>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut pools = pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pools
        .entry(threads)
        .or_insert_with(|| Executor::multithread_with_name(threads, "oxinfer-tract"))
        .clone()
}
