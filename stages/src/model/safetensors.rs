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
    let file = read_any(path, false)?;
    Ok((file.tensors, file.metadata))
}

/// What a safetensors file holds.
struct Contents {
    /// The float tensors, as f32.
    tensors: BTreeMap<String, NamedTensor>,
    /// The free-form metadata.
    metadata: BTreeMap<String, String>,
    /// The names and dtypes of the tensors left unread.
    others: Vec<(String, String)>,
}

/// A file's float tensors, and the names and dtypes of the others.
pub type Floats = (BTreeMap<String, NamedTensor>, Vec<(String, String)>);

/// Reads the float tensors of a safetensors file written by another tool: F32, and F16 or BF16
/// widened to f32. The other tensors (integer buffers such as `position_ids`) are returned by
/// name with their dtype, unread.
pub fn read_floats(path: &Path) -> Result<Floats> {
    let file = read_any(path, true)?;
    Ok((file.tensors, file.others))
}

/// An IEEE half-precision value as f32.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h >> 15 == 1 { -1.0 } else { 1.0 };
    let exponent = i32::from((h >> 10) & 0x1f);
    let fraction = f32::from(h & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f32.powi(-24),
        0x1f if fraction == 0.0 => sign * f32::INFINITY,
        0x1f => f32::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

/// Reads a safetensors file: every tensor as F32 (with `widen`, F16 and BF16 too, converted),
/// its metadata, and with `widen` the names and dtypes of the tensors of other dtypes; without
/// it, another dtype is an error naming the tensor.
fn read_any(path: &Path, widen: bool) -> Result<Contents> {
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
    let mut others = Vec::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            metadata = serde_json::from_value(entry)
                .map_err(|e| bad(format!("__metadata__: expected string values: {e}")))?;
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or_default();
        let width = match dtype {
            "F32" => 4,
            "F16" | "BF16" if widen => 2,
            _ if widen => {
                others.push((name, dtype.to_owned()));
                continue;
            }
            _ => 0,
        };
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone())
            .map_err(|e| bad(format!("tensor {name}: bad shape: {e}")))?;
        let range: [usize; 2] = serde_json::from_value(entry["data_offsets"].clone())
            .map_err(|e| bad(format!("tensor {name}: bad data_offsets: {e}")))?;
        let data = bytes
            .get(data_start + range[0]..data_start.saturating_add(range[1]))
            .filter(|d| width > 0 && d.len() == shape.iter().product::<usize>() * width)
            .ok_or_else(|| {
                bad(format!(
                    "tensor {name}: expected {} data matching its shape [{}], found {dtype} of {} bytes (a truncated file?)",
                    if widen { "F32, F16 or BF16" } else { "F32" },
                    shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", "),
                    range[1].saturating_sub(range[0])
                ))
            })?;
        let values = match dtype {
            "F32" => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            "F16" => data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => data
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
        };
        tensors.insert(name, NamedTensor { shape, values });
    }
    Ok(Contents {
        tensors,
        metadata,
        others,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_tensors_are_widened_and_other_dtypes_set_aside() {
        // A file another tool wrote: an F16, a BF16 and an I64 tensor.
        let halves: [u16; 4] = [0x3c00, 0xc000, 0x3555, 0x0001]; // 1, −2, ≈1/3, 2^-24
        let brains: [u16; 2] = [0x3f80, 0xc0a0]; // 1, −5
        let header = serde_json::json!({
            "h": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},
            "b": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]},
            "ids": {"dtype": "I64", "shape": [1], "data_offsets": [12, 20]},
        })
        .to_string();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        for v in halves.iter().chain(&brains) {
            bytes.extend(v.to_le_bytes());
        }
        bytes.extend(7i64.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let (tensors, others) = read_floats(&path).unwrap();
        let h = &tensors["h"].values;
        assert_eq!((h[0], h[1], h[3]), (1.0, -2.0, 2f32.powi(-24)));
        assert!((h[2] - 1.0 / 3.0).abs() < 1e-3);
        assert_eq!(tensors["b"].values, [1.0, -5.0]);
        assert_eq!(others, [("ids".to_owned(), "I64".to_owned())]);
        // electra-pipe's own reader takes F32 only, and says so.
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("expected F32 data"), "{err}");
    }
}
