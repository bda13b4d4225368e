//! The names weights have, in one place.
//!
//! Three namings meet here:
//! - **module paths**, the names burn gives a model's parameters (`discriminator.blocks.3.
//!   attention.query.weight`): what checkpoints store ([`named_tensors`], [`load_named`]);
//! - **electra-pipe's exported format**, one network per file whatever model it was trained
//!   in: `embeddings.*`, `encoder.*` and `head.*` ([`Network`], [`export`], [`part`]);
//! - **Hugging Face transformers' names** for the same tensors, in its ELECTRA classes
//!   ([`TRANSFORMERS_BODY`], [`TransformersModel`], [`to_transformers`], [`from_transformers`]).
//!   Dense weights are `[in, out]` here and `[out, in]` in PyTorch's `Linear`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::safetensors::NamedTensor;
use crate::error::{DataError, Result};

/// The parts of an exported network; each is a prefix of its tensors' names in electra-pipe's
/// files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Token, position and segment embeddings: `embeddings.*`.
    Embeddings,
    /// The projection and the transformer blocks: `encoder.*`.
    Encoder,
    /// The pretraining head on top: `head.*`.
    Head,
}

impl Part {
    /// Every part, in file order.
    pub const ALL: [Part; 3] = [Part::Embeddings, Part::Encoder, Part::Head];

    /// The part's name prefix in exported files.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Part::Embeddings => "embeddings.",
            Part::Encoder => "encoder.",
            Part::Head => "head.",
        }
    }
}

/// Where one network's parts sit in a model's module tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The embeddings' module.
    pub embeddings: &'static str,
    /// The encoder's module.
    pub encoder: &'static str,
    /// The head's module.
    pub head: &'static str,
}

impl Network {
    /// BERT (and the fine-tuning classifier): `embeddings`, `encoder`, `head`.
    pub const BERT: Network = Network {
        embeddings: "embeddings",
        encoder: "encoder",
        head: "head",
    };
    /// ELECTRA's discriminator, over the shared embeddings.
    pub const DISCRIMINATOR: Network = Network {
        embeddings: "embeddings",
        encoder: "discriminator",
        head: "discriminator_head",
    };
    /// ELECTRA's generator, over the shared embeddings.
    pub const GENERATOR: Network = Network {
        embeddings: "embeddings",
        encoder: "generator.encoder",
        head: "generator.head",
    };

    fn module(&self, part: Part) -> &'static str {
        match part {
            Part::Embeddings => self.embeddings,
            Part::Encoder => self.encoder,
            Part::Head => self.head,
        }
    }
}

/// `network`'s tensors of a model (by module path) under their exported names; the model's
/// other tensors (ELECTRA's other network) are left out.
pub fn export(
    network: &Network,
    tensors: &BTreeMap<String, NamedTensor>,
) -> BTreeMap<String, NamedTensor> {
    tensors
        .iter()
        .filter_map(|(path, tensor)| {
            Part::ALL.iter().find_map(|&part| {
                let rest = path.strip_prefix(network.module(part))?.strip_prefix('.')?;
                Some((format!("{}{rest}", part.file_prefix()), tensor.clone()))
            })
        })
        .collect()
}

/// The tensors of one part of an exported network, named as inside that part's module (to
/// load into it with [`load_named`]).
pub fn part(tensors: &BTreeMap<String, NamedTensor>, part: Part) -> BTreeMap<String, NamedTensor> {
    tensors
        .iter()
        .filter_map(|(name, t)| {
            Some((name.strip_prefix(part.file_prefix())?.to_owned(), t.clone()))
        })
        .collect()
}

/// How transformers stores a tensor relative to electra-pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The same shape and order.
    Same,
    /// A dense weight: `[in, out]` here, `[out, in]` there.
    Transposed,
}

