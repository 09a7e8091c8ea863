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

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

use mimalloc::MiMalloc;

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
