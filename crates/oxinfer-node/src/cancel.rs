//! Cancellation of work on the libuv pool: a `NativeCancelToken` that JS sets when an
//! AbortSignal aborts, and `Cancellable`, a task that gives up before it starts once its token is
//! set (a long embed also reads the token between its batches).
//!
//! Why not napi-rs's `AbortSignal` argument: it wraps a list onto the JS signal that grows by one
//! entry per call and is freed only with the signal (a long-lived signal shared by every request
//! of a server leaked ~200 bytes a call), and it overwrites the signal's `onabort` property. The
//! TypeScript layer keeps one token per signal instead (src/signal.ts).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use oxinfer_core::Error;

use crate::error::to_js;

/// A flag JS sets (from an AbortSignal) and tasks read.
#[napi]
#[derive(Default)]
pub struct NativeCancelToken {
    flag: Arc<AtomicBool>,
}

#[napi]
impl NativeCancelToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }
}

impl NativeCancelToken {
    /// The flag, for a task that reads it while it runs.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }
}

/// `T`, unless its token was set before a pool thread took it: then ERR_ABORTED, without the
/// work (a queued run whose caller has gone is dropped, not run for no one).
pub struct Cancellable<T: Task> {
    task: T,
    cancel: Option<Arc<AtomicBool>>,
}

impl<T: Task> Cancellable<T> {
    pub fn new(task: T, token: Option<&NativeCancelToken>) -> AsyncTask<Self> {
        AsyncTask::new(Cancellable { task, cancel: token.map(NativeCancelToken::flag) })
    }
}

impl<T: Task> Task for Cancellable<T> {
    type Output = T::Output;
    type JsValue = T::JsValue;

    fn compute(&mut self) -> napi::Result<T::Output> {
        if self.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(to_js(Error::aborted()));
        }
        self.task.compute()
    }

    fn resolve(&mut self, env: Env, output: T::Output) -> napi::Result<T::JsValue> {
        self.task.resolve(env, output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<T::JsValue> {
        self.task.reject(env, err)
    }

    fn finally(self, env: Env) -> napi::Result<()> {
        self.task.finally(env)
    }
}
