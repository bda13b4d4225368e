//! Content digests of files, so that results can name exactly what they came from (the same
//! BLAKE3 the orchestrator's object store addresses outputs by).

use std::path::Path;

use crate::error::{DataError, Result};

/// BLAKE3 of a file's contents, as hex.
pub fn file_digest(path: &Path) -> Result<String> {
    let context = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(context(), e))?;
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(context(), e))?;
    Ok(hasher.finalize().to_hex().to_string())
}
