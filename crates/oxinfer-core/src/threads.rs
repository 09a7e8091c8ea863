//! Intra-op thread pools, shared by every model that asks for the same size.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tract_linalg::multithread::Executor;

/// The CPUs this process may use (std reads cgroup quotas and affinity masks).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Elements from which tract splits an elementwise op over the executor's threads.
const ELEMENTS_PER_SPLIT: usize = 1 << 20;

/// A tract executor with `threads` workers. One pool per size, shared across models, so
/// loading many models does not multiply threads.
pub fn tract_executor(threads: usize) -> Executor {
    if threads <= 1 {
        return Executor::SingleThread;
    }
    // tract splits an elementwise op, a softmax or a norm over the pool from 32K elements: a
    // batch-1 encoder's GELU (196K) then ran in 270 µs on two threads against 130 on one, the
    // pool threads' wake-up (tens of µs on a VM, per op) costing more than the split saved, and
    // the whole run took 23-34 ms on two threads against 21-22 on one. From 1M elements (~0.7 ms
    // of one core's work) a split pays for its hand-off. Set for the process: tract keeps it in a
    // global, and oxinfer's executors are the only ones it uses: set when the first pool is
    // made, not on every lookup (split runs look their executor up per run).
    static POOLS: OnceLock<Mutex<HashMap<usize, Executor>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut pools = pools.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    pools
        .entry(threads)
        .or_insert_with(|| {
            tract_linalg::multithread::set_threading_element_threshold(ELEMENTS_PER_SPLIT);
            Executor::multithread_with_name(threads, "oxinfer-tract")
        })
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
