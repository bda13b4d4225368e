//! Log output on stderr (tracing-subscriber), printed around the live display when one is up.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use super::LogFormat;
use crate::run::observer::LIVE;

/// Stderr that pauses the live progress display while a line is written.
#[derive(Clone, Copy)]
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match LIVE.get() {
            Some(multi) => multi.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// The GPU backends' libraries, whose info lines (each kernel autotuned, each adapter tried)
/// come from their own threads, outside any stage's log: shown from -v on. A filter's target
/// matches every target it begins (`cubecl` covers `cubecl_runtime`, `cubecl_wgpu`, ...).
const GPU_RUNTIME_TARGETS: &[&str] = &[
    "cubecl",
    "burn_cubecl",
    "burn_fusion",
    "wgpu_core",
    "wgpu_hal",
    "naga",
];

/// Installs the global subscriber: level from -v/-q (or RUST_LOG), text or JSON.
pub fn init(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "warn".to_owned(),
        (false, 0) => GPU_RUNTIME_TARGETS
            .iter()
            .fold("info".to_owned(), |filter, target| {
                format!("{filter},{target}=warn")
            }),
        (false, 1) => "debug".to_owned(),
        _ => "trace".to_owned(),
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.without_time().try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
