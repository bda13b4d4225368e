//! Input path params shared by the stage kinds.

use serde::Deserialize;

/// An input: one path, or a list of paths (e.g. from a wildcard reference).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum InputPaths {
    /// A single file or directory.
    One(String),
    /// Several files or directories, exported joined by newlines.
    Many(Vec<String>),
}

impl InputPaths {
    /// The paths, one or many.
    pub fn paths(&self) -> &[String] {
        match self {
            InputPaths::One(path) => std::slice::from_ref(path),
            InputPaths::Many(paths) => paths,
        }
    }
}
