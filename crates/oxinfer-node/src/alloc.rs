//! The addon's allocator: mimalloc, refusing any single allocation larger than the machine's
//! physical memory.
//!
//! Why mimalloc: with glibc's malloc, the engines' per-run tensors (megabytes each in an
//! encoder) were unmapped when freed and page-faulted back in on the next run; about 15% of an
//! all-MiniLM batch went to the kernel's fault and unmap paths (perf). mimalloc keeps freed
//! pages for reuse. The rest of the process (Node, V8) keeps its own allocator; nothing crosses
//! between the two (outputs handed to JS are freed by the addon's finalizers, through this one).
//!
//! Why the cap: a hostile model can ask for a tensor of 2^40 elements. glibc refuses such a
//! request (the kernel's overcommit check fails the mmap) and the engine turns the failure into
//! a typed error; mimalloc reserves address space without that check, so the request
//! succeeded and filling it brought in the OOM killer. No single buffer larger than physical
//! memory can be used anyway, so those requests fail here, as they did before.
//!
//! Why a longer purge delay ([`configure`]): mimalloc gives freed memory back to the kernel
//! after 1 s by default. An encoder batch that takes longer than that (all-MiniLM at batch 32:
//! ~0.6 s on 2 cores) found its buffers purged on every run, and faulted them back in zeroed:
//! about 3,300 page faults per run and 17% of its time in the kernel's page clearing (perf).
//! With 10 s, runs back to back reuse their memory; memory unused for longer still goes back
//! (at the allocator's next activity: mimalloc purges lazily).

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// How long freed memory stays with the process before mimalloc returns it to the kernel.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// `mi_option_purge_delay` in the bundled mimalloc's `mi_option_e` (v3, libmimalloc-sys
/// 0.1.49, pinned by Cargo.lock): the Rust bindings keep such options unexported on purpose.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Sets the allocator's options, unless the user set them through mimalloc's environment
/// (`MIMALLOC_PURGE_DELAY`, which then wins). Called when the addon loads; acts on the first
/// load of the process only (worker threads load it again while engines may be running).
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: sets a plain integer option, before any engine of the process has run
            // (mimalloc's option setters are not synchronized with allocations elsewhere).
            unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
        }
    });
}

pub struct Allocator;

/// The largest single allocation; 0 until first read.
static LIMIT: AtomicUsize = AtomicUsize::new(0);

fn limit() -> usize {
    let l = LIMIT.load(Ordering::Relaxed);
    if l != 0 {
        return l;
    }
    let l = physical_memory().unwrap_or(usize::MAX);
    LIMIT.store(l, Ordering::Relaxed);
    l
}

#[cfg(unix)]
fn physical_memory() -> Option<usize> {
    // SAFETY: sysconf only reads system configuration.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let bytes = usize::try_from(pages).ok()?.checked_mul(usize::try_from(size).ok()?)?;
    (bytes > 0).then_some(bytes)
}

#[cfg(not(unix))]
fn physical_memory() -> Option<usize> {
    None // no cap (untested platforms)
}

// SAFETY: every call is forwarded to MiMalloc unchanged, except requests over the limit, which
// return null as an allocator that is out of memory does.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > limit() {
            return std::ptr::null_mut();
        }
        unsafe { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > limit() {
            return std::ptr::null_mut();
        }
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > limit() {
            return std::ptr::null_mut();
        }
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}
