//! The on-disk format of pretraining examples: a directory of binary shards and an
//! `index.json`.
//!
//! A shard file is
//! ```text
//! magic "EPSHARD1" | token_bytes: u32 LE (2 or 4) | examples: u64 LE
//! | offsets: (examples + 1) × u64 LE (token offsets of each example)
//! | tokens: offsets[examples] × token_bytes LE
//! ```
//! Tokens are `u16` when every id fits, else `u32`. Segment ids are not stored: segment B
//! starts after the first `[SEP]`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::tokenizer::SpecialIds;

/// First bytes of every shard file.
pub const SHARD_MAGIC: &[u8; 8] = b"EPSHARD1";
/// Bytes before the offsets table.
pub const SHARD_HEADER_LEN: u64 = 8 + 4 + 8;
/// The index file inside a shards directory.
pub const INDEX_FILE: &str = "index.json";
/// Version of the shard format, checked by the reader.
pub const FORMAT_VERSION: u32 = 1;

/// One shard as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the shards directory.
    pub file: String,
    /// Examples in the shard.
    pub examples: u64,
    /// Tokens in the shard.
    pub tokens: u64,
}

/// `index.json`: what the shards hold and how they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardIndex {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// 2 (`u16`) or 4 (`u32`).
    pub token_bytes: u32,
    /// Size of the tokenizer's vocabulary.
    pub vocab_size: usize,
    /// Longest example.
    pub max_seq_len: usize,
    /// Special token ids of the tokenizer.
    pub special: SpecialIds,
    /// Seed of the packing decisions.
    pub seed: u64,
    /// Total examples.
    pub examples: u64,
    /// Total tokens.
    pub tokens: u64,
    /// The shards in reading order.
    pub shards: Vec<ShardEntry>,
}

impl ShardIndex {
    /// Reads and checks `dir/index.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(INDEX_FILE);
        let index: ShardIndex = crate::json_file::read(&path, "a shard index")?;
        if index.format_version != FORMAT_VERSION {
            return Err(DataError::invalid(
                &path,
                format!(
                    "shard format version {} is not supported: expected {FORMAT_VERSION} (rebuild the pretrain_data stage)",
                    index.format_version
                ),
            ));
        }
        Ok(index)
    }
}

/// Token width that holds every id of a `vocab_size` vocabulary.
pub fn token_bytes_for(vocab_size: usize) -> u32 {
    if vocab_size <= usize::from(u16::MAX) + 1 {
        2
    } else {
        4
    }
}

/// Writes examples into shards of at most `shard_examples` each, then the index.
pub struct ShardWriter {
    dir: PathBuf,
    token_bytes: u32,
    shard_examples: usize,
    offsets: Vec<u64>,
    tokens: Vec<u32>,
    shards: Vec<ShardEntry>,
}

impl ShardWriter {
    /// Creates the shards directory `dir`.
    pub fn create(dir: &Path, token_bytes: u32, shard_examples: usize) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| DataError::io(format!("creating {}", dir.display()), e))?;
        Ok(ShardWriter {
            dir: dir.to_owned(),
            token_bytes,
            shard_examples,
            offsets: vec![0],
            tokens: Vec::new(),
            shards: Vec::new(),
        })
    }

    /// Appends one example.
    pub fn push(&mut self, input_ids: &[u32]) -> Result<()> {
        self.tokens.extend_from_slice(input_ids);
        self.offsets.push(self.tokens.len() as u64);
        if self.offsets.len() > self.shard_examples {
            self.flush_shard()?;
        }
        Ok(())
    }

    fn flush_shard(&mut self) -> Result<()> {
        let examples = self.offsets.len() as u64 - 1;
        if examples == 0 {
            return Ok(());
        }
        let file = format!("shard-{:05}.bin", self.shards.len());
        let path = self.dir.join(&file);
        let context = || format!("writing {}", path.display());
        let mut out = BufWriter::with_capacity(
            1 << 20,
            File::create(&path).map_err(|e| DataError::io(context(), e))?,
        );
        let mut write = |bytes: &[u8]| {
            out.write_all(bytes)
                .map_err(|e| DataError::io(context(), e))
        };
        write(SHARD_MAGIC)?;
        write(&self.token_bytes.to_le_bytes())?;
        write(&examples.to_le_bytes())?;
        for offset in &self.offsets {
            write(&offset.to_le_bytes())?;
        }
        for &token in &self.tokens {
            if self.token_bytes == 2 {
                // Checked at creation: every id of the vocabulary fits in 16 bits.
                write(&(token as u16).to_le_bytes())?;
            } else {
                write(&token.to_le_bytes())?;
            }
        }
        out.flush().map_err(|e| DataError::io(context(), e))?;
        self.shards.push(ShardEntry {
            file,
            examples,
            tokens: self.tokens.len() as u64,
        });
        self.offsets.truncate(1);
        self.tokens.clear();
        Ok(())
    }

    /// Writes the last shard and `index.json` from `header` (its totals and shards are
    /// filled in here).
    pub fn finish(mut self, mut header: ShardIndex) -> Result<ShardIndex> {
        self.flush_shard()?;
        header.token_bytes = self.token_bytes;
        header.examples = self.shards.iter().map(|s| s.examples).sum();
        header.tokens = self.shards.iter().map(|s| s.tokens).sum();
        header.shards = self.shards;
        crate::json_file::write_pretty(&self.dir.join(INDEX_FILE), &header)?;
        Ok(header)
    }
}
