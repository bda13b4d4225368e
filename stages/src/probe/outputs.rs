//! A probe's files: `predictions.tsv` (every held-out token: sentence, token, word, gold tag,
//! control tag, its type's number of training tags, the majority baseline's tag, and each
//! layer's predicted tag and control tag), `codelength.tsv` (every training token in the
//! order the online code sends it: its block and each layer's bits) and `summary.json`
//! ([`ProbeSummary`]), whose every figure can be recomputed from the two others.

use std::fmt::Write as _;
use std::path::Path;

use electra_pipe_api::Metrics;
use serde_json::json;

use super::words::{ProbeData, TypeTags};
use super::{LayerProbes, ProbeParams, Tagset};
use crate::error::{DataError, Result};
use crate::records::encoder::EncoderOrigin;
use crate::records::probe::{Accuracies, LayerResult, ProbeSummary, PROBE_SUMMARY_FORMAT};
use crate::textfile::write_text;

/// The held-out tokens' predictions.
pub const PREDICTIONS_FILE: &str = "predictions.tsv";
/// The training tokens' online codelengths.
pub const CODELENGTH_FILE: &str = "codelength.tsv";
/// The summary.
pub const SUMMARY_FILE: &str = "summary.json";

/// Everything the files are written from.
pub struct Written<'a> {
    /// The stage's params.
    pub params: &'a ProbeParams,
    /// The encoder probed.
    pub origin: EncoderOrigin,
    /// The tokens.
    pub data: &'a ProbeData,
    /// The training split's word types.
    pub types: &'a TypeTags,
    /// The online code's order of the training tokens.
    pub order: &'a [usize],
    /// Each layer's probes.
    pub probes: &'a [LayerProbes],
    /// FLOPs of the forward passes.
    pub forward_flops: f64,
    /// Wall time.
    pub seconds: f64,
}

/// Share of `hits` among the tokens `included` (0 when there are none).
fn share(hits: impl Iterator<Item = (bool, bool)>) -> f64 {
    let (mut n, mut correct) = (0usize, 0usize);
    for (included, hit) in hits {
        if included {
            n += 1;
            correct += usize::from(hit);
        }
    }
    if n == 0 {
        0.0
    } else {
        correct as f64 / n as f64
    }
}

/// Accuracies of `predicted` against `gold` on all, ambiguous (`distinct > 1`) and unseen
/// (`distinct == 0`) tokens.
fn accuracies(gold: &[u8], predicted: &[u8], distinct: &[usize]) -> Accuracies {
    let hits = || gold.iter().zip(predicted).map(|(g, p)| g == p);
    Accuracies {
        all: share(hits().map(|h| (true, h))),
        ambiguous: share(distinct.iter().zip(hits()).map(|(&d, h)| (d > 1, h))),
        unseen: share(distinct.iter().zip(hits()).map(|(&d, h)| (d == 0, h))),
    }
}

