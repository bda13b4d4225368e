//! The burn backends a training stage can run on, chosen by its `backend` param: `flex` (pure
//! Rust, CPU, always there), `ndarray` and `cuda` (with the cargo features of those names).

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use electra_pipe_api::ParamError;

/// The backends this build can train on.
pub const BACKENDS: &[&str] = &[
    "flex",
    #[cfg(feature = "ndarray")]
    "ndarray",
    #[cfg(feature = "cuda")]
    "cuda",
];

/// The default backend: the CPU one every build has.
pub fn default_backend() -> String {
    "flex".to_owned()
}

/// Checks that `backend` (the value of the param `backend`) is in this build; the error says
/// which cargo feature would enable it.
pub fn check(backend: &str) -> Result<(), ParamError> {
    if BACKENDS.contains(&backend) {
        return Ok(());
    }
    let hint = match backend {
        "cuda" | "ndarray" => {
            format!("; rebuild electra-pipe with `--features {backend}` to enable it")
        }
        _ => String::new(),
    };
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

/// Runs `work` on the backend named `backend` (checked by [`check`]; anything else is `flex`).
pub fn run_on<W: OnBackend>(backend: &str, work: W) -> W::Output {
    match backend {
        #[cfg(feature = "ndarray")]
        "ndarray" => work.run::<Autodiff<burn::backend::NdArray>>(&Default::default()),
        #[cfg(feature = "cuda")]
        "cuda" => work.run::<Autodiff<burn::backend::Cuda>>(&Default::default()),
        _ => work.run::<Autodiff<Flex>>(&Default::default()),
    }
}

/// What ran the work, for reports: the CPU model and thread count for the CPU backends, the
/// backend's name for the others.
pub fn hardware(backend: &str, cpus: usize) -> String {
    match backend {
        "flex" | "ndarray" => {
            let model = std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| {
                    info.lines()
                        .find(|l| l.starts_with("model name"))
                        .and_then(|l| l.split_once(':'))
                        .map(|(_, name)| name.trim().to_owned())
                })
                .unwrap_or_else(|| "CPU".to_owned());
            format!("{model}, {cpus} threads ({backend})")
        }
        other => format!("{other} device 0"),
    }
}
