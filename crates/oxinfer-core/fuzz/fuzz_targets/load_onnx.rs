//! Any bytes as an ONNX model: load, and run on zeros when the inputs are small and fixed.
//! The properties live in `oxinfer_core::fuzzing` (shared with the corpus test in CI).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxinfer_core::fuzzing::{fuzz_one, load_and_run_onnx};

fuzz_target!(|data: &[u8]| {
    fuzz_one(|| load_and_run_onnx(data));
});
