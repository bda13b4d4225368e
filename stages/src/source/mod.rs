//! The `source` stage kind: files declared by URL and SHA-256, downloaded once into the
//! content-addressed cache (or taken from a local copy that has the right checksum).
//!
//! ```yaml
//! brown:
//!   kind: source
//!   params:
//!     url: https://example.org/corpora/brown_detagged.txt
//!     sha256: 607ad18fc70508d058028cabaeb94436e6207b09a77cb286d8b82540633fbb7f
//!     local: ${data}/corpus/brown/brown_detagged.txt   # optional: used if its checksum matches
//!     file: brown.txt                                   # output name; default: from the URL
//!
//! checkpoint:                     # or a directory of files, each by URL and SHA-256
//!   kind: source
//!   params:
//!     dir: electra-small          # the output directory's name
//!     files:
//!       config.json: {url: https://example.org/electra-small/config.json, sha256: ...}
//!       model.safetensors: {url: https://example.org/electra-small/model.safetensors, sha256: ...}
//!     local: /models/electra-small  # optional: a directory; each file used if its checksum matches
//! ```
//!
//! Consumers refer to the file as `@brown/brown.txt`, to the directory as
//! `@checkpoint/electra-small` (and to a file in it as `@checkpoint/electra-small/config.json`).
//! A download whose checksum differs is discarded and the stage fails, naming the file and the
//! expected and actual digests; a directory is recorded only when every file in it verified.

mod fetch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;
use serde_json::json;

use crate::error::{DataError, Result};

pub use fetch::{download, sha256_file};

/// One file to fetch: where from, and the digest it must have.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteFile {
    /// Where to download the file from (`http://` or `https://`).
    pub url: String,
    /// The file's SHA-256, 64 hex digits.
    pub sha256: String,
}

/// Params of a `source` stage: `url` + `sha256` (one file), or `files` + `dir` (a directory).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceParams {
    /// Where to download the one file from.
    pub url: Option<String>,
    /// The one file's SHA-256.
    pub sha256: Option<String>,
    /// A local copy to use instead of downloading, if its checksum matches (with `files`: a
    /// directory holding copies under the same names).
    pub local: Option<String>,
    /// The one file's output name; default: the URL's last path segment.
    pub file: Option<String>,
    /// A directory's files by name, instead of `url` + `sha256`.
    pub files: Option<BTreeMap<String, RemoteFile>>,
    /// The directory's output name (with `files`).
    pub dir: Option<String>,
}

/// What a `source` stage fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// One file, the stage's output `name`.
    File {
        /// The output's name.
        name: String,
        /// Where from, and its digest.
        remote: RemoteFile,
    },
    /// A directory `name` of files.
    Dir {
        /// The output's name.
        name: String,
        /// Its files by name.
        files: BTreeMap<String, RemoteFile>,
    },
}

/// The `url` of the file at `field` is http(s) and its `sha256` is 64 hex digits (lower-cased).
fn check_remote(remote: &mut RemoteFile, field: &str) -> Result<(), ParamError> {
    if !(remote.url.starts_with("http://") || remote.url.starts_with("https://")) {
        return Err(ParamError::new(
            format!("{field}url"),
            format!(
                "expected an http:// or https:// URL, found `{}`",
                remote.url
            ),
        ));
    }
    if remote.sha256.len() != 64 || !remote.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ParamError::new(
            format!("{field}sha256"),
            format!(
                "expected 64 hexadecimal digits, found `{}`: the SHA-256 of the file you trust, from `sha256sum` on a copy of it (for a file Hugging Face keeps in Git LFS, such as weights, its page on the Hub lists the SHA256); electra-pipe never fetches a file whose digest it does not know",
                remote.sha256
            ),
        ));
    }
    remote.sha256.make_ascii_lowercase();
    Ok(())
}

/// `name` is a plain file name.
fn check_name(name: &str, field: &str, hint: &str) -> Result<(), ParamError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(ParamError::new(
            field,
            format!("expected a plain file name for the output, found `{name}`{hint}"),
        ));
    }
    Ok(())
}

