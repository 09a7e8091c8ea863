//! One error type for every engine, with a stable code that the JS layer maps to a class.

use std::fmt;

/// Stable error codes. They are part of the public API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ModelLoad,
    InputName,
    InputShape,
    InputDtype,
    /// An input's values are outside what the model accepts (an id past its table).
    InputValue,
    DeviceUnavailable,
    Aborted,
    Disposed,
    Engine,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::ModelLoad,
        ErrorCode::InputName,
        ErrorCode::InputShape,
        ErrorCode::InputDtype,
        ErrorCode::InputValue,
        ErrorCode::DeviceUnavailable,
        ErrorCode::Aborted,
        ErrorCode::Disposed,
        ErrorCode::Engine,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ModelLoad => "ERR_MODEL_LOAD",
            ErrorCode::InputName => "ERR_INPUT_NAME",
            ErrorCode::InputShape => "ERR_INPUT_SHAPE",
            ErrorCode::InputDtype => "ERR_INPUT_DTYPE",
            ErrorCode::InputValue => "ERR_INPUT_VALUE",
            ErrorCode::DeviceUnavailable => "ERR_DEVICE_UNAVAILABLE",
            ErrorCode::Aborted => "ERR_ABORTED",
            ErrorCode::Disposed => "ERR_DISPOSED",
            ErrorCode::Engine => "ERR_ENGINE",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with its code and a message that names what was wrong,
/// what was expected and what was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }
    pub fn model_load(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelLoad, message)
    }
    pub fn input_name(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InputName, message)
    }
    pub fn input_shape(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InputShape, message)
    }
    pub fn input_dtype(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InputDtype, message)
    }
    pub fn input_value(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InputValue, message)
    }
    pub fn engine(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Engine, message)
    }
    pub fn disposed(what: &str) -> Self {
        Self::new(ErrorCode::Disposed, format!("{what} was disposed; load it again to use it"))
    }
    pub fn aborted() -> Self {
        Self::new(ErrorCode::Aborted, "the operation was aborted")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Formats a tract (anyhow) error with its whole cause chain on one line.
pub(crate) fn chain(e: &dyn fmt::Display) -> String {
    format!("{e:#}")
}
