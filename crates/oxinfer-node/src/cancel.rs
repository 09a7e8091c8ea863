//! Cancellation of work on the libuv pool: a `NativeCancelToken` that JS sets when an
//! AbortSignal aborts. Runs read it as a core [`Cancel`] (tract before each op, the embedder
//! before each encoder layer); `Cancellable` makes a task that cannot stop midway (a load)
//! give up at least before it starts.
//!
//! Why not napi-rs's `AbortSignal` argument: it wraps a list onto the JS signal that grows by one
//! entry per call and is freed only with the signal (a long-lived signal shared by every request
//! of a server leaked ~200 bytes a call), and it overwrites the signal's `onabort` property. The
//! TypeScript layer keeps one token per signal instead (src/signal.ts).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use oxinfer_core::{Cancel, Error};

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

/// What a task reads: set once `token` is (never, without a token).
pub fn cancel_of(token: Option<&NativeCancelToken>) -> Cancel {
    token.map_or_else(Cancel::never, |t| Cancel::on(Arc::clone(&t.flag)))
}

/// `T`, unless its token was set before a pool thread took it: then ERR_ABORTED, without the
/// work (a queued load whose caller has gone is dropped, not done for no one).
pub struct Cancellable<T: Task> {
    task: T,
    cancel: Cancel,
}

impl<T: Task> Cancellable<T> {
    pub fn new(task: T, token: Option<&NativeCancelToken>) -> AsyncTask<Self> {
        AsyncTask::new(Cancellable { task, cancel: cancel_of(token) })
    }
}

impl<T: Task> Task for Cancellable<T> {
    type Output = T::Output;
    type JsValue = T::JsValue;

    fn compute(&mut self) -> napi::Result<T::Output> {
        if self.cancel.is_set() {
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
