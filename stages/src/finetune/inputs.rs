//! What a fine-tuning run reads, all checked before any training starts: the task's splits
//! (labels within the task's label set) and the encoder (its vocabulary and positions must fit
//! the task's features).

use std::path::{Path, PathBuf};

use super::FinetuneParams;
use crate::error::{DataError, Result};
use crate::glue::{read_features, Feature, Label, Task, TaskInfo, TASK_FILE};
use crate::model::config::EncoderConfig;
use crate::model::export::{encoder_file, read_encoder, ExportedEncoder};

/// One split's features and the file they came from.
pub struct Split {
    /// `train`, `dev`, `dev_matched`, `test`, ...
    pub name: String,
    /// Its `<split>.jsonl`.
    pub path: PathBuf,
    /// Its examples.
    pub features: Vec<Feature>,
}

impl Split {
    fn read(dir: &Path, name: &str) -> Result<Self> {
        let path = dir.join(format!("{name}.jsonl"));
        Ok(Split {
            name: name.to_owned(),
            features: read_features(&path)?,
            path,
        })
    }

    /// Checks every example has a label of the task's kind and within its label set.
    fn check_labels(&self, task: &Task) -> Result<()> {
        for (i, f) in self.features.iter().enumerate() {
            let problem = match (f.label, task.labels) {
                (Some(Label::Class(id)), Some(labels)) if (id as usize) < labels.len() => None,
                (Some(Label::Score(_)), None) => None,
                (label, Some(labels)) => Some(format!(
                    "label {label:?} is outside {}'s label set: expected a class id 0..{} ({})",
                    task.name,
                    labels.len() - 1,
                    labels.join(", ")
                )),
                (label, None) => Some(format!("label {label:?}: expected a {} score", task.name)),
            };
            if let Some(message) = problem {
                return Err(DataError::malformed(&self.path, i + 1, message));
            }
        }
        Ok(())
    }
}

/// Everything read and checked before any training starts.
pub struct Prepared {
    /// The task's `task.json`.
    pub info: TaskInfo,
    /// The task.
    pub task: &'static Task,
    /// The training split.
    pub train: Split,
    /// The dev splits, the scored one first.
    pub devs: Vec<Split>,
    /// The test splits.
    pub tests: Vec<Split>,
    /// The pretrained encoder and its file.
    pub exported: Option<(ExportedEncoder, PathBuf)>,
    /// The shape of the encoder fine-tuned (the pretrained one's, or `from_scratch`'s).
    pub encoder: EncoderConfig,
    /// The tokenizer to export the fine-tuned model with, when it is exported.
    pub export_tokenizer: Option<PathBuf>,
}

/// Reads and checks the task and the encoder of `params`.
pub fn prepare(params: &FinetuneParams) -> Result<Prepared> {
    let dir = Path::new(&params.task);
    let info_path = dir.join(TASK_FILE);
    let info = TaskInfo::read(&info_path)?;
    let task = info.spec(&info_path)?;
    let present = |prefix: &str| -> Vec<&str> {
        task.splits
            .iter()
            .copied()
            .filter(|s| s.starts_with(prefix) && info.splits.contains_key(*s))
            .collect()
    };
    let loaded = || info.splits.keys().cloned().collect::<Vec<_>>().join(", ");
    if !info.splits.contains_key("train") {
        return Err(DataError::invalid(
            &info_path,
            format!(
                "{} has no train split here (loaded: {}): expected the glue_task stage to load `train`",
                task.name,
                loaded()
            ),
        ));
    }
    let dev_names = present("dev");
    if dev_names.is_empty() {
        return Err(DataError::invalid(
            &info_path,
            format!(
                "{} has no dev split here (loaded: {}): expected one to score on",
                task.name,
                loaded()
            ),
        ));
    }
    let train = Split::read(dir, "train")?;
    let devs = dev_names
        .iter()
        .map(|name| Split::read(dir, name))
        .collect::<Result<Vec<_>>>()?;
    for split in std::iter::once(&train).chain(&devs) {
        split.check_labels(task)?;
    }
    if train.features.is_empty() {
        return Err(DataError::invalid(
            &train.path,
            "no training examples: expected at least one",
        ));
    }
    let tests = present("test")
        .iter()
        .map(|name| Split::read(dir, name))
        .collect::<Result<Vec<_>>>()?;
    let file = params
        .encoder
        .as_deref()
        .map(|encoder| encoder_file(encoder, params.snapshot))
        .transpose()?;
    let exported = match file {
        Some(path) => {
            let (exported, file) = read_encoder(&path)?;
            check_encoder(&exported, &info, &file, &info_path)?;
            Some((exported, file))
        }
        None => None,
    };
    let encoder = match (&exported, &params.from_scratch) {
        (Some((exported, _)), _) => exported.config,
        (None, Some(model)) => model.encoder(info.vocab_size),
        (None, None) => unreachable!("parse requires `encoder` or `from_scratch`"),
    };
    let export_tokenizer = super::transformers::tokenizer_for_export(params, &encoder, dir)?;
    Ok(Prepared {
        info,
        task,
        train,
        devs,
        tests,
        exported,
        encoder,
        export_tokenizer,
    })
}

/// The encoder must read the task's token ids: same vocabulary, long enough positions.
fn check_encoder(
    exported: &ExportedEncoder,
    info: &TaskInfo,
    path: &Path,
    info_path: &Path,
) -> Result<()> {
    if exported.config.vocab_size != info.vocab_size {
        return Err(DataError::invalid(
            path,
            format!(
                "the encoder was pretrained with a vocabulary of {} tokens, but the task's features ({}) come from a tokenizer of {} tokens: expected the tokenizer the encoder was pretrained with",
                exported.config.vocab_size,
                info_path.display(),
                info.vocab_size
            ),
        ));
    }
    if exported.config.max_positions < info.max_seq_len {
        return Err(DataError::invalid(
            path,
            format!(
                "the encoder has {} positions, but the task's features are up to {} tokens long: expected max_seq_len ≤ {}",
                exported.config.max_positions, info.max_seq_len, exported.config.max_positions
            ),
        ));
    }
    Ok(())
}

/// The class id of a training or dev example (its label was checked by [`prepare`]).
pub fn class_of(feature: &Feature) -> u32 {
    match feature.label {
        Some(Label::Class(id)) => id,
        _ => unreachable!("labels are checked before training"),
    }
}

/// The score of a training or dev STS-B example (its label was checked by [`prepare`]).
pub fn score_of(feature: &Feature) -> f64 {
    match feature.label {
        Some(Label::Score(score)) => score,
        _ => unreachable!("labels are checked before training"),
    }
}