impl SourceParams {
    /// Parses and validates params into what the stage fetches and its local copy.
    pub fn parse(params: &Params) -> Result<(Declared, Option<PathBuf>), ParamError> {
        let parsed: SourceParams = parse_params(params)?;
        let local = parsed.local.as_ref().map(PathBuf::from);
        Ok((parsed.declared()?, local))
    }

    fn declared(self) -> Result<Declared, ParamError> {
        match self {
            SourceParams {
                url: Some(url),
                sha256: Some(sha256),
                files: None,
                dir: None,
                file,
                ..
            } => {
                let mut remote = RemoteFile { url, sha256 };
                check_remote(&mut remote, "")?;
                let name = file.unwrap_or_else(|| {
                    let path = remote.url.split(['?', '#']).next().unwrap_or_default();
                    path.rsplit('/').next().unwrap_or_default().to_owned()
                });
                check_name(&name, "file", " (set `file:`)")?;
                Ok(Declared::File { name, remote })
            }
            SourceParams {
                url: None,
                sha256: None,
                file: None,
                files: Some(mut files),
                dir: Some(name),
                ..
            } => {
                check_name(&name, "dir", "")?;
                if files.is_empty() {
                    return Err(ParamError::new("files", "expected at least one file"));
                }
                for (file, remote) in &mut files {
                    check_name(file, &format!("files.{file}"), "")?;
                    check_remote(remote, &format!("files.{file}."))?;
                }
                Ok(Declared::Dir { name, files })
            }
            SourceParams {
                files: Some(_),
                dir: None,
                url: None,
                sha256: None,
                file: None,
                ..
            } => Err(ParamError::new(
                "dir",
                "expected the output directory's name with `files`",
            )),
            SourceParams {
                url: None,
                files: None,
                ..
            } => Err(ParamError::new(
                "url",
                "expected `url` + `sha256` (one file) or `files` + `dir` (a directory of files)",
            )),
            SourceParams {
                sha256: None,
                files: None,
                ..
            } => Err(ParamError::new(
                "sha256",
                "expected the file's SHA-256 with `url`",
            )),
            _ => Err(ParamError::new(
                "files",
                "expected either `url` + `sha256` (+ `file`) or `files` + `dir`, not both",
            )),
        }
    }
}

impl Declared {
    /// The stage's one output: the file's or the directory's name.
    pub fn output(&self) -> &str {
        match self {
            Declared::File { name, .. } | Declared::Dir { name, .. } => name,
        }
    }
}

/// The `source` stage kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Source;

