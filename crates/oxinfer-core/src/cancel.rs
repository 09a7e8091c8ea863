//! A cancellation flag a caller sets from another thread and a run reads between its steps
//! (tract: before each op; the embedder: between batches), so that work whose caller has gone
//! stops within one step instead of running to the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Shared with whoever may cancel; [`Cancel::never`] for runs nobody cancels.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Option<Arc<AtomicBool>>);

impl Cancel {
    /// A run that cannot be cancelled.
    pub fn never() -> Self {
        Cancel(None)
    }

    /// Cancelled once `flag` is set.
    pub fn on(flag: Arc<AtomicBool>) -> Self {
        Cancel(Some(flag))
    }

    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// The error a cancelled tract run stops with, told apart from the engine's own failures.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the run was cancelled")
    }
}

impl std::error::Error for Cancelled {}
