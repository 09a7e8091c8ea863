//! Core errors → JS errors. The code travels as a `[ERR_…]` prefix of the message, which the
//! TypeScript layer turns into the matching `OxinferError` subclass; this works the same for
//! sync calls and for AsyncTask rejections (which carry only a napi status).

use oxinfer_core::{Error, ErrorCode};

pub fn to_js(e: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("[{}] {}", e.code.as_str(), e.message))
}

pub fn js_error(code: ErrorCode, message: impl Into<String>) -> napi::Error {
    to_js(Error::new(code, message))
}

/// Extension to map core results at the boundary.
pub trait IntoJs<T> {
    fn js(self) -> napi::Result<T>;
}

impl<T> IntoJs<T> for oxinfer_core::Result<T> {
    fn js(self) -> napi::Result<T> {
        self.map_err(to_js)
    }
}
