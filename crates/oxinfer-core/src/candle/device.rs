//! Devices for the candle engine: chosen by name, created once per process and reused.

use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use candle_core::Device;

use crate::error::{Error, ErrorCode, Result};

/// What a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Cpu,
    /// A CUDA GPU by ordinal (builds with the `cuda` feature).
    Cuda(usize),
    /// The Metal GPU (macOS builds with the `metal` feature).
    Metal,
    /// CUDA or Metal when this build has it and a GPU answers, else CPU.
    Auto,
}

impl FromStr for DeviceKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            "metal" => Ok(DeviceKind::Metal),
            "auto" => Ok(DeviceKind::Auto),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceKind::Cuda(n)),
                _ => Err(Error::new(
                    ErrorCode::DeviceUnavailable,
                    format!("unknown device '{other}': expected cpu, cuda, cuda:N, metal or auto"),
                )),
            },
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(0) => f.write_str("cuda"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceKind::Metal => f.write_str("metal"),
            DeviceKind::Auto => f.write_str("auto"),
        }
    }
}

/// The backends compiled into this build.
pub fn compiled_backends() -> Vec<&'static str> {
    let mut b = vec!["cpu"];
    if cfg!(feature = "cuda") {
        b.push("cuda");
    }
    if cfg!(feature = "metal") {
        b.push("metal");
    }
    b
}

/// Returns the device for `kind` (created on first use, then shared) and the concrete kind
/// chosen (`Auto` resolves to what answered).
pub fn device(kind: DeviceKind) -> Result<(Device, DeviceKind)> {
    match kind {
        DeviceKind::Cpu => Ok((Device::Cpu, DeviceKind::Cpu)),
        DeviceKind::Auto => {
            for gpu in [DeviceKind::Cuda(0), DeviceKind::Metal] {
                if let Ok(found) = device(gpu) {
                    return Ok(found);
                }
            }
            Ok((Device::Cpu, DeviceKind::Cpu))
        }
        gpu => {
            // Creating a GPU device is costly (a context, streams, kernels): once per process.
            // Failures are remembered too, so `auto` does not probe a missing driver every load.
            static DEVICES: OnceLock<Mutex<Vec<(DeviceKind, Result<Device>)>>> = OnceLock::new();
            let devices = DEVICES.get_or_init(Default::default);
            let mut devices = devices.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, d)) = devices.iter().find(|(k, _)| *k == gpu) {
                return d.clone().map(|d| (d, gpu));
            }
            let created = crate::panic::guard(ErrorCode::DeviceUnavailable, "creating the device", || {
                create_gpu(gpu)
            });
            devices.push((gpu, created.clone()));
            created.map(|d| (d, gpu))
        }
    }
}

/// Makes the device's CUDA context current on this thread. Loads and runs happen on whichever
/// libuv worker picks them up, and CUDA calls on a thread without the context fail with
/// CUDA_ERROR_INVALID_CONTEXT. A no-op for the CPU and Metal.
pub fn bind_to_thread(device: &Device) -> Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(d) = device {
        d.cuda_stream()
            .context()
            .bind_to_thread()
            .map_err(|e| Error::engine(format!("cannot use the CUDA device on this thread: {e}")))?;
    }
    let _ = device;
    Ok(())
}

fn unavailable(kind: DeviceKind, why: impl fmt::Display) -> Error {
    Error::new(ErrorCode::DeviceUnavailable, format!("device '{kind}' is unavailable: {why}"))
}

#[allow(unreachable_code, unused_variables)]
fn create_gpu(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cuda(ordinal) => {
            #[cfg(feature = "cuda")]
            return Device::new_cuda(ordinal).map_err(|e| unavailable(kind, e));
            Err(unavailable(
                kind,
                "this build of oxinfer has no CUDA backend (install the CUDA variant, see the README)",
            ))
        }
        DeviceKind::Metal => {
            #[cfg(feature = "metal")]
            return Device::new_metal(0).map_err(|e| unavailable(kind, e));
            Err(unavailable(kind, "this build of oxinfer has no Metal backend (macOS builds only)"))
        }
        DeviceKind::Cpu | DeviceKind::Auto => Ok(Device::Cpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_typed() {
        for s in ["cpu", "cuda", "cuda:1", "metal", "auto"] {
            assert_eq!(s.parse::<DeviceKind>().unwrap().to_string(), s);
        }
        let e = "tpu".parse::<DeviceKind>().unwrap_err();
        assert_eq!(e.code, ErrorCode::DeviceUnavailable);
        assert!(e.message.contains("'tpu'"));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_why_and_auto_falls_back() {
        let e = device(DeviceKind::Cuda(0)).unwrap_err();
        assert_eq!(e.code, ErrorCode::DeviceUnavailable);
        assert!(e.message.contains("no CUDA backend"), "{}", e.message);
        assert_eq!(device(DeviceKind::Auto).unwrap().1, DeviceKind::Cpu);
    }
}
