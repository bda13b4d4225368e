//! The content-addressed object store.
//!
//! A file output is a blob named by the BLAKE3 digest of its bytes, under
//! `objects/<2 hex>/<digest>`. A directory output is a *tree*: a manifest blob listing each
//! file's relative path, digest and size; the tree's digest is the manifest's. Consumers read
//! outputs through `outputs/<digest>/<name>`, hard links to the blobs that keep the output's
//! file name. Blobs are written to a temporary name, fsynced and renamed into place, and
//! verified against their digest whenever a cached result is used.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CacheError;

/// Whether an object is one file or a directory tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A single file.
    File,
    /// A directory, stored as a manifest of files.
    Tree,
}

/// A stored output: what it is, its digest and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// File or tree.
    pub kind: ObjectKind,
    /// BLAKE3 hex digest (of the bytes, or of the tree manifest).
    pub digest: String,
    /// Total bytes of content.
    pub bytes: u64,
}

/// One file in a tree manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Path relative to the tree's root, `/`-separated.
    pub path: String,
    /// The file's blob digest.
    pub digest: String,
    /// Its size.
    pub bytes: u64,
    /// Whether it is executable.
    pub executable: bool,
}

/// A directory output's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeManifest {
    /// Files, sorted by path.
    pub files: Vec<TreeEntry>,
    /// Directories that hold no files, sorted.
    pub empty_dirs: Vec<String>,
}

/// A stored object that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob is gone.
    Missing {
        /// The blob's digest.
        digest: String,
    },
    /// A blob's bytes no longer hash to its name.
    Corrupt {
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        actual: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing { digest } => write!(f, "object {} is missing", short(digest)),
            Problem::Corrupt { expected, actual } => {
                write!(
                    f,
                    "object {} is corrupt (its content hashes to {})",
                    short(expected),
                    short(actual)
                )
            }
        }
    }
}

/// The first 12 hex digits of a digest, for messages.
pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Hashes a file's bytes.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The object store rooted at a cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

fn io_err(context: String) -> impl FnOnce(io::Error) -> CacheError {
    move |e| CacheError::io(context, e)
}

impl Store {
    /// The store under `root` (directories are created as needed).
    pub fn new(root: &Path) -> Self {
        Store {
            root: root.to_owned(),
        }
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("objects").join(&digest[..2]).join(digest)
    }

    /// Where an output is readable under its name.
    pub fn output_path(&self, object: &ObjectRef, name: &str) -> PathBuf {
        let base = Path::new(name.trim_end_matches('/'))
            .file_name()
            .map_or_else(|| PathBuf::from("output"), PathBuf::from);
        self.root.join("outputs").join(&object.digest).join(base)
    }

