//! BERT vocabularies: the special tokens every model here needs, checking a `vocab.txt`, and
//! writing one.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::textfile::LineReader;

/// The BERT special tokens, in the order a trained vocabulary gets them (ids 0..5).
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// The ids of the special tokens in one vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecialIds {
    /// `[PAD]`: fills sequences up to the batch length.
    pub pad: u32,
    /// `[UNK]`: a word the vocabulary cannot spell.
    pub unk: u32,
    /// `[CLS]`: first token of every sequence.
    pub cls: u32,
    /// `[SEP]`: closes every segment.
    pub sep: u32,
    /// `[MASK]`: replaces masked-out tokens in MLM inputs.
    pub mask: u32,
}

impl SpecialIds {
    /// The ids of a vocabulary that starts with [`SPECIAL_TOKENS`], as a trained one does:
    /// `[PAD]` 0, `[UNK]` 1, `[CLS]` 2, `[SEP]` 3, `[MASK]` 4.
    pub const LEADING: SpecialIds = SpecialIds {
        pad: 0,
        unk: 1,
        cls: 2,
        sep: 3,
        mask: 4,
    };

    /// Looks every special token up with `id_of`; `Err` lists the missing ones.
    pub fn find(id_of: impl Fn(&str) -> Option<u32>) -> Result<Self, Vec<&'static str>> {
        let ids: Vec<Option<u32>> = SPECIAL_TOKENS.iter().map(|t| id_of(t)).collect();
        let missing: Vec<&str> = SPECIAL_TOKENS
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.is_none())
            .map(|(t, _)| *t)
            .collect();
        match ids.as_slice() {
            [Some(pad), Some(unk), Some(cls), Some(sep), Some(mask)] => Ok(SpecialIds {
                pad: *pad,
                unk: *unk,
                cls: *cls,
                sep: *sep,
                mask: *mask,
            }),
            _ => Err(missing),
        }
    }
}

/// The error for a vocabulary that lacks special tokens.
pub fn missing_specials(file: &Path, missing: &[&str]) -> DataError {
    DataError::invalid(
        file,
        format!(
            "the vocabulary has no {}: expected all of the BERT special tokens {}",
            missing.join(", "),
            SPECIAL_TOKENS.join(" ")
        ),
    )
}

/// Reads and checks a `vocab.txt` (one token per line, id = line number - 1): no empty or
/// duplicate entries, all special tokens present. Returns the tokens in id order.
pub fn read_vocab_txt(path: &Path) -> Result<Vec<String>> {
    let mut reader = LineReader::open(path)?;
    let mut tokens = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    while let Some(line) = reader.next_line() {
        let (number, text) = line?;
        let token = text.trim_end();
        if token.is_empty() {
            return Err(DataError::malformed(
                path,
                number,
                "empty entry: expected one token per line",
            ));
        }
        if let Some(first) = first_line.insert(token.to_owned(), number) {
            return Err(DataError::malformed(
                path,
                number,
                format!(
                    "duplicate token `{token}` (first on line {first}): expected each token once"
                ),
            ));
        }
        tokens.push(token.to_owned());
    }
    if tokens.is_empty() {
        return Err(DataError::invalid(
            path,
            "the vocabulary is empty: expected one token per line",
        ));
    }
    SpecialIds::find(|t| first_line.get(t).map(|line| *line as u32 - 1))
        .map_err(|missing| missing_specials(path, &missing))?;
    Ok(tokens)
}

/// Writes `tokens` (in id order) as a `vocab.txt`.
pub fn write_vocab_txt(path: &Path, tokens: &[String]) -> Result<()> {
    let mut text = String::with_capacity(tokens.len() * 8);
    for token in tokens {
        text.push_str(token);
        text.push('\n');
    }
    crate::textfile::write_text(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(content: &str) -> Result<Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vocab.txt");
        std::fs::write(&path, content).unwrap();
        read_vocab_txt(&path)
    }

    #[test]
    fn a_complete_vocabulary_reads_in_id_order() {
        let tokens = vocab("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n##s\n").unwrap();
        assert_eq!(tokens.len(), 7);
        assert_eq!(tokens[6], "##s");
    }

    #[test]
    fn missing_special_tokens_are_named() {
        let err = vocab("[PAD]\n[UNK]\n[SEP]\nthe\n").unwrap_err().to_string();
        assert!(
            err.ends_with("vocab.txt: the vocabulary has no [CLS], [MASK]: expected all of the BERT special tokens [PAD] [UNK] [CLS] [SEP] [MASK]"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_and_blank_lines_name_their_line() {
        let err = vocab("[PAD]\nthe\n[UNK]\nthe\n").unwrap_err().to_string();
        assert!(
            err.contains("vocab.txt:4: duplicate token `the` (first on line 2)"),
            "{err}"
        );
        let err = vocab("[PAD]\n\n").unwrap_err().to_string();
        assert!(err.contains("vocab.txt:2: empty entry"), "{err}");
    }
}
