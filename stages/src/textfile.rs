//! Reads text files line by line (plain or gzip-compressed), checking that each line is UTF-8
//! and keeping its line number for error messages; writes whole text files.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{DataError, Result};

/// Writes `text` to `path`; the error names the file.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| DataError::io(format!("writing {}", path.display()), e))
}

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A line-by-line reader over one text file that may be gzip-compressed.
pub struct LineReader {
    path: PathBuf,
    inner: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    line: usize,
}

impl LineReader {
    /// Opens `path`, decompressing it when it starts with the gzip magic bytes.
    pub fn open(path: &Path) -> Result<Self> {
        let context = || format!("opening {}", path.display());
        let mut file = File::open(path).map_err(|e| DataError::io(context(), e))?;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).map_err(|e| DataError::io(context(), e))?;
        let head = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
        let inner: Box<dyn BufRead + Send> = if n == 2 && magic == GZIP_MAGIC {
            Box::new(BufReader::with_capacity(
                1 << 16,
                MultiGzDecoder::new(BufReader::new(head)),
            ))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, head))
        };
        Ok(LineReader {
            path: path.to_owned(),
            inner,
            buf: Vec::new(),
            line: 0,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next line without its `\n` / `\r\n`, with its 1-based number; `None` at the end.
    pub fn next_line(&mut self) -> Option<Result<(usize, &str)>> {
        self.buf.clear();
        match self.inner.read_until(b'\n', &mut self.buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => {
                return Some(Err(DataError::io(
                    format!("reading {} after line {}", self.path.display(), self.line),
                    e,
                )))
            }
        }
        self.line += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Some(match std::str::from_utf8(&self.buf) {
            Ok(text) => Ok((self.line, text)),
            Err(e) => Err(DataError::malformed(
                &self.path,
                self.line,
                format!(
                    "invalid UTF-8 at byte {} of the line: expected UTF-8 text",
                    e.valid_up_to() + 1
                ),
            )),
        })
    }
}

/// Reads until `buf` is full or the reader ends; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Every regular file under `path` (itself if it is a file), recursively, in sorted order,
/// skipping hidden files.
pub fn list_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| DataError::io(format!("listing {}", path.display()), e))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| DataError::io(format!("listing {}", path.display()), e))?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden {
            files.extend(list_files(&entry)?);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(path: &Path) -> Vec<String> {
        let mut reader = LineReader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(line) = reader.next_line() {
            out.push(line.unwrap().1.to_owned());
        }
        out
    }

    #[test]
    fn reads_plain_and_gzip_files_alike() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.txt");
        std::fs::write(&plain, "one\r\ntwo\n\nthree").unwrap();
        let gz = dir.path().join("a.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        enc.write_all(b"one\r\ntwo\n\nthree").unwrap();
        enc.finish().unwrap();
        assert_eq!(lines(&plain), ["one", "two", "", "three"]);
        assert_eq!(lines(&gz), lines(&plain));
    }

    #[test]
    fn invalid_utf8_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"fine\nbro\xffken\n").unwrap();
        let mut reader = LineReader::open(&path).unwrap();
        reader.next_line().unwrap().unwrap();
        let err = reader.next_line().unwrap().unwrap_err().to_string();
        assert!(err.contains("bad.txt:2: invalid UTF-8 at byte 4"), "{err}");
    }

    #[test]
    fn short_and_empty_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(lines(&empty).is_empty());
        let one = dir.path().join("one");
        std::fs::write(&one, b"x").unwrap();
        assert_eq!(lines(&one), ["x"]);
    }
}
