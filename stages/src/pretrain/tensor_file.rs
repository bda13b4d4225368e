//! Model weights as safetensors files (readable by the `safetensors` Python package and
//! Hugging Face tools): an 8-byte little-endian header length, a JSON header naming each
//! tensor's dtype (`F32`), shape and byte range, then the raw little-endian data.
//!
//! [`named_tensors`] lists a module's parameters by path (`embeddings.word`,
//! `discriminator.blocks.3.attention.query.weight`); [`load_named`] puts them back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
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

/// The tensors whose names start with `prefix`, with it removed (`encoder.` of a whole model).
pub fn with_prefix(
    tensors: &BTreeMap<String, NamedTensor>,
    prefix: &str,
) -> BTreeMap<String, NamedTensor> {
    tensors
        .iter()
        .filter_map(|(name, t)| Some((name.strip_prefix(prefix)?.to_owned(), t.clone())))
        .collect()
}

/// Tracks the module path while visiting or mapping.
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        self.0.join(".")
    }
}

struct Collect {
    path: PathStack,
    out: BTreeMap<String, NamedTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        self.out.insert(
            self.path.name(),
            NamedTensor {
                shape: tensor.dims().to_vec(),
                values: tensor.into_data().iter::<f32>().collect(),
            },
        );
    }
}

/// Every float parameter of `module` by its path.
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M) -> BTreeMap<String, NamedTensor> {
    let mut collect = Collect {
        path: PathStack::default(),
        out: BTreeMap::new(),
    };
    module.visit(&mut collect);
    collect.out
}

struct Assign<'a, B: Backend> {
    path: PathStack,
    tensors: &'a BTreeMap<String, NamedTensor>,
    device: B::Device,
    missing: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Assign<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.name();
        let (id, tensor, mapper) = param.consume();
        match self.tensors.get(&name) {
            Some(saved) if saved.shape == tensor.dims() => {
                let data = TensorData::new(saved.values.clone(), saved.shape.clone());
                let loaded = Tensor::from_data(data, &self.device);
                let loaded = if tensor.is_require_grad() {
                    loaded.require_grad()
                } else {
                    loaded
                };
                Param::from_mapped_value(id, loaded, mapper)
            }
            _ => {
                self.missing.push(name);
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}

/// `module` with every parameter replaced by the saved tensor of the same path and shape;
/// an error lists the parameters that had none.
pub fn load_named<B: Backend, M: Module<B>>(
    module: M,
    tensors: &BTreeMap<String, NamedTensor>,
    device: &B::Device,
    source: &Path,
) -> Result<M> {
    let mut assign = Assign::<B> {
        path: PathStack::default(),
        tensors,
        device: device.clone(),
        missing: Vec::new(),
    };
    let module = module.map(&mut assign);
    if assign.missing.is_empty() {
        Ok(module)
    } else {
        Err(DataError::invalid(
            source,
            format!(
                "no tensor of the right shape for {}: expected weights of this model's configuration",
                assign.missing.join(", ")
            ),
        ))
    }
}
