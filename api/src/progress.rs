//! Fine-grained progress reporting from a running stage.

/// Receives a stage's progress: how far it is, out of how much, and a short status message.
///
/// Implementations throttle themselves, so stages may call [`Progress::update`] every step.
pub trait Progress: Send + Sync {
    /// `done` units of `total` (if known) are finished; `message` is a short status such as
    /// `loss 3.21`.
    fn update(&self, done: u64, total: Option<u64>, message: &str);
}

/// A progress sink that ignores everything (for tests and tools that run stages directly).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _done: u64, _total: Option<u64>, _message: &str) {}
}
