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

/// A rayon pool with `threads` workers for the candle engine, shared per size like tract's.
pub fn rayon_pool(threads: usize) -> crate::Result<std::sync::Arc<rayon::ThreadPool>> {
    use std::sync::Arc;
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut pools = pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pool) = pools.get(&threads) {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("oxinfer-candle-{i}"))
        .build()
        .map_err(|e| crate::Error::engine(format!("cannot start {threads} threads: {e}")))?;
    let pool = Arc::new(pool);
    pools.insert(threads, Arc::clone(&pool));
    Ok(pool)
}
