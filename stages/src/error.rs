//! The error type of the data stages: every problem with an input names its file (and line,
//! where there is one) and what was expected.

use std::path::{Path, PathBuf};

use electra_pipe_api::StageError;

/// A problem reading, checking or writing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A line of an input file is not what its format requires.
    #[error("{}:{line}: {message}", file.display())]
    Malformed {
        /// The input file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was found and what was expected.
        message: String,
    },
    /// An input file as a whole is unusable (empty, missing a required entry, ...).
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The input file or directory.
        file: PathBuf,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A configuration value cannot work with this data.
    #[error("{0}")]
    Config(String),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A backend's device is missing or unusable (no GPU, driver or library).
    #[error("backend `{backend}`: {message}")]
    Device {
        /// The backend.
        backend: String,
        /// What is missing and how to provide it.
        message: String,
    },
    /// The stage was asked to stop.
    #[error("cancelled")]
    Cancelled,
}

impl DataError {
    /// A malformed line of `file`.
    pub fn malformed(file: &Path, line: usize, message: impl Into<String>) -> Self {
        DataError::Malformed {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// A whole file (or directory) that is unusable.
    pub fn invalid(file: &Path, message: impl Into<String>) -> Self {
        DataError::Invalid {
            file: file.to_owned(),
            message: message.into(),
        }
    }

    /// An I/O error while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DataError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<DataError> for StageError {
    fn from(err: DataError) -> Self {
        match err {
            DataError::Cancelled => StageError::Cancelled,
            DataError::Io { context, source } => StageError::Io { context, source },
            other => StageError::Failed(other.to_string()),
        }
    }
}

/// Results of the data stages.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
