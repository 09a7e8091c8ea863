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

/// Multiply-adds from which tract splits a matrix product over the executor's threads, as
/// oxinfer's own kernels do (tract/fast `PARALLEL_MACS`). tract also splits any product of 64
/// tiles or more, however few its multiply-adds: the pointwise convolutions of a small CNN
/// (400K multiply-adds, ~20 µs) then each paid a hand-off, and the pool's threads spinning
/// beside the serial ops after it slowed those too; MobileNetV2 at 64x64 ran 2.5x slower on
/// two threads than on one.
const PRODUCT_MACS_PER_SPLIT: usize = 16 << 20;

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
            tract_linalg::multithread::set_threading_panel_threshold(usize::MAX);
            tract_linalg::multithread::set_threading_mac_threshold(PRODUCT_MACS_PER_SPLIT);
            Executor::multithread_with_name(threads, "oxinfer-tract")
        })
        .clone()
}

/// Where the candle engine's calls run: a pool of the model's `threads` workers shared per size
/// like tract's, or, for one thread, a one-thread pool of each calling thread's own.
///
/// Why one pool per caller at one thread: calls installed into one shared one-thread pool ran
/// one at a time, so a `threads: 1` embedder served 16 concurrent batch-1 calls in 519 ms
/// against 277 with two threads, and every `threads: 1` model of the process queued behind the
/// others; tract's one-thread models run concurrent calls side by side, one core each. A pool
/// (not the caller's thread itself) still bounds the call's parallel ops to its one thread.
#[derive(Clone)]
pub enum CpuPool {
    Shared(std::sync::Arc<rayon::ThreadPool>),
    PerCaller,
}

impl CpuPool {
    pub fn new(threads: usize) -> crate::Result<CpuPool> {
        Ok(if threads <= 1 { CpuPool::PerCaller } else { CpuPool::Shared(rayon_pool(threads)?) })
    }

    /// Runs `f` on this pool (for `PerCaller`, the calling thread's own).
    pub fn install<T: Send>(&self, f: impl FnOnce() -> crate::Result<T> + Send) -> crate::Result<T> {
        match self {
            CpuPool::Shared(pool) => pool.install(f),
            CpuPool::PerCaller => {
                thread_local! {
                    static OWN: std::cell::OnceCell<rayon::ThreadPool> = const { std::cell::OnceCell::new() };
                }
                OWN.with(|own| {
                    if own.get().is_none() {
                        let _ = own.set(build_pool(1, "oxinfer-candle-solo")?);
                    }
                    own.get().map_or_else(|| Err(crate::Error::engine("cannot start a thread for the call")), |pool| pool.install(f))
                })
            }
        }
    }
}

fn build_pool(threads: usize, name: &'static str) -> crate::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{name}-{i}"))
        .build()
        .map_err(|e| crate::Error::engine(format!("cannot start {threads} threads: {e}")))
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
    let pool = Arc::new(build_pool(threads, "oxinfer-candle")?);
    pools.insert(threads, Arc::clone(&pool));
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::CpuPool;

    /// Two calls on a one-thread pool, from two threads, run at once: each waits inside its
    /// call for the other to have started (with one shared one-thread pool the second would
    /// start only after the first gave up waiting).
    #[test]
    fn one_thread_calls_from_two_callers_run_side_by_side() {
        let pool = CpuPool::new(1).expect("a pool");
        let (to_b, from_a) = mpsc::channel();
        let (to_a, from_b) = mpsc::channel();
        let call = |pool: CpuPool, tell: mpsc::Sender<()>, hear: mpsc::Receiver<()>| {
            std::thread::spawn(move || {
                pool.install(move || {
                    assert_eq!(rayon::current_num_threads(), 1, "a one-thread call sees one thread");
                    tell.send(()).expect("the other call listens");
                    Ok(hear.recv_timeout(Duration::from_secs(10)).is_ok())
                })
            })
        };
        let a = call(pool.clone(), to_b, from_b);
        let b = call(pool, to_a, from_a);
        for (who, h) in [("a", a), ("b", b)] {
            let overlapped = h.join().expect("no panic").expect("the call ran");
            assert!(overlapped, "call {who} never saw the other one start: the calls ran one at a time");
        }
    }
}