/// One row of the naming table: an exported name and transformers' name for the same tensor;
/// `{i}` stands for a block's index, `{body}` for the model's base prefix (`electra`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rename {
    /// electra-pipe's exported name.
    pub ours: &'static str,
    /// transformers' name.
    pub theirs: &'static str,
    /// Transposed or not.
    pub layout: Layout,
}

const fn same(ours: &'static str, theirs: &'static str) -> Rename {
    Rename {
        ours,
        theirs,
        layout: Layout::Same,
    }
}

const fn dense(ours: &'static str, theirs: &'static str) -> Rename {
    Rename {
        ours,
        theirs,
        layout: Layout::Transposed,
    }
}

/// The encoder body: transformers' `ElectraModel` (or `BertModel`, without the projection).
pub const TRANSFORMERS_BODY: &[Rename] = &[
    same(
        "embeddings.word",
        "{body}.embeddings.word_embeddings.weight",
    ),
    same(
        "embeddings.position",
        "{body}.embeddings.position_embeddings.weight",
    ),
    same(
        "embeddings.segment",
        "{body}.embeddings.token_type_embeddings.weight",
    ),
    same(
        "embeddings.norm.gamma",
        "{body}.embeddings.LayerNorm.weight",
    ),
    same("embeddings.norm.beta", "{body}.embeddings.LayerNorm.bias"),
    dense(
        "encoder.projection.weight",
        "{body}.embeddings_project.weight",
    ),
    same("encoder.projection.bias", "{body}.embeddings_project.bias"),
    dense(
        "encoder.blocks.{i}.attention.query.weight",
        "{body}.encoder.layer.{i}.attention.self.query.weight",
    ),
    same(
        "encoder.blocks.{i}.attention.query.bias",
        "{body}.encoder.layer.{i}.attention.self.query.bias",
    ),
    dense(
        "encoder.blocks.{i}.attention.key.weight",
        "{body}.encoder.layer.{i}.attention.self.key.weight",
    ),
    same(
        "encoder.blocks.{i}.attention.key.bias",
        "{body}.encoder.layer.{i}.attention.self.key.bias",
    ),
    dense(
        "encoder.blocks.{i}.attention.value.weight",
        "{body}.encoder.layer.{i}.attention.self.value.weight",
    ),
    same(
        "encoder.blocks.{i}.attention.value.bias",
        "{body}.encoder.layer.{i}.attention.self.value.bias",
    ),
    dense(
        "encoder.blocks.{i}.attention.output.weight",
        "{body}.encoder.layer.{i}.attention.output.dense.weight",
    ),
    same(
        "encoder.blocks.{i}.attention.output.bias",
        "{body}.encoder.layer.{i}.attention.output.dense.bias",
    ),
    same(
        "encoder.blocks.{i}.attention.norm.gamma",
        "{body}.encoder.layer.{i}.attention.output.LayerNorm.weight",
    ),
    same(
        "encoder.blocks.{i}.attention.norm.beta",
        "{body}.encoder.layer.{i}.attention.output.LayerNorm.bias",
    ),
    dense(
        "encoder.blocks.{i}.intermediate.weight",
        "{body}.encoder.layer.{i}.intermediate.dense.weight",
    ),
    same(
        "encoder.blocks.{i}.intermediate.bias",
        "{body}.encoder.layer.{i}.intermediate.dense.bias",
    ),
    dense(
        "encoder.blocks.{i}.output.weight",
        "{body}.encoder.layer.{i}.output.dense.weight",
    ),
    same(
        "encoder.blocks.{i}.output.bias",
        "{body}.encoder.layer.{i}.output.dense.bias",
    ),
    same(
        "encoder.blocks.{i}.norm.gamma",
        "{body}.encoder.layer.{i}.output.LayerNorm.weight",
    ),
    same(
        "encoder.blocks.{i}.norm.beta",
        "{body}.encoder.layer.{i}.output.LayerNorm.bias",
    ),
];

