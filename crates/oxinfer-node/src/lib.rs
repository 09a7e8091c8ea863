//! The napi-rs binding of oxinfer-core. It converts JS values, schedules work on the libuv
//! pool and maps errors; it holds no ML logic.

mod alloc;
mod cache;
mod cancel;
mod embedder;
mod error;
mod packed;
mod tensor;
mod tract_model;

pub use cancel::NativeCancelToken;
pub use embedder::NativeCandleEmbedder;

/// Every Rust allocation of the addon: mimalloc, with a cap (see alloc.rs).
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;
pub use tract_model::{NativeTractModel, NativeTractSession};

/// Panics inside the engines are caught and returned as ERR_ENGINE errors that carry the panic
/// message, so the default hook's stderr report is noise in a service's logs. Set
/// OXINFER_DEBUG_PANICS=1 to see it (with RUST_BACKTRACE for a backtrace).
#[napi_derive::module_init]
fn init() {
    alloc::configure();
    let debug = std::env::var_os("OXINFER_DEBUG_PANICS").is_some();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if debug {
            default(info);
        }
    }));
}
