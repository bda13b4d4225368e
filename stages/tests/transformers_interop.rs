//! Numerical equivalence with Hugging Face transformers, without Python: a tiny random ELECTRA
//! (`e ≠ h`, 2 blocks, 100 tokens) and its outputs on padded two-segment inputs, written by
//! `scripts/make-hf-fixture.py` into `tests/fixtures/transformers/`, are read with
//! electra-pipe's importer and run through its own modules; every output must match to 1e-5.
//! A fine-tuning classifier with transformers' head (`head: dense_gelu`) reads
//! `ElectraForSequenceClassification` to the same logits. Writing a network back out as a
//! transformers checkpoint must give the same tensors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use electra_stages::finetune::model::Classifier;
use electra_stages::model::encoder::{Backbone, Embeddings, Encoder, EncoderInput, Layout};
use electra_stages::model::export::ExportedEncoder;
use electra_stages::model::heads::{MaskedLmHead, ReplacedTokenHead};
use electra_stages::model::layers::{Dropout, Init};
use electra_stages::model::safetensors::{self, NamedTensor};
use electra_stages::model::transformers::read_network;
use electra_stages::model::transformers_export::{write_checkpoint, Checkpoint};
use electra_stages::model::weights::{load_named, part, Part, TransformersModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/transformers")
        .join(name)
}

/// transformers' outputs by name.
fn expected() -> BTreeMap<String, NamedTensor> {
    safetensors::read(&fixture("outputs.safetensors")).unwrap()
}

/// The fixture's inputs on the device.
fn inputs(device: &burn::tensor::Device<B>) -> EncoderInput<B> {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("inputs.json")).unwrap()).unwrap();
    let rows = |key: &str| -> (Vec<i64>, [usize; 2]) {
        let rows = json[key].as_array().unwrap();
        let values: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()))
            .collect();
        let shape = [rows.len(), values.len() / rows.len()];
        (values, shape)
    };
    let ints = |key: &str| {
        let (values, shape) = rows(key);
        Tensor::<B, 2, Int>::from_data(TensorData::new(values, shape), device)
    };
    let (mask, shape) = rows("attention_mask");
    let mask: Vec<f32> = mask.into_iter().map(|v| v as f32).collect();
    EncoderInput {
        ids: ints("input_ids"),
        segments: ints("token_type_ids"),
        layout: Layout::Padded(Tensor::from_data(TensorData::new(mask, shape), device)),
    }
}

/// The embeddings and encoder of `network`, loaded from its tensors.
fn body(
    network: &ExportedEncoder,
    device: &burn::tensor::Device<B>,
    source: &Path,
) -> (Embeddings<B>, Encoder<B>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut init = Init {
        device,
        rng: &mut rng,
    };
    let embeddings = Embeddings::new(&mut init, &network.config);
    let encoder = Encoder::new(&mut init, &network.config);
    let tensors = |of| part(&network.tensors, of);
    (
        load_named(embeddings, &tensors(Part::Embeddings), device, source).unwrap(),
        load_named(encoder, &tensors(Part::Encoder), device, source).unwrap(),
    )
}

/// `actual` matches transformers' `name` output to 1e-5, element by element.
fn assert_close<const D: usize>(actual: Tensor<B, D>, expected: &NamedTensor, name: &str) {
    assert_eq!(actual.dims().to_vec(), expected.shape, "{name}'s shape");
    let actual = actual.into_data().to_vec::<f32>().unwrap();
    let worst = actual
        .iter()
        .zip(&expected.values)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-5, "{name}: largest difference {worst:e}");
}

#[test]
fn a_transformers_discriminator_gives_transformers_hidden_states_and_logits() {
    let device = Default::default();
    let dir = fixture("discriminator");
    let network = read_network(&dir).unwrap();
    assert_ne!(network.config.embedding, network.config.hidden);
    let (embeddings, encoder) = body(&network, &device, &dir);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut init = Init {
        device: &device,
        rng: &mut rng,
    };
    let head = load_named(
        ReplacedTokenHead::new(&mut init, network.config.hidden),
        &part(&network.tensors, Part::Head),
        &device,
        &dir,
    )
    .unwrap();
    let backbone = Backbone {
        embeddings: &embeddings,
        encoder: &encoder,
    };
    let hidden = backbone.forward(&inputs(&device), &mut Dropout::Off);
    let expected = expected();
    assert_close(
        hidden.clone(),
        &expected["discriminator.hidden"],
        "hidden states",
    );
    assert_close(
        head.forward(hidden),
        &expected["discriminator.logits"],
        "logits",
    );
}