/// `ElectraForMaskedLM`'s head (BERT, ELECTRA's generator).
pub const TRANSFORMERS_MASKED_LM_HEAD: &[Rename] = &[
    dense("head.dense.weight", "generator_predictions.dense.weight"),
    same("head.dense.bias", "generator_predictions.dense.bias"),
    same("head.norm.gamma", "generator_predictions.LayerNorm.weight"),
    same("head.norm.beta", "generator_predictions.LayerNorm.bias"),
    same("head.bias", "generator_lm_head.bias"),
];

/// `ElectraForPreTraining`'s head (ELECTRA's discriminator).
pub const TRANSFORMERS_REPLACED_TOKEN_HEAD: &[Rename] = &[
    dense(
        "head.dense.weight",
        "discriminator_predictions.dense.weight",
    ),
    same("head.dense.bias", "discriminator_predictions.dense.bias"),
    dense(
        "head.logit.weight",
        "discriminator_predictions.dense_prediction.weight",
    ),
    same(
        "head.logit.bias",
        "discriminator_predictions.dense_prediction.bias",
    ),
];

/// `ElectraForSequenceClassification`'s head (transformers' `ElectraClassificationHead`): the
/// fine-tuning head with `head: dense_gelu` on `[CLS]`.
pub const TRANSFORMERS_CLASSIFICATION_HEAD: &[Rename] = &[
    dense("head.dense.weight", "classifier.dense.weight"),
    same("head.dense.bias", "classifier.dense.bias"),
    dense("head.output.weight", "classifier.out_proj.weight"),
    same("head.output.bias", "classifier.out_proj.bias"),
];

/// A transformers model class an exported network corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformersModel {
    /// The class (`architectures` in its `config.json`).
    pub class: &'static str,
    /// Its base model's prefix.
    pub body: &'static str,
    /// Its head's rows.
    pub head: &'static [Rename],
    /// A transformers tensor that is a copy of one of ours (a tied output matrix).
    pub tied: Option<(&'static str, &'static str)>,
}

impl TransformersModel {
    /// BERT or ELECTRA's generator as `ElectraForMaskedLM` (whose output matrix is the word
    /// embeddings).
    pub const MASKED_LM: TransformersModel = TransformersModel {
        class: "ElectraForMaskedLM",
        body: "electra",
        head: TRANSFORMERS_MASKED_LM_HEAD,
        tied: Some(("generator_lm_head.weight", "embeddings.word")),
    };
    /// ELECTRA's discriminator as `ElectraForPreTraining`.
    pub const PRE_TRAINING: TransformersModel = TransformersModel {
        class: "ElectraForPreTraining",
        body: "electra",
        head: TRANSFORMERS_REPLACED_TOKEN_HEAD,
        tied: None,
    };
    /// A fine-tuned classifier (`head: dense_gelu`, `[CLS]` pooling) as
    /// `ElectraForSequenceClassification`. Chosen by the caller, never by
    /// [`TransformersModel::for_tensors`]: the official pooler head has the same tensors and
    /// computes something else.
    pub const SEQUENCE_CLASSIFICATION: TransformersModel = TransformersModel {
        class: "ElectraForSequenceClassification",
        body: "electra",
        head: TRANSFORMERS_CLASSIFICATION_HEAD,
        tied: None,
    };
    /// The encoder alone as a bare `ElectraModel`.
    pub const BASE: TransformersModel = TransformersModel {
        class: "ElectraModel",
        body: "",
        head: &[],
        tied: None,
    };

    /// The class for an exported network with these tensors: the one whose head rows are all
    /// present (the replaced-token head, then the masked-LM head), else the bare encoder.
    pub fn for_tensors(tensors: &BTreeMap<String, NamedTensor>) -> TransformersModel {
        [Self::PRE_TRAINING, Self::MASKED_LM]
            .into_iter()
            .find(|model| model.head.iter().all(|row| tensors.contains_key(row.ours)))
            .unwrap_or(Self::BASE)
    }

