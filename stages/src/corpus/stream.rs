//! The corpus stage's output, a normalised document stream: one sentence per line and a
//! blank line after every document (the input format of BERT's and ELECTRA's data builders).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::textfile::LineReader;

/// Counts describing a document stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CorpusStats {
    /// Documents written.
    pub documents: u64,
    /// Sentences (lines) written.
    pub sentences: u64,
    /// Bytes of text written, newlines included.
    pub bytes: u64,
    /// Whitespace-separated words written.
    pub words: u64,
}

/// Writes documents, stopping at `max_docs` documents or `max_bytes` bytes (whole documents
/// only: a document that would cross the byte limit is not written).
pub struct DocumentWriter {
    path: PathBuf,
    out: BufWriter<File>,
    stats: CorpusStats,
    max_docs: Option<u64>,
    max_bytes: Option<u64>,
    full: bool,
}

impl DocumentWriter {
    /// Creates `path` with the given limits.
    pub fn create(path: &Path, max_docs: Option<u64>, max_bytes: Option<u64>) -> Result<Self> {
        let file = File::create(path)
            .map_err(|e| DataError::io(format!("creating {}", path.display()), e))?;
        Ok(DocumentWriter {
            path: path.to_owned(),
            out: BufWriter::with_capacity(1 << 20, file),
            stats: CorpusStats::default(),
            max_docs,
            max_bytes,
            full: false,
        })
    }

    /// Writes one document of sentences; returns `false` once a limit is reached (the
    /// document is then not written). An empty document is skipped.
    pub fn write(&mut self, sentences: &[String]) -> Result<bool> {
        if sentences.is_empty() {
            return Ok(!self.full);
        }
        let bytes: u64 = sentences.iter().map(|s| s.len() as u64 + 1).sum::<u64>() + 1;
        let over_docs = self.max_docs.is_some_and(|max| self.stats.documents >= max);
        let over_bytes = self
            .max_bytes
            .is_some_and(|max| self.stats.bytes + bytes > max);
        if over_docs || over_bytes {
            self.full = true;
            return Ok(false);
        }
        let context = || format!("writing {}", self.path.display());
        for sentence in sentences {
            self.out
                .write_all(sentence.as_bytes())
                .and_then(|()| self.out.write_all(b"\n"))
                .map_err(|e| DataError::io(context(), e))?;
            self.stats.words += sentence.split_whitespace().count() as u64;
        }
        self.out
            .write_all(b"\n")
            .map_err(|e| DataError::io(context(), e))?;
        self.stats.documents += 1;
        self.stats.sentences += sentences.len() as u64;
        self.stats.bytes += bytes;
        Ok(true)
    }

    /// Whether a limit stopped the stream.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// Flushes the file and returns the counts.
    pub fn finish(mut self) -> Result<CorpusStats> {
        self.out
            .flush()
            .map_err(|e| DataError::io(format!("writing {}", self.path.display()), e))?;
        Ok(self.stats)
    }
}

/// Reads a document stream back, one document (its sentences) at a time.
pub struct DocumentReader {
    lines: LineReader,
    done: bool,
    bytes: u64,
}

impl DocumentReader {
    /// Opens a stream written by [`DocumentWriter`] (or any text in the same layout).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(DocumentReader {
            lines: LineReader::open(path)?,
            done: false,
            bytes: 0,
        })
    }

    /// Bytes consumed so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next document with at least one sentence; `None` at the end.
    pub fn next_document(&mut self) -> Option<Result<Vec<String>>> {
        if self.done {
            return None;
        }
        let mut document = Vec::new();
        loop {
            match self.lines.next_line() {
                None => {
                    self.done = true;
                    return (!document.is_empty()).then_some(Ok(document));
                }
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok((_, line))) => {
                    self.bytes += line.len() as u64 + 1;
                    if !line.trim().is_empty() {
                        document.push(line.to_owned());
                    } else if !document.is_empty() {
                        return Some(Ok(document));
                    }
                }
            }
        }
    }
}

impl Iterator for DocumentReader {
    type Item = Result<Vec<String>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(sentences: &[&str]) -> Vec<String> {
        sentences.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn round_trips_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.txt");
        let mut writer = DocumentWriter::create(&path, None, None).unwrap();
        assert!(writer.write(&doc(&["A b.", "C d e."])).unwrap());
        assert!(writer.write(&[]).unwrap());
        assert!(writer.write(&doc(&["F."])).unwrap());
        let stats = writer.finish().unwrap();
        assert_eq!(
            stats,
            CorpusStats {
                documents: 2,
                sentences: 3,
                bytes: 17,
                words: 6
            }
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "A b.\nC d e.\n\nF.\n\n"
        );
        let docs: Vec<_> = DocumentReader::open(&path)
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(docs, [doc(&["A b.", "C d e."]), doc(&["F."])]);
    }

    #[test]
    fn limits_keep_whole_documents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corpus.txt");
        let mut by_bytes = DocumentWriter::create(&path, None, Some(12)).unwrap();
        assert!(by_bytes.write(&doc(&["A b.", "C."])).unwrap());
        assert!(!by_bytes.write(&doc(&["D e f."])).unwrap());
        assert!(by_bytes.is_full());
        assert_eq!(by_bytes.finish().unwrap().documents, 1);
        let mut by_docs = DocumentWriter::create(&path, Some(1), None).unwrap();
        assert!(by_docs.write(&doc(&["A."])).unwrap());
        assert!(!by_docs.write(&doc(&["B."])).unwrap());
    }
}
