//! Pool helpers that stay awake a moment after a split run, so the next one needs no wake-up.
//!
//! Waking an idle vCPU costs tens of µs on a VM, sometimes 100: as much as a small CNN's slice,
//! and runs of a batch often come back to back (a loop, a stream, a server under load). So a
//! helper that has finished its slices spins for up to [`LINGER`], running whatever the rayon
//! pool has queued meanwhile, and takes the work of the next split run if one is offered. The
//! caller of a split run first hands its work to lingering helpers ([`offer`]) and spawns pool
//! jobs only for the rest.
//!
//! Claims are counted, not named: `IDLE` is the number of lingering helpers not yet claimed. A
//! caller claims by decrementing it and then pushes one offer per claim; a helper leaves by
//! decrementing it, and when it finds it at zero every lingering helper has been claimed, so it
//! waits for an offer instead (one is being pushed). Every offer is therefore taken.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a helper waits for more work after its last: a few times a wake-up, short enough
/// that an idle process soon stops spinning.
pub const LINGER: Duration = Duration::from_micros(200);

/// Work that helpers share out (each call takes what is left; a call with nothing left returns).
pub trait Help: Send + Sync {
    fn help(&self);
}

static IDLE: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicUsize = AtomicUsize::new(0);
static OFFERS: Mutex<Vec<Arc<dyn Help>>> = Mutex::new(Vec::new());

fn offers() -> std::sync::MutexGuard<'static, Vec<Arc<dyn Help>>> {
    OFFERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Hands `work` to up to `wanted` lingering helpers; returns how many took it.
pub fn offer(work: &Arc<dyn Help>, wanted: usize) -> usize {
    let mut taken = 0;
    let mut idle = IDLE.load(Ordering::Acquire);
    while idle > 0 && taken < wanted {
        match IDLE.compare_exchange_weak(idle, idle - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                offers().push(Arc::clone(work));
                PENDING.fetch_add(1, Ordering::Release);
                taken += 1;
                idle -= 1;
            }
            Err(now) => idle = now,
        }
    }
    taken
}

/// Called by a pool helper after its share of a split run: takes offered work for up to
/// [`LINGER`] after the last, then returns.
pub fn linger() {
    IDLE.fetch_add(1, Ordering::AcqRel);
    let mut deadline = Instant::now() + LINGER;
    loop {
        if PENDING.load(Ordering::Acquire) > 0 {
            let work = offers().pop();
            if let Some(work) = work {
                // This helper's claim was the caller's to make; it is busy now, then idle again.
                PENDING.fetch_sub(1, Ordering::AcqRel);
                work.help();
                drop(work);
                IDLE.fetch_add(1, Ordering::AcqRel);
                deadline = Instant::now() + LINGER;
                continue;
            }
        }
        if Instant::now() >= deadline && leave() {
            return;
        }
        // Jobs queued on this pool meanwhile (tract's own parallel ops) must not wait for us.
        if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
            std::hint::spin_loop();
        }
    }
}

/// Engine runs in flight in this process ([`counted_run`]): tract plan passes and candle
/// embedder calls alike, as they share the CPUs.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` (one tract plan pass, one embedder call) counted among the runs in flight, which
/// decides whether its ops share work with lingering helpers: see [`alone`].
pub fn counted_run<T>(f: impl FnOnce() -> T) -> T {
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            RUNS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    RUNS.fetch_add(1, Ordering::AcqRel);
    let _counted = Counted;
    f()
}

/// Whether the current run is the only one in flight (or runs uncounted): then its ops may
/// take lingering helpers ([`share`]), which spin between ops. With runs in flight side by
/// side (a server's concurrent requests), the pool is busy anyway, and callers that worked and
/// spun beside it starved the event loop's thread: the longest stall while 16 concurrent
/// batch-1 encoder requests ran rose from 2.5-4.3 to 9.5 ms.
pub fn alone() -> bool {
    in_flight() <= 1
}

/// Multiply-adds of a product above which [`yield_core`] yields (about 150 µs of one core's
/// work; smaller products take about as long as the yield itself).
const YIELD_MACS: usize = 16 << 20;

/// Before a product of `macs` multiply-adds, gives the core to a thread that waits for one.
/// Whenever runs fill every core (runs side by side, or one batch split across the threads, as
/// a Batcher's is), the event loop's thread otherwise waited for a scheduler slice: the longest
/// stall while 16 concurrent tract requests ran rose from ~3 to 7.8 ms without the yield in runs
/// side by side, and read 5.0-8.5 ms through a Batcher (one split batch of 16) before split runs
/// yielded too; 16 concurrent CandleEmbedder calls read 4.7 ms (max 9.4) before its products
/// yielded.
pub fn yield_core(macs: usize) {
    if macs >= YIELD_MACS {
        std::thread::yield_now();
    }
}

/// Engine runs in flight now, the caller's own not yet counted when it asks before it starts.
pub fn in_flight() -> usize {
    RUNS.load(Ordering::Acquire)
}

