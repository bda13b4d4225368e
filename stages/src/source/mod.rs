//! The `source` stage kind: a file declared by URL and SHA-256, downloaded once into the
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
//! ```
//!
//! Consumers refer to the file as `@brown/brown.txt`. A download whose checksum differs is
//! discarded and the stage fails, naming the expected and actual digests.

mod fetch;

use std::path::Path;

use electra_pipe_api::{
    parse_params, Metrics, ParamError, Params, StageContext, StageError, StageKind, StagePlan,
};
use serde::Deserialize;
use serde_json::json;

use crate::error::{DataError, Result};

pub use fetch::{download, sha256_file};

/// Params of a `source` stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceParams {
    /// Where to download the file from (`http://` or `https://`).
    pub url: String,
    /// The file's SHA-256, 64 hex digits.
    pub sha256: String,
    /// A local copy to use instead of downloading, if its checksum matches.
    pub local: Option<String>,
    /// The output's name; default: the URL's last path segment.
    pub file: Option<String>,
}

impl SourceParams {
    /// Parses and validates params.
    pub fn parse(params: &Params) -> Result<Self, ParamError> {
        let mut parsed: SourceParams = parse_params(params)?;
        if !(parsed.url.starts_with("http://") || parsed.url.starts_with("https://")) {
            return Err(ParamError::new(
                "url",
                format!(
                    "expected an http:// or https:// URL, found `{}`",
                    parsed.url
                ),
            ));
        }
        if parsed.sha256.len() != 64 || !parsed.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ParamError::new(
                "sha256",
                format!("expected 64 hexadecimal digits, found `{}`", parsed.sha256),
            ));
        }
        parsed.sha256.make_ascii_lowercase();
        let name = parsed.file_name();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(ParamError::new(
                "file",
                format!("expected a plain file name for the output, found `{name}` (set `file:`)"),
            ));
        }
        Ok(parsed)
    }

    /// The output's file name.
    pub fn file_name(&self) -> String {
        match &self.file {
            Some(file) => file.clone(),
            None => {
                let path = self.url.split(['?', '#']).next().unwrap_or_default();
                path.rsplit('/').next().unwrap_or_default().to_owned()
            }
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
        let params = SourceParams::parse(params)?;
        // The checksum pins the content, so the local copy is not an input of the key.
        Ok(StagePlan {
            inputs: Vec::new(),
            outputs: vec![params.file_name()],
            ..StagePlan::default()
        })
    }

    fn run(&self, params: &Params, ctx: &StageContext<'_>) -> Result<Metrics, StageError> {
        let params = SourceParams::parse(params)?;
        Ok(fetch_source(&params, ctx)?)
    }
}

/// Takes the local copy if it matches, otherwise downloads; verifies the checksum either way.
fn fetch_source(params: &SourceParams, ctx: &StageContext<'_>) -> Result<Metrics> {
    let target = ctx.out_dir.join(params.file_name());
    if let Some(local) = &params.local {
        let local = Path::new(local);
        if local.is_file() {
            let actual = sha256_file(local)?;
            if actual == params.sha256 {
                std::fs::copy(local, &target).map_err(|e| {
                    DataError::io(
                        format!("copying {} to {}", local.display(), target.display()),
                        e,
                    )
                })?;
                tracing::info!(local = %local.display(), "local copy has the expected sha256; not downloading");
                return Ok(Metrics::from([
                    ("downloaded".to_owned(), json!(false)),
                    ("bytes".to_owned(), json!(file_len(&target)?)),
                ]));
            }
            tracing::warn!(local = %local.display(), expected = %params.sha256, actual = %actual, "local copy has another sha256; downloading");
        }
    }
    let partial = ctx.work_dir.join("download.partial");
    let actual = download(&params.url, &partial, ctx)?;
    if actual != params.sha256 {
        let _ = std::fs::remove_file(&partial);
        return Err(DataError::Config(format!(
            "checksum mismatch for {}: expected sha256 {}, got {}; the download was discarded",
            params.url, params.sha256, actual
        )));
    }
    std::fs::rename(&partial, &target)
        .or_else(|_| std::fs::copy(&partial, &target).map(|_| ()))
        .map_err(|e| DataError::io(format!("moving the download to {}", target.display()), e))?;
    Ok(Metrics::from([
        ("downloaded".to_owned(), json!(true)),
        ("bytes".to_owned(), json!(file_len(&target)?)),
    ]))
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?
        .len())
}
