//! Input formats of the `corpus` kind: each turns a file into documents (lists of paragraphs).
//!
//! - `wikiextractor`: `<doc id=".." url=".." title="..">` … `</doc>` records; the first line
//!   of each record repeats the title and is dropped; every other non-blank line is a paragraph.
//! - `text`: one paragraph (or sentence) per line, documents separated by blank lines.

use std::path::Path;

use serde::Deserialize;

use crate::error::{DataError, Result};
use crate::textfile::LineReader;

/// How a corpus file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Decide per file: WikiExtractor if its first non-blank line starts with `<doc `.
    Auto,
    /// WikiExtractor output.
    Wikiextractor,
    /// Plain text, blank lines between documents.
    Text,
}

/// What to do with each document read: return `false` to stop reading.
pub type DocumentSink<'a> = dyn FnMut(Vec<String>) -> Result<bool> + 'a;

/// Reads the documents of one file in `format`, handing each to `sink` until it says stop.
/// `bytes_read` is called with the size of every line consumed (for progress).
/// Returns `false` if the sink asked to stop.
pub fn read_documents(
    path: &Path,
    format: Format,
    sink: &mut DocumentSink<'_>,
    bytes_read: &mut dyn FnMut(u64),
) -> Result<bool> {
    let mut reader = LineReader::open(path)?;
    let format = match format {
        Format::Auto => detect(path)?,
        chosen => chosen,
    };
    match format {
        Format::Wikiextractor => read_wikiextractor(&mut reader, sink, bytes_read),
        _ => read_text(&mut reader, sink, bytes_read),
    }
}

/// The format of `path` by its first non-blank line.
fn detect(path: &Path) -> Result<Format> {
    let mut reader = LineReader::open(path)?;
    while let Some(line) = reader.next_line() {
        let (_, text) = line?;
        if !text.trim().is_empty() {
            return Ok(if text.starts_with("<doc ") {
                Format::Wikiextractor
            } else {
                Format::Text
            });
        }
    }
    Ok(Format::Text)
}

fn read_text(
    reader: &mut LineReader,
    sink: &mut DocumentSink<'_>,
    bytes_read: &mut dyn FnMut(u64),
) -> Result<bool> {
    let mut document = Vec::new();
    while let Some(line) = reader.next_line() {
        let (_, text) = line?;
        bytes_read(text.len() as u64 + 1);
        if text.trim().is_empty() {
            if !document.is_empty() && !sink(std::mem::take(&mut document))? {
                return Ok(false);
            }
        } else {
            document.push(text.to_owned());
        }
    }
    if document.is_empty() {
        Ok(true)
    } else {
        sink(document)
    }
}

/// Where the WikiExtractor reader is inside a file.
enum WikiState {
    /// Between records.
    Outside,
    /// Just after `<doc ...>`, expecting the title line.
    Title { opened_at: usize },
    /// Reading paragraphs.
    Body { opened_at: usize },
}

impl WikiState {
    /// The line of the open record's `<doc>`, if inside one.
    fn opened_at(&self) -> Option<usize> {
        match self {
            WikiState::Outside => None,
            WikiState::Title { opened_at } | WikiState::Body { opened_at } => Some(*opened_at),
        }
    }
}

fn read_wikiextractor(
    reader: &mut LineReader,
    sink: &mut DocumentSink<'_>,
    bytes_read: &mut dyn FnMut(u64),
) -> Result<bool> {
    let path = reader.path().to_owned();
    let mut state = WikiState::Outside;
    let mut document = Vec::new();
    while let Some(line) = reader.next_line() {
        let (number, text) = line?;
        bytes_read(text.len() as u64 + 1);
        if text.starts_with("<doc ") || text == "<doc>" {
            if let Some(opened_at) = state.opened_at() {
                return Err(DataError::malformed(
                    &path,
                    number,
                    format!("a new `<doc>` inside the document opened at line {opened_at}: expected `</doc>` first"),
                ));
            }
            state = WikiState::Title { opened_at: number };
            continue;
        }
        match (&state, text.trim()) {
            (WikiState::Outside, "") => {}
            (WikiState::Outside, _) => return Err(DataError::malformed(
                &path,
                number,
                "text outside a document: expected `<doc id=... title=...>` (WikiExtractor format)",
            )),
            (_, "</doc>") => {
                state = WikiState::Outside;
                if !document.is_empty() && !sink(std::mem::take(&mut document))? {
                    return Ok(false);
                }
            }
            (WikiState::Title { .. } | WikiState::Body { .. }, "") => {}
            // The title line repeats the `title` attribute; it is not body text.
            (WikiState::Title { opened_at }, _) => {
                state = WikiState::Body {
                    opened_at: *opened_at,
                }
            }
            (WikiState::Body { .. }, _) => document.push(text.to_owned()),
        }
    }
    match state.opened_at() {
        None => Ok(true),
        Some(opened_at) => Err(DataError::malformed(
            &path,
            opened_at,
            "this document has no closing `</doc>` before the end of the file",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(content: &str, format: Format) -> Result<Vec<Vec<String>>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wiki_00");
        std::fs::write(&path, content).unwrap();
        let mut out = Vec::new();
        read_documents(
            &path,
            format,
            &mut |doc| {
                out.push(doc);
                Ok(true)
            },
            &mut |_| {},
        )?;
        Ok(out)
    }

    #[test]
    fn wikiextractor_records_drop_the_title_line() {
        let text = "<doc id=\"12\" url=\"u\" title=\"Anarchism\">\nAnarchism\n\nFirst para.\nSecond.\n</doc>\n<doc id=\"13\" title=\"Stub\">\nStub\n</doc>\n<doc id=\"14\" title=\"B\">\nB\nOnly.\n</doc>\n";
        assert_eq!(
            docs(text, Format::Auto).unwrap(),
            [vec!["First para.", "Second."], vec!["Only."]]
        );
    }

    #[test]
    fn plain_text_documents_are_separated_by_blank_lines() {
        let text = "a b.\nc d.\n\n\n e f.\n";
        assert_eq!(
            docs(text, Format::Auto).unwrap(),
            [vec!["a b.", "c d."], vec![" e f."]]
        );
    }

    #[test]
    fn malformed_wikiextractor_names_the_line() {
        let unclosed = "<doc id=\"1\" title=\"A\">\nA\ntext\n<doc id=\"2\" title=\"B\">\n";
        let err = docs(unclosed, Format::Wikiextractor)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("wiki_00:4: a new `<doc>` inside the document opened at line 1: expected `</doc>` first"), "{err}");
        let stray = "\nstray text\n";
        let err = docs(stray, Format::Wikiextractor).unwrap_err().to_string();
        assert!(err.contains("wiki_00:2: text outside a document"), "{err}");
        let eof = "<doc id=\"1\" title=\"A\">\nA\ntext\n";
        let err = docs(eof, Format::Wikiextractor).unwrap_err().to_string();
        assert!(
            err.contains("wiki_00:1: this document has no closing"),
            "{err}"
        );
    }
}
