//! A tokenizer as the files Hugging Face transformers' `AutoTokenizer.from_pretrained` reads
//! from a checkpoint directory: `tokenizer.json` (the fast tokenizer), `vocab.txt` (the slow
//! one), `tokenizer_config.json` (its class, lower-casing, longest input) and
//! `special_tokens_map.json`.

use std::path::Path;

use serde_json::{json, Value};

use super::bert::{from_tokenizer_json, vocab_in_id_order};
use super::vocab::write_vocab_txt;
use crate::error::{DataError, Result};
use crate::json_file;

/// The files written, in the order [`write_transformers_tokenizer`] writes them.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// Whether the `tokenizer.json` lower-cases its input (its BERT normalizer's `lowercase`;
/// true, as BERT's uncased vocabulary, when it does not say).
fn lowercases(tokenizer_json: &Path) -> Result<bool> {
    let json: Value = json_file::read(tokenizer_json, "a Hugging Face tokenizer.json")?;
    Ok(json["normalizer"]["lowercase"].as_bool().unwrap_or(true))
}

/// Writes the tokenizer in `tokenizer_json` into `dir` as [`TOKENIZER_FILES`], for inputs of
/// at most `max_length` tokens.
pub fn write_transformers_tokenizer(
    tokenizer_json: &Path,
    dir: &Path,
    max_length: usize,
) -> Result<()> {
    let tokenizer = from_tokenizer_json(tokenizer_json)?;
    let lowercase = lowercases(tokenizer_json)?;
    let [json_file, vocab_file, config_file, specials_file] = TOKENIZER_FILES;
    tokenizer.save(dir.join(json_file), true).map_err(|e| {
        DataError::Config(format!("writing {}: {e}", dir.join(json_file).display()))
    })?;
    write_vocab_txt(
        &dir.join(vocab_file),
        &vocab_in_id_order(&tokenizer, tokenizer_json)?,
    )?;
    let specials = json!({
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    });
    let mut config = json!({
        "tokenizer_class": "ElectraTokenizer",
        "do_lower_case": lowercase,
        "strip_accents": null,
        "tokenize_chinese_chars": true,
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": true,
    });
    for (key, value) in specials.as_object().expect("an object") {
        config[key] = value.clone();
    }
    json_file::write_pretty(&dir.join(config_file), &config)?;
    json_file::write_pretty(&dir.join(specials_file), &specials)
}
