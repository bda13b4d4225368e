//! Small JSON files the stages write next to their data (`task.json`, `index.json`).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{DataError, Result};

/// Writes `value` as pretty JSON with a final newline.
pub fn write_pretty<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| DataError::Config(format!("serialising {}: {e}", path.display())))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| DataError::io(format!("writing {}", path.display()), e))
}

/// Reads a JSON file; a parse error names the line and says it `expected` this.
pub fn read<T: DeserializeOwned>(path: &Path, expected: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    serde_json::from_str(&text)
        .map_err(|e| DataError::malformed(path, e.line(), format!("expected {expected}: {e}")))
}
