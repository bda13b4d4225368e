//! Tensors as safetensors files (readable by the `safetensors` Python package and Hugging Face
//! tools): an 8-byte little-endian header length, a JSON header naming each tensor's dtype
//! (`F32`), shape and byte range, then the raw little-endian data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::{DataError, Result};

/// One tensor: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Writes `tensors` (sorted by name) with free-form string `metadata`.
pub fn write(
    path: &Path,
    tensors: &BTreeMap<String, NamedTensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut header = Map::new();
    header.insert("__metadata__".to_owned(), json!(metadata));
    let mut offset = 0usize;
    for (name, tensor) in tensors {
        let end = offset + tensor.values.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": tensor.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut head = Value::Object(header).to_string().into_bytes();
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let context = || format!("writing {}", path.display());
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| DataError::io(context(), e))?,
    );
    let mut put = |bytes: &[u8]| {
        out.write_all(bytes)
            .map_err(|e| DataError::io(context(), e))
    };
    put(&(head.len() as u64).to_le_bytes())?;
    put(&head)?;
    for tensor in tensors.values() {
        for value in &tensor.values {
            put(&value.to_le_bytes())?;
        }
    }
    out.flush().map_err(|e| DataError::io(context(), e))
}

/// Reads a file written by [`write`] (or any all-F32 safetensors file).
pub fn read(path: &Path) -> Result<BTreeMap<String, NamedTensor>> {
    Ok(read_with_metadata(path)?.0)
}

/// Reads the tensors and the free-form string metadata of a safetensors file.
pub fn read_with_metadata(
    path: &Path,
) -> Result<(BTreeMap<String, NamedTensor>, BTreeMap<String, String>)> {
    let bytes =
        std::fs::read(path).map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    let bad = |message: String| DataError::invalid(path, message);
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| bad("expected a safetensors file: too short".to_owned()))?;
    let data_start = 8 + header_len;
    let header: Map<String, Value> = bytes
        .get(8..data_start)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or_else(|| bad("expected a safetensors JSON header".to_owned()))?;
    let mut tensors = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            metadata = serde_json::from_value(entry)
                .map_err(|e| bad(format!("__metadata__: expected string values: {e}")))?;
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or_default();
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone())
            .map_err(|e| bad(format!("tensor {name}: bad shape: {e}")))?;
        let range: [usize; 2] = serde_json::from_value(entry["data_offsets"].clone())
            .map_err(|e| bad(format!("tensor {name}: bad data_offsets: {e}")))?;
        let data = bytes
            .get(data_start + range[0]..data_start + range[1])
            .filter(|_| dtype == "F32")
            .filter(|d| d.len() == shape.iter().product::<usize>() * 4)
            .ok_or_else(|| {
                bad(format!(
                    "tensor {name}: expected F32 data matching its shape"
                ))
            })?;
        let values = data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, NamedTensor { shape, values });
    }
    Ok((tensors, metadata))
}

/// The free-form metadata of a safetensors file, reading only its header.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    use std::io::Read;
    let context = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(context(), e))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|e| DataError::io(context(), e))?;
    let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
    file.read_exact(&mut header)
        .map_err(|e| DataError::io(context(), e))?;
    let header: Map<String, Value> = serde_json::from_slice(&header).map_err(|e| {
        DataError::invalid(path, format!("expected a safetensors JSON header: {e}"))
    })?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default())
}
