//! Reading the Brown corpus's tagged text files: one sentence per non-blank line, tokens
//! `word/tag` separated by white space, blank lines between sentences. A file's name is
//! `c<genre><number>` (`ca01`: genre `a`, press reportage).

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::tags;
use super::TaggedSentence;
use crate::error::{DataError, Result};
use crate::textfile::list_files;

/// Whether `name` (a file name, no directory) is one of the Brown corpus's text files:
/// `c`, a genre letter `a`–`r`, two digits.
pub fn is_text_file(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 4
        && b[0] == b'c'
        && (b'a'..=b'r').contains(&b[1])
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
}

/// Parses one text file's `bytes`; `path` names it in errors (`file:line`).
pub fn parse_file(path: &Path, doc: &str, bytes: &[u8]) -> Result<Vec<TaggedSentence>> {
    let genre = doc[1..2].to_owned();
    let mut sentences = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        let text = std::str::from_utf8(line).map_err(|e| {
            DataError::malformed(
                path,
                number,
                format!(
                    "invalid UTF-8 at byte {} of the line: expected UTF-8 text",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let mut sentence = TaggedSentence {
            doc: doc.to_owned(),
            genre: genre.clone(),
            line: number,
            words: Vec::new(),
            brown: Vec::new(),
            universal: Vec::new(),
        };
        for token in text.split_whitespace() {
            let (word, tag) = token.rsplit_once('/').ok_or_else(|| {
                DataError::malformed(
                    path,
                    number,
                    format!("token `{token}` has no tag: expected word/tag"),
                )
            })?;
            if word.is_empty() {
                return Err(DataError::malformed(
                    path,
                    number,
                    format!("token `{token}` has no word: expected word/tag"),
                ));
            }
            let parsed =
                tags::parse(tag).map_err(|message| DataError::malformed(path, number, message))?;
            sentence.words.push(word.to_owned());
            sentence.brown.push(parsed.brown);
            sentence.universal.push(parsed.universal.to_owned());
        }
        sentences.push(sentence);
    }
    Ok(sentences)
}

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `path` is a tar archive (`.tar`, `.tgz`, `.tar.gz`) by its name.
fn is_archive(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".tar") || name.ends_with(".tgz") || name.ends_with(".tar.gz")
}

/// What was read: the documents (name, sentences) in name order, and how many other files
/// were passed over.
pub struct Documents {
    /// `(document name, its sentences)`, sorted by name.
    pub documents: Vec<(String, Vec<TaggedSentence>)>,
    /// Files that are not Brown text files (README, cats.txt, ...), skipped.
    pub skipped: Vec<PathBuf>,
}

/// Reads every Brown text file in `inputs`: tar archives (gzip-compressed or not; their
/// members), directories (recursively) and files. Two documents of one name are an error.
pub fn read_inputs(inputs: &[String]) -> Result<Documents> {
    let mut read = Documents {
        documents: Vec::new(),
        skipped: Vec::new(),
    };
    for input in inputs {
        for path in list_files(Path::new(input))? {
            if is_archive(&path) {
                read_archive(&path, &mut read)?;
            } else {
                let bytes = std::fs::read(&path)
                    .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
                add(&path, bytes, &mut read)?;
            }
        }
    }
    read.documents.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = read.documents.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(DataError::Config(format!(
            "the inputs ({}) hold the Brown document {} twice: expected each document once",
            inputs.join(", "),
            pair[0].0
        )));
    }
    Ok(read)
}

/// Adds the file at `path` (its content `bytes`) if it is a Brown text file.
fn add(path: &Path, bytes: Vec<u8>, read: &mut Documents) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !is_text_file(name) {
        read.skipped.push(path.to_owned());
        return Ok(());
    }
    let sentences = parse_file(path, name, &bytes)?;
    read.documents.push((name.to_owned(), sentences));
    Ok(())
}

/// Reads the members of a tar archive; a member's errors name it as `archive/member:line`.
fn read_archive(path: &Path, read: &mut Documents) -> Result<()> {
    let context = || format!("reading the archive {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| DataError::io(context(), e))?;
    let reader: Box<dyn Read> = if bytes.starts_with(&GZIP_MAGIC) {
        Box::new(GzDecoder::new(bytes.as_slice()))
    } else {
        Box::new(bytes.as_slice())
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| DataError::io(context(), e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| DataError::io(context(), e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry
            .path()
            .map_err(|e| DataError::io(context(), e))?
            .into_owned();
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| DataError::io(format!("{}: {}", context(), member.display()), e))?;
        add(&path.join(&member), content, read)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sentences_with_their_lines() {
        let text = b"\n\n\tThe/at jury/nn said/vbd ./.\n\n\n\tIt's/pps+bez 1-1/2/cd ./.\n";
        let sentences = parse_file(Path::new("ca01"), "ca01", text).unwrap();
        assert_eq!(sentences.len(), 2);
        assert_eq!(sentences[0].line, 3);
        assert_eq!(sentences[0].universal, ["DET", "NOUN", "VERB", "."]);
        assert_eq!(sentences[1].words, ["It's", "1-1/2", "."]);
        assert_eq!(sentences[1].brown, ["pps+bez", "cd", "."]);
        assert_eq!(sentences[1].genre, "a");
    }

    #[test]
    fn errors_name_the_line() {
        let cases: [(&[u8], &str); 4] = [
            (b"\tThe/at jury\n", "ca01:1: token `jury` has no tag"),
            (b"\n\tThe/at jury/qq\n", "ca01:2: unknown tag `qq`"),
            (b"\t/at\n", "ca01:1: token `/at` has no word"),
            (b"\tThe/at \xff/nn\n", "ca01:1: invalid UTF-8"),
        ];
        for (text, expected) in cases {
            let error = parse_file(Path::new("ca01"), "ca01", text).unwrap_err();
            assert!(error.to_string().starts_with(expected), "{error}");
        }
    }

    #[test]
    fn text_file_names() {
        assert!(is_text_file("ca01") && is_text_file("cr09"));
        assert!(!is_text_file("cats.txt") && !is_text_file("cs01") && !is_text_file("README"));
    }
}
