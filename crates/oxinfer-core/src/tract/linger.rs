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

use std::sync::atomic::{AtomicUsize, Ordering};
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