impl StageKind for Source {
    fn name(&self) -> &'static str {
        "source"
    }

    fn version(&self) -> u32 {
        1
    }

    fn summary(&self) -> &'static str {
        "a file declared by url + sha256: downloaded once (or taken from a matching local copy)"
    }

    fn plan(&self, params: &Params) -> Result<StagePlan, ParamError> {
        let (declared, _) = SourceParams::parse(params)?;
        // The checksums pin the content, so the local copy is not an input of the key.
        Ok(StagePlan {
            inputs: Vec::new(),
            outputs: vec![declared.output().to_owned()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let (declared, local) = SourceParams::parse(params)?;
        Ok(fetch_source(&declared, local.as_deref(), ctx)?)
    }
}

/// Fetches what `declared` names into `ctx.out_dir`, each file from its local copy (`local`,
/// a file, or a directory for [`Declared::Dir`]) if that matches, else by download.
fn fetch_source(
    declared: &Declared,
    local: Option<&Path>,
    ctx: &StageContext<'_>,
) -> Result<Metrics> {
    let mut downloaded = 0;
    let mut bytes = 0;
    let mut fetch = |remote: &RemoteFile, local: Option<PathBuf>, target: &Path| {
        downloaded += usize::from(fetch_file(remote, local.as_deref(), target, ctx)?);
        bytes += file_len(target)?;
        Ok::<_, DataError>(())
    };
    match declared {
        Declared::File { name, remote } => {
            fetch(remote, local.map(Path::to_owned), &ctx.out_dir.join(name))?;
        }
        Declared::Dir { name, files } => {
            let dir = ctx.out_dir.join(name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
            for (file, remote) in files {
                fetch(remote, local.map(|l| l.join(file)), &dir.join(file))?;
            }
        }
    }
    Ok(Metrics::from([
        ("downloaded".to_owned(), json!(downloaded)),
        ("bytes".to_owned(), json!(bytes)),
    ]))
}

/// Puts `remote`'s content at `target`: the local copy if its checksum matches, otherwise a
/// verified download. Returns whether it downloaded.
fn fetch_file(
    remote: &RemoteFile,
    local: Option<&Path>,
    target: &Path,
    ctx: &StageContext<'_>,
) -> Result<bool> {
    if let Some(local) = local.filter(|l| l.is_file()) {
        let actual = sha256_file(local)?;
        if actual == remote.sha256 {
            std::fs::copy(local, target).map_err(|e| {
                DataError::io(
                    format!("copying {} to {}", local.display(), target.display()),
                    e,
                )
            })?;
            tracing::info!(local = %local.display(), "local copy has the expected sha256; not downloading");
            return Ok(false);
        }
        tracing::warn!(local = %local.display(), expected = %remote.sha256, actual = %actual, "local copy has another sha256; downloading");
    }
    let partial = ctx.work_dir.join("download.partial");
    let actual = download(&remote.url, &partial, ctx)?;
    if actual != remote.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(DataError::Config(format!(
            "checksum mismatch for {}: expected sha256 {}, got {}; the download was discarded",
            remote.url, remote.sha256, actual
        )));
    }
    std::fs::rename(&partial, target)
        .or_else(|_| std::fs::copy(&partial, target).map(|_| ()))
        .map_err(|e| DataError::io(format!("moving the download to {}", target.display()), e))?;
    Ok(true)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?
        .len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DIGEST: &str = "607ad18fc70508d058028cabaeb94436e6207b09a77cb286d8b82540633fbb7f";

    fn parse(params: serde_json::Value) -> Result<Declared, ParamError> {
        SourceParams::parse(&params).map(|(declared, _)| declared)
    }

    #[test]
    fn one_file_or_a_directory_of_files_and_never_both() {
        let file = parse(json!({"url": "https://x.org/a/b.txt?raw=1", "sha256": DIGEST})).unwrap();
        assert_eq!(file.output(), "b.txt");
        let remote = json!({"url": "https://x.org/config.json", "sha256": DIGEST.to_uppercase()});
        let dir = parse(json!({"dir": "ckpt", "files": {"config.json": remote}})).unwrap();
        let Declared::Dir { name, files } = &dir else {
            panic!("{dir:?}")
        };
        assert_eq!(
            (name.as_str(), files["config.json"].sha256.as_str()),
            ("ckpt", DIGEST)
        );
        let error = |params| parse(params).unwrap_err().path;
        assert_eq!(error(json!({"files": {"config.json": remote}})), "dir");
        assert_eq!(error(json!({"dir": "d", "files": {}})), "files");
        assert_eq!(
            error(
                json!({"url": "https://x.org/a", "sha256": DIGEST, "dir": "d", "files": {"a": remote}})
            ),
            "files"
        );
        assert_eq!(
            error(json!({"dir": "d", "files": {"a/b": remote}})),
            "files.a/b"
        );
        let placeholder = json!({"url": "https://x.org/w", "sha256": "FILL_IN"});
        let bad = parse(json!({"dir": "d", "files": {"w": placeholder}})).unwrap_err();
        assert_eq!(bad.path, "files.w.sha256");
        assert!(bad.message.contains("sha256sum"), "{bad}");
        assert_eq!(
            error(json!({"url": "ftp://x.org/a", "sha256": DIGEST})),
            "url"
        );
        assert_eq!(error(json!({"url": "https://x.org/a"})), "sha256");
    }
}