    /// Whether electra-pipe's tensor `name` has a row in this model's table.
    pub fn maps(&self, name: &str) -> bool {
        self.rows().any(|row| matches(row.ours, name).is_some())
    }

    fn rows(&self) -> impl Iterator<Item = &'static Rename> {
        TRANSFORMERS_BODY.iter().chain(self.head)
    }
}

/// `name` matched against `pattern` (with at most one `{i}`): the block index, if any.
fn matches(pattern: &str, name: &str) -> Option<Option<String>> {
    match pattern.split_once("{i}") {
        None => (pattern == name).then_some(None),
        Some((before, after)) => {
            let index = name.strip_prefix(before)?.strip_suffix(after)?;
            (!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()))
                .then(|| Some(index.to_owned()))
        }
    }
}

/// `pattern` with the body prefix (none for a bare base model) and the block index filled in.
fn fill(pattern: &str, body: &str, index: &Option<String>) -> String {
    let named = if body.is_empty() {
        pattern.replace("{body}.", "")
    } else {
        pattern.replace("{body}", body)
    };
    match index {
        Some(i) => named.replace("{i}", i),
        None => named,
    }
}

fn transpose(tensor: &NamedTensor) -> NamedTensor {
    let [rows, cols] = tensor.shape[..] else {
        return tensor.clone();
    };
    let mut values = vec![0.0; tensor.values.len()];
    for r in 0..rows {
        for c in 0..cols {
            values[c * rows + r] = tensor.values[r * cols + c];
        }
    }
    NamedTensor {
        shape: vec![cols, rows],
        values,
    }
}

/// Renames every tensor by the first row whose `from` side matches it.
fn rename(
    tensors: &BTreeMap<String, NamedTensor>,
    model: &TransformersModel,
    to_theirs: bool,
) -> std::result::Result<BTreeMap<String, NamedTensor>, String> {
    let mut out = BTreeMap::new();
    for (name, tensor) in tensors {
        let (row, index) = model
            .rows()
            .find_map(|row| {
                let from = if to_theirs {
                    row.ours.to_owned()
                } else {
                    fill(row.theirs, model.body, &None)
                };
                matches(&from, name).map(|index| (row, index))
            })
            .ok_or_else(|| name.clone())?;
        let target = if to_theirs { row.theirs } else { row.ours };
        let value = match row.layout {
            Layout::Same => tensor.clone(),
            Layout::Transposed => transpose(tensor),
        };
        out.insert(fill(target, model.body, &index), value);
    }
    Ok(out)
}

/// An exported network's tensors under transformers' names for `model` (the tied copy
/// included, so a strict `load_state_dict` finds every tensor); the error names a tensor the
/// table has no row for.
pub fn to_transformers(
    tensors: &BTreeMap<String, NamedTensor>,
    model: &TransformersModel,
) -> std::result::Result<BTreeMap<String, NamedTensor>, String> {
    let mut out = rename(tensors, model, true)?;
    if let Some((theirs, ours)) = model.tied {
        let source = tensors.get(ours).ok_or_else(|| ours.to_owned())?;
        out.insert(theirs.to_owned(), source.clone());
    }
    Ok(out)
}

/// A transformers checkpoint of `model` under electra-pipe's exported names (the tied copy
/// dropped); the error names a tensor the table has no row for.
pub fn from_transformers(
    tensors: &BTreeMap<String, NamedTensor>,
    model: &TransformersModel,
) -> std::result::Result<BTreeMap<String, NamedTensor>, String> {
    let mut untied = tensors.clone();
    if let Some((theirs, _)) = model.tied {
        untied.remove(theirs);
    }
    rename(&untied, model, false)
}

/// A transformers checkpoint's encoder body under electra-pipe's exported names.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedBody {
    /// The body's tensors (`embeddings.*`, `encoder.*`), dense weights transposed.
    pub tensors: BTreeMap<String, NamedTensor>,
    /// The checkpoint's other tensors (heads, pooler), unused.
    pub unused: Vec<String>,
    /// The body tensors the checkpoint lacks.
    pub missing: Vec<String>,
}

