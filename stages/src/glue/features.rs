//! Turns GLUE rows into model inputs: `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`, pairs cut
//! to `max_seq_len` by BERT's longest-first rule, written one JSON object per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::tsv::{Label, Row};
use crate::error::{DataError, Result};
use crate::textfile::LineReader;
use crate::tokenizer::{BertTokenizer, SpecialIds};

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// The file's index/id (for submission files), or the row position.
    pub index: String,
    /// Token ids with `[CLS]`/`[SEP]`.
    pub input_ids: Vec<u32>,
    /// 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`.
    pub segment_ids: Vec<u32>,
    /// Class id or score; `None` in test splits.
    pub label: Option<Label>,
}

/// Shortens the longer of `a` and `b` one token at a time (from the end; `b` on a tie) until
/// together they fit `budget`, as BERT's `_truncate_seq_pair`. Returns whether anything was cut.
pub fn truncate_longest_first(a: &mut Vec<u32>, b: &mut Vec<u32>, budget: usize) -> bool {
    let cut = a.len() + b.len() > budget;
    while a.len() + b.len() > budget {
        if a.len() > b.len() {
            a.pop();
        } else {
            b.pop();
        }
    }
    cut
}

/// Builds `[CLS] a [SEP] (b [SEP])` with segment ids.
fn assemble(a: &[u32], b: Option<&[u32]>, special: SpecialIds) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(a.len() + b.map_or(0, <[u32]>::len) + 3);
    ids.push(special.cls);
    ids.extend_from_slice(a);
    ids.push(special.sep);
    let mut segments = vec![0; ids.len()];
    if let Some(b) = b {
        ids.extend_from_slice(b);
        ids.push(special.sep);
        segments.resize(ids.len(), 1);
    }
    (ids, segments)
}

/// Tokenizes rows (on the current rayon pool); returns the features and how many were cut.
pub fn featurize(
    rows: Vec<Row>,
    tokenizer: &BertTokenizer,
    max_seq_len: usize,
) -> Result<(Vec<Feature>, usize)> {
    let texts_a: Vec<&str> = rows.iter().map(|r| r.text_a.as_str()).collect();
    let ids_a = tokenizer.encode_ids(&texts_a)?;
    let is_pair = rows.first().is_some_and(|r| r.text_b.is_some());
    let ids_b = if is_pair {
        let texts_b: Vec<&str> = rows
            .iter()
            .map(|r| r.text_b.as_deref().unwrap_or(""))
            .collect();
        tokenizer.encode_ids(&texts_b)?
    } else {
        Vec::new()
    };
    let special = tokenizer.special();
    let mut truncated = 0;
    let mut ids_b = ids_b.into_iter();
    let features = rows
        .into_iter()
        .zip(ids_a)
        .map(|(row, mut a)| {
            let (ids, segments) = if is_pair {
                let mut b = ids_b.next().unwrap_or_default();
                truncated += usize::from(truncate_longest_first(&mut a, &mut b, max_seq_len - 3));
                assemble(&a, Some(&b), special)
            } else {
                truncated += usize::from(a.len() > max_seq_len - 2);
                a.truncate(max_seq_len - 2);
                assemble(&a, None, special)
            };
            Feature {
                index: row.index,
                input_ids: ids,
                segment_ids: segments,
                label: row.label,
            }
        })
        .collect();
    Ok((features, truncated))
}

/// Writes features as JSON lines.
pub fn write_features(path: &Path, features: &[Feature]) -> Result<()> {
    let context = || format!("writing {}", path.display());
    let mut out = BufWriter::new(File::create(path).map_err(|e| DataError::io(context(), e))?);
    for feature in features {
        serde_json::to_writer(&mut out, feature).map_err(|e| DataError::io(context(), e.into()))?;
        out.write_all(b"\n")
            .map_err(|e| DataError::io(context(), e))?;
    }
    out.flush().map_err(|e| DataError::io(context(), e))
}

/// Reads the features of one split written by a `glue_task` stage.
pub fn read_features(path: &Path) -> Result<Vec<Feature>> {
    let mut reader = LineReader::open(path)?;
    let mut features = Vec::new();
    while let Some(line) = reader.next_line() {
        let (number, text) = line?;
        let feature = serde_json::from_str(text).map_err(|e| {
            DataError::malformed(path, number, format!("expected a feature object: {e}"))
        })?;
        features.push(feature);
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_truncation_matches_bert() {
        let (mut a, mut b) = ((0..10).collect::<Vec<u32>>(), (0..4).collect::<Vec<u32>>());
        assert!(truncate_longest_first(&mut a, &mut b, 9));
        assert_eq!((a.len(), b.len()), (5, 4));
        let (mut a, mut b) = (vec![1; 6], vec![2; 6]);
        truncate_longest_first(&mut a, &mut b, 9);
        assert_eq!((a.len(), b.len()), (5, 4), "ties cut b first");
        let (mut a, mut b) = (vec![1; 2], vec![2; 2]);
        assert!(!truncate_longest_first(&mut a, &mut b, 9));
    }

    #[test]
    fn pairs_get_segment_ids() {
        let special = SpecialIds::LEADING;
        let (ids, segments) = assemble(&[10, 11], Some(&[20]), special);
        assert_eq!(ids, [2, 10, 11, 3, 20, 3]);
        assert_eq!(segments, [0, 0, 0, 0, 1, 1]);
        let (ids, segments) = assemble(&[10], None, special);
        assert_eq!((ids, segments), (vec![2, 10, 3], vec![0, 0, 0]));
    }
}
