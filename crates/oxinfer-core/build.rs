//! With the `cuda` feature: the embedder's CUDA kernels (src/candle/kernels.cu) to PTX, with the
//! nvcc on PATH (scripts/build-cuda.sh provides one) for CUDA_COMPUTE_CAP (default 90). Without
//! it: nothing.
fn main() {
    println!("cargo:rerun-if-changed=src/candle/kernels.cu");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("kernels.ptx");
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".into());
    let status = std::process::Command::new("nvcc")
        .args(["--ptx", "-O3", &format!("-arch=compute_{cap}"), "src/candle/kernels.cu", "-o"])
        .arg(&out)
        .status()
        .expect("nvcc (the cuda feature needs it on PATH: see scripts/build-cuda.sh)");
    assert!(status.success(), "nvcc failed on src/candle/kernels.cu");
}