/// Writes the three files into `dir` and returns the stage's metrics.
pub fn write(dir: &Path, w: &Written<'_>) -> Result<Metrics> {
    std::fs::create_dir_all(dir)
        .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
    let data = w.data;
    let tags = &data.tags;
    let eval: Vec<(usize, &super::words::ProbeWord)> = data.eval.words().collect();
    let gold: Vec<u8> = eval.iter().map(|(_, word)| word.gold).collect();
    let control: Vec<u8> = eval
        .iter()
        .map(|(_, word)| w.types.control(&word.word, w.params.seed))
        .collect();
    let distinct: Vec<usize> = eval
        .iter()
        .map(|(_, word)| w.types.distinct(&word.word))
        .collect();
    let majority: Vec<u8> = eval
        .iter()
        .map(|(_, word)| w.types.majority(&word.word))
        .collect();

    let mut text = String::from("sentence\ttoken\tword\tgold\tcontrol\ttrain_tags\tmajority");
    for p in w.probes {
        write!(text, "\tlayer{}\tlayer{}_control", p.layer, p.layer).expect("a string");
    }
    text.push('\n');
    for (i, (s, word)) in eval.iter().enumerate() {
        write!(
            text,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            data.eval.sentences[*s].id,
            word.index,
            word.word,
            tags[gold[i] as usize],
            tags[control[i] as usize],
            distinct[i],
            tags[majority[i] as usize]
        )
        .expect("a string");
        for p in w.probes {
            write!(
                text,
                "\t{}\t{}",
                tags[p.predicted[i] as usize], tags[p.control_predicted[i] as usize]
            )
            .expect("a string");
        }
        text.push('\n');
    }
    write_text(&dir.join(PREDICTIONS_FILE), &text)?;

    let train: Vec<(usize, &super::words::ProbeWord)> = data.train.words().collect();
    let mut text = String::from("sentence\ttoken\tword\tgold\tblock");
    for p in w.probes {
        write!(text, "\tlayer{}", p.layer).expect("a string");
    }
    text.push('\n');
    for (k, &row) in w.order.iter().enumerate() {
        let (s, word) = train[row];
        let block = w.probes.first().map_or(0, |p| p.codelength[k].0);
        write!(
            text,
            "{}\t{}\t{}\t{}\t{block}",
            data.train.sentences[s].id, word.index, word.word, tags[word.gold as usize]
        )
        .expect("a string");
        for p in w.probes {
            write!(text, "\t{}", p.codelength[k].1).expect("a string");
        }
        text.push('\n');
    }
    write_text(&dir.join(CODELENGTH_FILE), &text)?;

    let uniform_bits = train.len() as f64 * (tags.len() as f64).log2();
    let layers: Vec<LayerResult> = w
        .probes
        .iter()
        .map(|p| {
            let accuracy = accuracies(&gold, &p.predicted, &distinct);
            let control_accuracy = accuracies(&control, &p.control_predicted, &distinct).all;
            let codelength_bits: f64 = p.codelength.iter().map(|(_, bits)| bits).sum();
            LayerResult {
                layer: p.layer,
                accuracy,
                control_accuracy,
                selectivity: accuracy.all - control_accuracy,
                codelength_bits,
                bits_per_token: codelength_bits / train.len().max(1) as f64,
                compression: uniform_bits / codelength_bits,
            }
        })
        .collect();
    let summary = ProbeSummary {
        format: PROBE_SUMMARY_FORMAT.to_owned(),
        init_seed: w.origin.from_scratch.then_some(w.params.init_seed),
        encoder: w.origin.clone(),
        tagset: match w.params.tagset {
            Tagset::Universal => "universal",
            Tagset::Brown => "brown",
        }
        .to_owned(),
        tags: tags.clone(),
        train_docs: data.train.docs.clone(),
        eval_docs: data.eval.docs.clone(),
        train_tokens: train.len(),
        eval_tokens: eval.len(),
        eval_sentences: data.eval.sentences.len(),
        ambiguous_tokens: distinct.iter().filter(|&&d| d > 1).count(),
        unseen_tokens: distinct.iter().filter(|&&d| d == 0).count(),
        dropped_words: data.dropped_words,
        majority: accuracies(&gold, &majority, &distinct),
        layers,
        seed: w.params.seed,
        l2: w.params.l2,
        epochs: w.params.epochs,
        min_steps: w.params.min_steps,
        batch_size: w.params.batch_size,
        lr: w.params.lr,
        forward_flops: w.forward_flops,
        backend: w.params.backend.clone(),
        seconds: w.seconds,
    };
    summary.write(&dir.join(SUMMARY_FILE))?;
    let mut metrics = Metrics::new();
    metrics.insert("train_tokens".into(), json!(summary.train_tokens));
    metrics.insert("eval_tokens".into(), json!(summary.eval_tokens));
    metrics.insert("majority.accuracy".into(), json!(summary.majority.all));
    for layer in &summary.layers {
        let l = layer.layer;
        metrics.insert(format!("layer{l}.accuracy"), json!(layer.accuracy.all));
        metrics.insert(format!("layer{l}.selectivity"), json!(layer.selectivity));
        metrics.insert(
            format!("layer{l}.bits_per_token"),
            json!(layer.bits_per_token),
        );
    }
    metrics.insert("forward_flops".into(), json!(summary.forward_flops));
    tracing::info!(
        best_accuracy = summary
            .layers
            .iter()
            .map(|l| l.accuracy.all)
            .fold(0.0, f64::max),
        majority = summary.majority.all,
        "probes written"
    );
    Ok(metrics)
}
