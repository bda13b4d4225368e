//! Streams a URL to a file while hashing it, reporting progress.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use electra_pipe_api::StageContext;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// The SHA-256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        File::open(path).map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` into `path`; returns the SHA-256 of what was received.
pub fn download(url: &str, path: &Path, ctx: &StageContext<'_>) -> Result<String> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .build(),
    );
    let response = agent
        .get(url)
        .call()
        .map_err(|e| DataError::Config(format!("downloading {url}: {e}")))?;
    let total: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut body = response.into_body().into_reader();
    let mut out =
        File::create(path).map_err(|e| DataError::io(format!("creating {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(DataError::Cancelled);
        }
        let n = body
            .read(&mut buf)
            .map_err(|e| DataError::io(format!("downloading {url} after {received} bytes"), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::io(format!("writing {}", path.display()), e))?;
        received += n as u64;
        ctx.progress.update(received, total, "bytes downloaded");
    }
    out.sync_all()
        .map_err(|e| DataError::io(format!("writing {}", path.display()), e))?;
    if let Some(total) = total.filter(|&t| t != received) {
        return Err(DataError::Config(format!(
            "downloading {url}: the server announced {total} bytes but sent {received}"
        )));
    }
    tracing::info!(url, bytes = received, "downloaded");
    Ok(hex(&hasher.finalize()))
}