/// Tasks `0..n`, claimed one at a time by whichever thread is free.
struct Tasks<F> {
    n: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    panicked: AtomicBool,
    task: F,
}

impl<F: Fn(usize) + Send + Sync> Tasks<F> {
    /// Claims and runs tasks until none is left. A panic is recorded, and the task counted done.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            if catch_unwind(AssertUnwindSafe(|| (self.task)(i))).is_err() {
                self.panicked.store(true, Ordering::Relaxed);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

impl<F: Fn(usize) + Send + Sync> Help for Tasks<F> {
    fn help(&self) {
        self.work();
    }
}

/// Runs `task(i)` for every `i` in `0..n` on the calling thread and up to `helpers` threads of
/// `pool`: lingering helpers first (no wake-up), pool jobs for the rest, which linger after.
/// Returns when every task has run; `Err` when one panicked.
///
/// The caller works rather than waits, because a pool thread may wake tens of µs late: one that
/// comes after the tasks are all claimed finds nothing to do, and the caller waits only for
/// tasks already under way. No task runs after this returns (each is claimed before it runs and
/// counted after), so `task` may reach the caller's buffers through raw pointers.
///
/// `pool`: where to spawn the helpers not found lingering; `None` for the pool the caller runs
/// on (the caller must then be one of its threads, or the jobs go to rayon's global pool).
pub fn share<F: Fn(usize) + Send + Sync + 'static>(pool: Option<&rayon::ThreadPool>, helpers: usize, n: usize, task: F) -> Result<(), ()> {
    let tasks = Arc::new(Tasks { n, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panicked: AtomicBool::new(false), task });
    let wanted = helpers.min(n.saturating_sub(1));
    let work: Arc<dyn Help> = Arc::clone(&tasks) as Arc<dyn Help>;
    for _ in offer(&work, wanted)..wanted {
        let tasks = Arc::clone(&tasks);
        let job = move || {
            tasks.work();
            drop(tasks);
            linger();
        };
        match pool {
            Some(pool) => pool.spawn(job),
            None => rayon::spawn(job),
        }
    }
    drop(work);
    tasks.work();
    while tasks.done.load(Ordering::Acquire) < n {
        std::thread::yield_now();
    }
    if tasks.panicked.load(Ordering::Relaxed) { Err(()) } else { Ok(()) }
}

/// Runs `task(i)` for every `i` in `0..n` on the calling thread and up to `workers - 1` more
/// threads of the pool the caller runs on, each claiming the next task when it is free (so
/// tasks of uneven cost even out); returns when all have run, `Err` when one panicked. Unlike
/// [`share`], `task` may borrow from the caller: the helpers are scoped, and do not linger.
pub fn claim_in_scope<F: Fn(usize) + Send + Sync>(workers: usize, n: usize, task: F) -> Result<(), ()> {
    let tasks = Tasks { n, next: AtomicUsize::new(0), done: AtomicUsize::new(0), panicked: AtomicBool::new(false), task };
    rayon::scope(|scope| {
        for _ in 1..workers.min(n) {
            scope.spawn(|_| tasks.work());
        }
        tasks.work();
    });
    if tasks.panicked.load(Ordering::Relaxed) { Err(()) } else { Ok(()) }
}

/// Stops lingering unless every lingering helper has been claimed (then an offer is coming).
fn leave() -> bool {
    let mut idle = IDLE.load(Ordering::Acquire);
    while idle > 0 {
        match IDLE.compare_exchange_weak(idle, idle - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(now) => idle = now,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::share;

    #[test]
    fn claim_in_scope_runs_each_task_once_with_borrowed_data_and_reports_a_panic() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        let counts: Vec<AtomicUsize> = (0..9).map(|_| AtomicUsize::new(0)).collect();
        let ok = pool.install(|| super::claim_in_scope(2, counts.len(), |i| {
            counts[i].fetch_add(1, Ordering::Relaxed);
        }));
        assert_eq!(ok, Ok(()));
        assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
        let failed = pool.install(|| super::claim_in_scope(2, 4, |i| assert!(i != 2, "task 2 fails")));
        assert_eq!(failed, Err(()));
    }

    /// Every task runs exactly once, over back-to-back calls (the later ones find helpers
    /// lingering from the earlier), and a panicking task makes the call an error while the others
    /// still run.
    #[test]
    fn share_runs_each_task_once_and_reports_a_panic() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
        for round in 0..50 {
            let counts: Arc<Vec<AtomicUsize>> = Arc::new((0..7).map(|_| AtomicUsize::new(0)).collect());
            let seen = Arc::clone(&counts);
            let result = share(Some(&pool), 2, 7, move |i| {
                seen[i].fetch_add(1, Ordering::Relaxed);
                assert!(round % 10 != 9 || i != 3, "task 3 of round {round} panics");
            });
            assert_eq!(result.is_err(), round % 10 == 9, "round {round}");
            let ran: Vec<usize> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            assert_eq!(ran, vec![1; 7], "round {round}");
        }
    }
}