/// The encoder body of a transformers checkpoint whose base model's tensors are under `body`
/// (`electra`, `bert`, or empty for a bare `ElectraModel`/`BertModel`), with `layers` blocks
/// and, if `projection`, ELECTRA's `embeddings_project` (when `e ≠ h`): every
/// [`TRANSFORMERS_BODY`] row, the rest of the checkpoint listed as unused.
pub fn body_from_transformers(
    checkpoint: &BTreeMap<String, NamedTensor>,
    body: &str,
    layers: usize,
    projection: bool,
) -> ImportedBody {
    let mut imported = ImportedBody {
        tensors: BTreeMap::new(),
        unused: Vec::new(),
        missing: Vec::new(),
    };
    let mut used = std::collections::BTreeSet::new();
    for row in TRANSFORMERS_BODY {
        if row.ours.starts_with("encoder.projection") && !projection {
            continue;
        }
        let indices: Vec<Option<String>> = if row.ours.contains("{i}") {
            (0..layers).map(|i| Some(i.to_string())).collect()
        } else {
            vec![None]
        };
        for index in indices {
            let theirs = fill(row.theirs, body, &index);
            let ours = fill(row.ours, body, &index);
            match checkpoint.get(&theirs) {
                Some(tensor) => {
                    let value = match row.layout {
                        Layout::Same => tensor.clone(),
                        Layout::Transposed => transpose(tensor),
                    };
                    imported.tensors.insert(ours, value);
                    used.insert(theirs);
                }
                None => imported.missing.push(theirs),
            }
        }
    }
    imported.unused = checkpoint
        .keys()
        .filter(|name| !used.contains(*name))
        .cloned()
        .collect();
    imported
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

/// Every float parameter of `module` by its module path.
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

/// `module` with every parameter replaced by the saved tensor of the same module path and
/// shape; an error lists the parameters that had none.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize]) -> NamedTensor {
        let len = shape.iter().product();
        NamedTensor {
            shape: shape.to_vec(),
            values: (0..len).map(|v| v as f32).collect(),
        }
    }

    /// The exported tensors of a one-block network with e ≠ h and the given head.
    fn exported(head: &[(&str, &[usize])]) -> BTreeMap<String, NamedTensor> {
        let (v, e, h, i) = (10, 4, 6, 8);
        let mut names: Vec<(String, Vec<usize>)> = vec![
            ("embeddings.word".into(), vec![v, e]),
            ("embeddings.position".into(), vec![16, e]),
            ("embeddings.segment".into(), vec![2, e]),
            ("embeddings.norm.gamma".into(), vec![e]),
            ("embeddings.norm.beta".into(), vec![e]),
            ("encoder.projection.weight".into(), vec![e, h]),
            ("encoder.projection.bias".into(), vec![h]),
        ];
        for (part, d_in, d_out) in [
            ("attention.query", h, h),
            ("attention.key", h, h),
            ("attention.value", h, h),
            ("attention.output", h, h),
            ("intermediate", h, i),
            ("output", i, h),
        ] {
            names.push((format!("encoder.blocks.0.{part}.weight"), vec![d_in, d_out]));
            names.push((format!("encoder.blocks.0.{part}.bias"), vec![d_out]));
        }
        for norm in ["attention.norm", "norm"] {
            names.push((format!("encoder.blocks.0.{norm}.gamma"), vec![h]));
            names.push((format!("encoder.blocks.0.{norm}.beta"), vec![h]));
        }
        names.extend(head.iter().map(|(n, s)| ((*n).to_owned(), s.to_vec())));
        names.into_iter().map(|(n, s)| (n, tensor(&s))).collect()
    }

    #[test]
    fn a_model_exports_only_its_network_under_file_names() {
        let module = BTreeMap::from([
            ("embeddings.word".to_owned(), tensor(&[2, 2])),
            ("discriminator.blocks.0.norm.gamma".to_owned(), tensor(&[2])),
            ("discriminator_head.logit.bias".to_owned(), tensor(&[1])),
            (
                "generator.encoder.blocks.0.norm.gamma".to_owned(),
                tensor(&[2]),
            ),
            ("generator.head.bias".to_owned(), tensor(&[3])),
        ]);
        let names = |network| export(&network, &module).into_keys().collect::<Vec<_>>();
        assert_eq!(
            names(Network::DISCRIMINATOR),
            [
                "embeddings.word",
                "encoder.blocks.0.norm.gamma",
                "head.logit.bias"
            ]
        );
        assert_eq!(
            names(Network::GENERATOR),
            [
                "embeddings.word",
                "encoder.blocks.0.norm.gamma",
                "head.bias"
            ]
        );
        let file = export(&Network::GENERATOR, &module);
        assert_eq!(
            part(&file, Part::Encoder).into_keys().collect::<Vec<_>>(),
            ["blocks.0.norm.gamma"]
        );
    }

    #[test]
    fn every_discriminator_tensor_has_one_transformers_name_and_comes_back() {
        let ours = exported(&[
            ("head.dense.weight", &[6, 6]),
            ("head.dense.bias", &[6]),
            ("head.logit.weight", &[6, 1]),
            ("head.logit.bias", &[1]),
        ]);
        let theirs = to_transformers(&ours, &TransformersModel::PRE_TRAINING).unwrap();
        assert_eq!(theirs.len(), ours.len());
        for name in [
            "electra.embeddings.word_embeddings.weight",
            "electra.embeddings_project.weight",
            "electra.encoder.layer.0.attention.self.query.weight",
            "electra.encoder.layer.0.attention.output.LayerNorm.bias",
            "electra.encoder.layer.0.output.LayerNorm.weight",
            "discriminator_predictions.dense_prediction.weight",
        ] {
            assert!(
                theirs.contains_key(name),
                "{name} missing from {:?}",
                theirs.keys()
            );
        }
        // PyTorch's Linear weights are [out, in].
        assert_eq!(
            theirs["electra.encoder.layer.0.intermediate.dense.weight"].shape,
            [8, 6]
        );
        assert_eq!(
            theirs["discriminator_predictions.dense_prediction.weight"].shape,
            [1, 6]
        );
        let projection = &theirs["electra.embeddings_project.weight"];
        assert_eq!(
            projection.values[1],
            ours["encoder.projection.weight"].values[6]
        );
        assert_eq!(
            from_transformers(&theirs, &TransformersModel::PRE_TRAINING).unwrap(),
            ours
        );
    }

    #[test]
    fn the_masked_lm_output_matrix_is_the_word_embeddings() {
        let ours = exported(&[
            ("head.dense.weight", &[6, 4]),
            ("head.dense.bias", &[4]),
            ("head.norm.gamma", &[4]),
            ("head.norm.beta", &[4]),
            ("head.bias", &[10]),
        ]);
        let theirs = to_transformers(&ours, &TransformersModel::MASKED_LM).unwrap();
        assert_eq!(theirs.len(), ours.len() + 1);
        assert_eq!(
            theirs["generator_lm_head.weight"],
            theirs["electra.embeddings.word_embeddings.weight"]
        );
        assert_eq!(theirs["generator_predictions.dense.weight"].shape, [4, 6]);
        assert_eq!(
            from_transformers(&theirs, &TransformersModel::MASKED_LM).unwrap(),
            ours
        );
    }

    #[test]
    fn a_tensor_without_a_row_is_named() {
        let mut ours = exported(&[]);
        ours.insert("encoder.blocks.x.norm.gamma".to_owned(), tensor(&[6]));
        assert_eq!(
            to_transformers(&ours, &TransformersModel::PRE_TRAINING).unwrap_err(),
            "encoder.blocks.x.norm.gamma"
        );
    }
}
