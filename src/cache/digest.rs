//! Content digests of data inputs (files or directories under `${data}`), remembered by
//! path and stat so an unchanged 100 MB corpus is not re-hashed on every run.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use super::store::hash_file;
use super::CacheError;

/// Digests data inputs, with a stat-keyed cache in the index and a per-process memo.
pub struct DataDigester {
    stats: sled::Tree,
    memo: Mutex<HashMap<String, String>>,
}

/// The stat fields that must be unchanged for a remembered digest to stand.
fn fingerprint(meta: &fs::Metadata) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime_nsec(),
        meta.ino()
    )
}

impl DataDigester {
    /// A digester backed by the index's stat tree.
    pub fn new(stats: sled::Tree) -> Self {
        DataDigester {
            stats,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// The digest of a file or directory; `Ok(None)` if it does not exist.
    pub fn digest(&self, path: &str) -> Result<Option<String>, CacheError> {
        if let Some(d) = self.memo.lock().expect("memo lock").get(path) {
            return Ok(Some(d.clone()));
        }
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CacheError::io(format!("reading input {path}"), e)),
        };
        let digest = if meta.is_dir() {
            self.dir_digest(Path::new(path))?
        } else {
            self.file_digest(Path::new(path), &meta)?
        };
        self.memo
            .lock()
            .expect("memo lock")
            .insert(path.to_owned(), digest.clone());
        Ok(Some(digest))
    }

    fn file_digest(&self, path: &Path, meta: &fs::Metadata) -> Result<String, CacheError> {
        let key = path.to_string_lossy();
        let print = fingerprint(meta);
        if let Some(saved) = self.stats.get(key.as_bytes())? {
            if let Some((p, digest)) = String::from_utf8_lossy(&saved).split_once(' ') {
                if p == print {
                    return Ok(digest.to_owned());
                }
            }
        }
        let digest = hash_file(path)
            .map_err(|e| CacheError::io(format!("hashing input {}", path.display()), e))?;
        self.stats
            .insert(key.as_bytes(), format!("{print} {digest}").as_bytes())?;
        Ok(digest)
    }

    fn dir_digest(&self, dir: &Path) -> Result<String, CacheError> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)
                .map_err(|e| CacheError::io(format!("listing input {}", d.display()), e))?
            {
                let entry = entry
                    .map_err(|e| CacheError::io(format!("listing input {}", d.display()), e))?;
                let meta = fs::metadata(entry.path()).map_err(|e| {
                    CacheError::io(format!("reading input {}", entry.path().display()), e)
                })?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else {
                    files.push((entry.path(), meta));
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"electra-pipe dir v1\n");
        for (path, meta) in &files {
            let rel = path.strip_prefix(dir).unwrap_or(path).to_string_lossy();
            hasher.update(rel.as_bytes());
            hasher.update(b"\0");
            hasher.update(self.file_digest(path, meta)?.as_bytes());
            hasher.update(b"\n");
        }
        Ok(hasher.finalize().to_hex().to_string())
    }
}