#[test]
fn a_transformers_generator_gives_transformers_masked_lm_logits() {
    let device = Default::default();
    let dir = fixture("generator");
    let network = read_network(&dir).unwrap();
    let (embeddings, encoder) = body(&network, &device, &dir);
    let c = network.config;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut init = Init {
        device: &device,
        rng: &mut rng,
    };
    let head = load_named(
        MaskedLmHead::new(&mut init, c.hidden, c.embedding, c.vocab_size),
        &part(&network.tensors, Part::Head),
        &device,
        &dir,
    )
    .unwrap();
    let input = inputs(&device);
    let [b, s] = input.ids.dims();
    let hidden = Backbone {
        embeddings: &embeddings,
        encoder: &encoder,
    }
    .forward(&input, &mut Dropout::Off);
    let expected = expected();
    assert_close(
        hidden.clone(),
        &expected["generator.hidden"],
        "hidden states",
    );
    let every = Tensor::<B, 1, Int>::arange(0..(b * s) as i64, &device);
    let logits = head
        .forward(hidden, every, embeddings.word.val())
        .reshape([b, s, c.vocab_size]);
    assert_close(logits, &expected["generator.logits"], "masked-LM logits");
}

#[test]
fn a_transformers_sequence_classifier_gives_transformers_logits() {
    let device = Default::default();
    let dir = fixture("classifier");
    let classifier = Classifier::<B>::from_transformers(&dir, &device).unwrap();
    let logits = classifier.forward(&inputs(&device), &mut Dropout::Off, &mut Dropout::Off);
    assert_close(
        logits,
        &expected()["classifier.logits"],
        "classifier logits",
    );
}

#[test]
fn writing_an_imported_network_back_gives_the_checkpoint_s_tensors() {
    let scratch = tempfile::tempdir().unwrap();
    let tokenizer = scratch.path().join("tokenizer.json");
    let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .map(str::to_owned)
        .chain((5..100).map(|i| format!("w{i}")))
        .collect();
    let vocab_txt = tokenizer.with_extension("txt");
    std::fs::write(&vocab_txt, vocab.join("\n") + "\n").unwrap();
    electra_stages::tokenizer::from_vocab_txt(&vocab_txt, true)
        .unwrap()
        .save(&tokenizer, false)
        .unwrap();
    for name in ["discriminator", "generator", "classifier"] {
        let dir = fixture(name);
        let network = read_network(&dir).unwrap();
        let out = tempfile::tempdir().unwrap();
        let model = match name {
            "classifier" => TransformersModel::SEQUENCE_CLASSIFICATION,
            _ => TransformersModel::for_tensors(&network.tensors),
        };
        let checkpoint = Checkpoint {
            tensors: &network.tensors,
            config: &network.config,
            model,
            pad_token_id: 0,
            extra_config: Default::default(),
        };
        let written = write_checkpoint(out.path(), &checkpoint, &tokenizer).unwrap();
        assert!(written.left_out.is_empty(), "{:?}", written.left_out);
        let (theirs, _) = safetensors::read_floats(&dir.join("model.safetensors")).unwrap();
        let (ours, _) = safetensors::read_floats(&out.path().join("model.safetensors")).unwrap();
        for (tensor, values) in &theirs {
            assert_eq!(ours.get(tensor), Some(values), "{name}: {tensor}");
        }
        // transformers 5 leaves the tied output matrix out of the file; electra-pipe writes it.
        let extra: Vec<_> = ours.keys().filter(|k| !theirs.contains_key(*k)).collect();
        let tied: Vec<_> = if name == "generator" {
            vec!["generator_lm_head.weight"]
        } else {
            vec![]
        };
        assert_eq!(extra, tied.iter().collect::<Vec<_>>(), "{name}");
        assert_eq!(read_network(out.path()).unwrap().tensors, network.tensors);
    }
}