    fn temp_path(&self) -> PathBuf {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()))
    }

    /// Moves the file or directory at `src` into the store as output `name`, returning its
    /// object. `src` is consumed. Blobs are fsynced before they are renamed into place.
    pub fn import(&self, src: &Path, name: &str) -> Result<ObjectRef, CacheError> {
        let meta = fs::symlink_metadata(src)
            .map_err(io_err(format!("reading output {}", src.display())))?;
        let object = if meta.is_dir() {
            let manifest = self.import_tree(src)?;
            remove_any(src).map_err(io_err(format!("removing {}", src.display())))?;
            let bytes = manifest.files.iter().map(|f| f.bytes).sum();
            let text = serde_json::to_vec(&manifest)
                .map_err(|e| CacheError::io("encoding a tree manifest", io::Error::other(e)))?;
            let temp = self.temp_path();
            write_synced(&temp, &text).map_err(io_err(format!("writing {}", temp.display())))?;
            let digest = blake3::hash(&text).to_hex().to_string();
            self.publish_blob(&temp, &digest)?;
            ObjectRef {
                kind: ObjectKind::Tree,
                digest,
                bytes,
            }
        } else if meta.is_file() {
            let digest = hash_file(src).map_err(io_err(format!("hashing {}", src.display())))?;
            File::open(src)
                .and_then(|f| f.sync_all())
                .map_err(io_err(format!("syncing {}", src.display())))?;
            self.publish_blob(src, &digest)?;
            ObjectRef {
                kind: ObjectKind::File,
                digest,
                bytes: meta.len(),
            }
        } else {
            return Err(CacheError::BadOutput(format!(
                "output `{name}` is neither a regular file nor a directory (symbolic links are not stored)"
            )));
        };
        self.materialize(&object, name)?;
        Ok(object)
    }

    fn import_tree(&self, dir: &Path) -> Result<TreeManifest, CacheError> {
        let mut manifest = TreeManifest {
            files: Vec::new(),
            empty_dirs: Vec::new(),
        };
        let mut stack = vec![(dir.to_owned(), String::new())];
        while let Some((path, rel)) = stack.pop() {
            let mut entries: Vec<fs::DirEntry> = fs::read_dir(&path)
                .and_then(|it| it.collect())
                .map_err(io_err(format!("reading directory {}", path.display())))?;
            if entries.is_empty() && !rel.is_empty() {
                manifest.empty_dirs.push(rel.clone());
            }
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let meta = fs::symlink_metadata(entry.path())
                    .map_err(io_err(format!("reading {}", entry.path().display())))?;
                if meta.is_dir() {
                    stack.push((entry.path(), child_rel));
                } else if meta.is_file() {
                    let digest = hash_file(&entry.path())
                        .map_err(io_err(format!("hashing {}", entry.path().display())))?;
                    File::open(entry.path())
                        .and_then(|f| f.sync_all())
                        .map_err(io_err(format!("syncing {}", entry.path().display())))?;
                    self.publish_blob(&entry.path(), &digest)?;
                    let executable = meta.permissions().mode() & 0o111 != 0;
                    manifest.files.push(TreeEntry {
                        path: child_rel,
                        digest,
                        bytes: meta.len(),
                        executable,
                    });
                } else {
                    return Err(CacheError::BadOutput(format!(
                        "`{child_rel}` in an output directory is neither a file nor a directory (symbolic links are not stored)"
                    )));
                }
            }
        }
        manifest.files.sort_by(|a, b| a.path.cmp(&b.path));
        manifest.empty_dirs.sort();
        Ok(manifest)
    }

    /// Renames a synced file into the store as blob `digest` (or drops it if already there).
    fn publish_blob(&self, src: &Path, digest: &str) -> Result<(), CacheError> {
        let dest = self.blob_path(digest);
        if dest.exists() {
            fs::remove_file(src).map_err(io_err(format!("removing {}", src.display())))?;
            return Ok(());
        }
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        fs::set_permissions(src, fs::Permissions::from_mode(0o444))
            .map_err(io_err(format!("protecting {}", src.display())))?;
        fs::rename(src, &dest).map_err(io_err(format!("storing {}", dest.display())))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(format!("syncing {}", dir.display())))
    }

    /// Makes `outputs/<digest>/<name>` exist as hard links to the blobs; returns its path.
    pub fn materialize(&self, object: &ObjectRef, name: &str) -> Result<PathBuf, CacheError> {
        let path = self.output_path(object, name);
        if self.materialized_ok(object, &path) {
            return Ok(path);
        }
        let temp = self.temp_path();
        match object.kind {
            ObjectKind::File => {
                fs::hard_link(self.blob_path(&object.digest), &temp)
                    .map_err(io_err(format!("linking {}", temp.display())))?;
            }
            ObjectKind::Tree => {
                let manifest = self.manifest(&object.digest)?;
                for dir in &manifest.empty_dirs {
                    fs::create_dir_all(temp.join(dir))
                        .map_err(io_err(format!("creating {}", temp.display())))?;
                }
                fs::create_dir_all(&temp)
                    .map_err(io_err(format!("creating {}", temp.display())))?;
                for file in &manifest.files {
                    let dest = temp.join(&file.path);
                    if let Some(parent) = dest.parent() {
                        fs::create_dir_all(parent)
                            .map_err(io_err(format!("creating {}", parent.display())))?;
                    }
                    fs::hard_link(self.blob_path(&file.digest), &dest)
                        .map_err(io_err(format!("linking {}", dest.display())))?;
                }
            }
        }
        let parent = path.parent().expect("output paths have a parent");
        fs::create_dir_all(parent).map_err(io_err(format!("creating {}", parent.display())))?;
        remove_any(&path).map_err(io_err(format!("replacing {}", path.display())))?;
        fs::rename(&temp, &path).map_err(io_err(format!("placing {}", path.display())))?;
        Ok(path)
    }

    /// True when the materialized output links to exactly the object's blobs.
    fn materialized_ok(&self, object: &ObjectRef, path: &Path) -> bool {
        let same = |link: &Path, digest: &str| match (
            fs::metadata(link),
            fs::metadata(self.blob_path(digest)),
        ) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        match object.kind {
            ObjectKind::File => same(path, &object.digest),
            ObjectKind::Tree => match self.manifest(&object.digest) {
                Ok(manifest) => manifest
                    .files
                    .iter()
                    .all(|f| same(&path.join(&f.path), &f.digest)),
                Err(_) => false,
            },
        }
    }

    /// Reads a tree's manifest.
    pub fn manifest(&self, digest: &str) -> Result<TreeManifest, CacheError> {
        let path = self.blob_path(digest);
        let text =
            fs::read(&path).map_err(io_err(format!("reading tree manifest {}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| {
            CacheError::io(
                format!("parsing tree manifest {}", path.display()),
                io::Error::other(e),
            )
        })
    }

    /// Checks a blob's bytes against its digest.
    pub fn verify_blob(&self, digest: &str) -> Result<(), Problem> {
        match hash_file(&self.blob_path(digest)) {
            Ok(actual) if actual == digest => Ok(()),
            Ok(actual) => Err(Problem::Corrupt {
                expected: digest.to_owned(),
                actual,
            }),
            Err(_) => Err(Problem::Missing {
                digest: digest.to_owned(),
            }),
        }
    }

    /// Checks every blob of an object (a tree's manifest and files).
    pub fn verify(&self, object: &ObjectRef) -> Result<(), Problem> {
        self.verify_blob(&object.digest)?;
        if object.kind == ObjectKind::Tree {
            let manifest = self
                .manifest(&object.digest)
                .map_err(|_| Problem::Missing {
                    digest: object.digest.clone(),
                })?;
            for file in &manifest.files {
                self.verify_blob(&file.digest)?;
            }
        }
        Ok(())
    }

    /// Moves a bad blob aside (to `quarantine/`) so it is never served again.
    pub fn quarantine(&self, digest: &str) {
        let blob = self.blob_path(digest);
        let dir = self.root.join("quarantine");
        let _ = fs::create_dir_all(&dir);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let _ = fs::rename(&blob, dir.join(format!("{digest}.{stamp}")));
        let _ = remove_any(&self.root.join("outputs").join(digest));
    }

    /// Every blob digest in the store.
    pub fn all_blobs(&self) -> Result<Vec<String>, CacheError> {
        let mut out = Vec::new();
        let objects = self.root.join("objects");
        let Ok(shards) = fs::read_dir(&objects) else {
            return Ok(out);
        };
        for shard in shards {
            let shard = shard.map_err(io_err(format!("listing {}", objects.display())))?;
            for blob in fs::read_dir(shard.path())
                .map_err(io_err(format!("listing {}", shard.path().display())))?
            {
                let blob = blob.map_err(io_err(format!("listing {}", shard.path().display())))?;
                out.push(blob.file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes a blob and its materialized outputs.
    pub fn remove(&self, digest: &str) -> Result<u64, CacheError> {
        let blob = self.blob_path(digest);
        let bytes = fs::metadata(&blob).map_or(0, |m| m.len());
        remove_any(&blob).map_err(io_err(format!("removing {}", blob.display())))?;
        let outputs = self.root.join("outputs").join(digest);
        remove_any(&outputs).map_err(io_err(format!("removing {}", outputs.display())))?;
        Ok(bytes)
    }
}

/// Removes a file or directory tree if present.
pub fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let store = Store::new(dir.path());
        (dir, store)
    }

    #[test]
    fn files_are_content_addressed_and_verified() {
        let (dir, store) = store();
        let src = dir.path().join("a.txt");
        fs::write(&src, "hello").unwrap();
        let object = store.import(&src, "a.txt").unwrap();
        assert_eq!(object.digest, blake3::hash(b"hello").to_hex().to_string());
        let out = store.output_path(&object, "a.txt");
        assert_eq!(fs::read_to_string(&out).unwrap(), "hello");
        store.verify(&object).unwrap();
        let blob = store.blob_path(&object.digest);
        fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&blob, "hellO").unwrap();
        assert!(matches!(
            store.verify(&object),
            Err(Problem::Corrupt { .. })
        ));
    }

    #[test]
    fn trees_keep_structure_and_deduplicate() {
        let (dir, store) = store();
        let src = dir.path().join("model");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("sub/w.bin"), "weights").unwrap();
        fs::write(src.join("config.json"), "{}").unwrap();
        let object = store.import(&src, "model").unwrap();
        assert_eq!(object.kind, ObjectKind::Tree);
        assert_eq!(object.bytes, 9);
        let out = store.output_path(&object, "model");
        assert_eq!(
            fs::read_to_string(out.join("sub/w.bin")).unwrap(),
            "weights"
        );
        assert!(out.join("empty").is_dir());
        store.verify(&object).unwrap();

        fs::create_dir_all(src.join("sub")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::write(src.join("sub/w.bin"), "weights").unwrap();
        fs::write(src.join("config.json"), "{}").unwrap();
        assert_eq!(store.import(&src, "model").unwrap(), object);
    }
}
