//! The burn backends a stage that runs a model can use, chosen by its `backend` param: `flex`
//! (pure Rust, CPU, always there), and `ndarray`, `cuda` and `wgpu` with the cargo features
//! of those names. Before the work starts, [`device::open`] finds the device the backend
//! will use, so that a missing GPU or driver is an error naming the backend and what is
//! missing rather than a panic from inside burn.

pub mod device;

use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::ParamError;

use crate::error::Result;

/// A backend electra-pipe knows, whether or not this build has it.
#[derive(Debug, Clone, Copy)]
pub struct KnownBackend {
    /// Its name in pipelines (`backend: NAME`) and on the command line (`--backend NAME`).
    pub name: &'static str,
    /// The cargo feature that builds it in (`None`: always there).
    pub feature: Option<&'static str>,
    /// What it runs on.
    pub runs_on: &'static str,
    /// Whether it is a GPU backend (cubecl's: kernels generated and autotuned at run time).
    pub gpu: bool,
}

/// Every backend electra-pipe knows.
pub const KNOWN: &[KnownBackend] = &[
    KnownBackend {
        name: "flex",
        feature: None,
        runs_on: "CPU, burn's pure-Rust backend + fused CPU kernels (default)",
        gpu: false,
    },
    KnownBackend {
        name: "ndarray",
        feature: Some("ndarray"),
        runs_on: "CPU, burn's ndarray backend",
        gpu: false,
    },
    KnownBackend {
        name: "cuda",
        feature: Some("cuda"),
        runs_on: "NVIDIA GPUs (needs libcuda, NVRTC, CUDA headers)",
        gpu: true,
    },
    KnownBackend {
        name: "wgpu",
        feature: Some("wgpu"),
        runs_on: "Vulkan/Metal/DX12 GPUs, or the CPU via Mesa's lavapipe",
        gpu: true,
    },
];

/// The backends this build can run on.
pub const BACKENDS: &[&str] = &[
    "flex",
    #[cfg(feature = "ndarray")]
    "ndarray",
    #[cfg(feature = "cuda")]
    "cuda",
    #[cfg(feature = "wgpu")]
    "wgpu",
];

/// Whether `backend` is one of the GPU backends ([`KnownBackend::gpu`]).
pub fn is_gpu(backend: &str) -> bool {
    KNOWN.iter().any(|known| known.name == backend && known.gpu)
}

/// The default backend: the CPU one every build has.
pub fn default_backend() -> String {
    "flex".to_owned()
}

/// One line per known backend, saying what it runs on and whether this build has it (for
/// `--help` and `electra-pipe kinds`).
pub fn describe() -> String {
    KNOWN
        .iter()
        .map(|known| {
            let built = match known.feature {
                _ if BACKENDS.contains(&known.name) => "in this build".to_owned(),
                Some(feature) => format!("build with `--features {feature}`"),
                None => unreachable!("the always-built backend is in BACKENDS"),
            };
            format!("  {:<8} {} [{built}]", known.name, known.runs_on)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Checks that `backend` (the value of the param `backend`) is in this build; the error says
/// which cargo feature would enable it.
pub fn check(backend: &str) -> Result<(), ParamError> {
    if BACKENDS.contains(&backend) {
        return Ok(());
    }
    let hint = KNOWN
        .iter()
        .find(|known| known.name == backend)
        .and_then(|known| known.feature)
        .map(|feature| format!("; rebuild electra-pipe with `--features {feature}` to enable it"))
        .unwrap_or_default();
    Err(ParamError::new(
        "backend",
        format!(
            "backend `{backend}` is not available in this build: expected one of {}{hint}",
            BACKENDS.join(", ")
        ),
    ))
}

/// Work generic over the training backend, run by [`run_on`].
pub trait OnBackend {
    /// What the work returns.
    type Output;
    /// Runs the work on backend `B`'s default device.
    fn run<B: AutodiffBackend>(self, device: &B::Device) -> Self::Output;
}

/// Runs `work` on the backend named `backend` (checked by [`check`]; anything else is
/// `flex`), once [`device::open`] has found its device; a GPU backend keeps its autotuning
/// results in `tuning_dir` ([`device::keep_tuning_in`]).
pub fn run_on<W: OnBackend>(backend: &str, tuning_dir: &Path, work: W) -> Result<W::Output> {
    let device = device::open(backend)?;
    tracing::info!(backend, device = %device, "device");
    if is_gpu(backend) {
        device::keep_tuning_in(tuning_dir);
    }
    Ok(match backend {
        #[cfg(feature = "ndarray")]
        "ndarray" => work.run::<Autodiff<burn::backend::NdArray>>(&Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => work.run::<Autodiff<burn::backend::Cuda>>(&Default::default()),
        #[cfg(feature = "wgpu")]
        "wgpu" => work.run::<Autodiff<burn::backend::Wgpu>>(&Default::default()),
        _ => work.run::<Autodiff<Flex>>(&Default::default()),
    })
}

/// What ran the work, for records: the CPU model and thread count for the CPU backends, the
/// device [`device::open`] found for the GPU ones.
pub fn hardware(backend: &str, cpus: usize) -> String {
    if !is_gpu(backend) {
        return format!("{}, {cpus} threads ({backend})", device::cpu_model());
    }
    match device::open(backend) {
        Ok(device) => format!("{device} ({backend})"),
        Err(_) => format!("{backend} device 0"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_of_the_build_is_known_and_described() {
        for name in BACKENDS {
            assert!(KNOWN.iter().any(|k| &k.name == name), "{name}");
        }
        let text = describe();
        for known in KNOWN {
            assert!(text.contains(known.name), "{text}");
        }
        assert!(text.contains("flex") && text.contains("[in this build]"));
        assert!(is_gpu("cuda") && is_gpu("wgpu"));
        assert!(!is_gpu("flex") && !is_gpu("ndarray") && !is_gpu("tpu"));
    }

    #[test]
    fn an_unknown_or_unbuilt_backend_is_a_param_error_naming_the_feature() {
        let err = check("tpu").unwrap_err().to_string();
        assert!(err.contains("expected one of flex"), "{err}");
        assert!(!err.contains("--features"), "{err}");
        if !BACKENDS.contains(&"cuda") {
            let err = check("cuda").unwrap_err().to_string();
            assert!(err.contains("`--features cuda`"), "{err}");
        }
    }
}
