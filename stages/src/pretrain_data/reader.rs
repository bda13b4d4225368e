//! Reads pretraining shards back for training: random access to any example, and an endless
//! stream that visits every example once per epoch in an order shuffled by seed and epoch,
//! resumable from a [`Cursor`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::shards::{ShardIndex, SHARD_HEADER_LEN, SHARD_MAGIC};
use crate::error::{DataError, Result};

/// One pretraining example with its segment ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.
    pub input_ids: Vec<u32>,
    /// 0 up to and including the first `[SEP]`, 1 after it.
    pub segment_ids: Vec<u32>,
}

/// Where a stream is: the epoch and how many examples of it were read. Saved in checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Epochs completed.
    pub epoch: u64,
    /// Examples read in the current epoch.
    pub position: u64,
}

/// A batch padded to the data's `max_seq_len`, row-major `[batch, max_seq_len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Rows.
    pub batch_size: usize,
    /// Columns (`max_seq_len`).
    pub seq_len: usize,
    /// Token ids, `[PAD]` after each example's end.
    pub input_ids: Vec<u32>,
    /// Segment ids, 0 in padding.
    pub segment_ids: Vec<u32>,
    /// Real (unpadded) length of each row.
    pub lengths: Vec<usize>,
}

struct Shard {
    path: PathBuf,
    file: File,
    offsets: Vec<u64>,
    tokens_start: u64,
}

/// An opened shards directory.
pub struct PretrainingData {
    index: ShardIndex,
    shards: Vec<Shard>,
    /// First global example index of each shard, plus the total at the end.
    starts: Vec<u64>,
}

fn read_u64s(file: &File, path: &Path, at: u64, count: usize) -> Result<Vec<u64>> {
    let mut bytes = vec![0u8; count * 8];
    file.read_exact_at(&mut bytes, at)
        .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8-byte chunk")))
        .collect())
}

/// The token ids of a shard's little-endian `width`-byte tokens.
fn token_ids(bytes: &[u8], width: usize) -> impl Iterator<Item = u32> + '_ {
    bytes.chunks_exact(width).map(move |c| {
        if width == 2 {
            u32::from(u16::from_le_bytes([c[0], c[1]]))
        } else {
            u32::from_le_bytes([c[0], c[1], c[2], c[3]])
        }
    })
}

impl Shard {
    fn open(path: PathBuf, expected_examples: u64, token_bytes: u32) -> Result<Self> {
        let file = File::open(&path)
            .map_err(|e| DataError::io(format!("opening {}", path.display()), e))?;
        let mut header = [0u8; SHARD_HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)
            .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?;
        let width = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        let examples = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
        if &header[..8] != SHARD_MAGIC || width != token_bytes || examples != expected_examples {
            return Err(DataError::invalid(
                &path,
                format!("expected a shard of {expected_examples} examples of {token_bytes}-byte tokens (per index.json); found another header"),
            ));
        }
        let offsets = read_u64s(&file, &path, SHARD_HEADER_LEN, examples as usize + 1)?;
        let tokens_start = SHARD_HEADER_LEN + 8 * (examples + 1);
        let expected_len = tokens_start + offsets[examples as usize] * u64::from(token_bytes);
        let actual_len = file
            .metadata()
            .map_err(|e| DataError::io(format!("reading {}", path.display()), e))?
            .len();
        if actual_len != expected_len || offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(DataError::invalid(
                &path,
                format!("the shard is {actual_len} bytes with inconsistent offsets: expected {expected_len} bytes"),
            ));
        }
        Ok(Shard {
            path,
            file,
            offsets,
            tokens_start,
        })
    }
}

impl PretrainingData {
    /// Opens the shards directory written by a `pretrain_data` stage.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = ShardIndex::read(dir)?;
        let mut shards = Vec::with_capacity(index.shards.len());
        let mut starts = vec![0u64];
        for entry in &index.shards {
            shards.push(Shard::open(
                dir.join(&entry.file),
                entry.examples,
                index.token_bytes,
            )?);
            starts.push(starts.last().copied().unwrap_or(0) + entry.examples);
        }
        Ok(PretrainingData {
            index,
            shards,
            starts,
        })
    }

    /// What the shards hold.
    pub fn index(&self) -> &ShardIndex {
        &self.index
    }

    /// Number of examples.
    pub fn len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How often each token id occurs in all examples (indexed by id, `vocab_size` long), from
    /// one read of each shard's tokens.
    pub fn token_counts(&self) -> Result<Vec<u64>> {
        let mut counts = vec![0u64; self.index.vocab_size];
        let width = self.index.token_bytes as usize;
        for shard in &self.shards {
            let tokens = *shard.offsets.last().unwrap_or(&0) as usize;
            let mut bytes = vec![0u8; tokens * width];
            shard
                .file
                .read_exact_at(&mut bytes, shard.tokens_start)
                .map_err(|e| DataError::io(format!("reading {}", shard.path.display()), e))?;
            for id in token_ids(&bytes, width) {
                let id = id as usize;
                let slot = counts.get_mut(id).ok_or_else(|| {
                    DataError::invalid(
                        &shard.path,
                        format!(
                            "token id {id}: expected ids below the vocabulary size {}",
                            self.index.vocab_size
                        ),
                    )
                })?;
                *slot += 1;
            }
        }
        Ok(counts)
    }

    /// Example `i` (0-based, in writing order).
    pub fn example(&self, i: u64) -> Result<Example> {
        let shard_no = self.starts.partition_point(|&start| start <= i) - 1;
        let shard = self
            .shards
            .get(shard_no)
            .filter(|_| i < self.len())
            .ok_or_else(|| {
                DataError::Config(format!(
                    "example {i} is out of range: there are {}",
                    self.len()
                ))
            })?;
        let local = (i - self.starts[shard_no]) as usize;
        let (begin, end) = (shard.offsets[local], shard.offsets[local + 1]);
        let width = u64::from(self.index.token_bytes);
        let mut bytes = vec![0u8; ((end - begin) * width) as usize];
        shard
            .file
            .read_exact_at(&mut bytes, shard.tokens_start + begin * width)
            .map_err(|e| DataError::io(format!("reading {}", shard.path.display()), e))?;
        let input_ids: Vec<u32> = token_ids(&bytes, width as usize).collect();
        let sep = self.index.special.sep;
        let first_sep = input_ids
            .iter()
            .position(|&t| t == sep)
            .unwrap_or(input_ids.len());
        let segment_ids = (0..input_ids.len())
            .map(|p| u32::from(p > first_sep))
            .collect();
        Ok(Example {
            input_ids,
            segment_ids,
        })
    }

    /// An endless stream shuffled by `seed`, starting at `cursor`.
    pub fn stream(&self, seed: u64, cursor: Cursor) -> Result<ExampleStream<'_>> {
        if self.is_empty() {
            return Err(DataError::Config(
                "the pretraining data has no examples".to_owned(),
            ));
        }
        let order = epoch_order(self.len(), seed, cursor.epoch);
        Ok(ExampleStream {
            data: self,
            seed,
            cursor,
            order,
        })
    }
}

/// The visiting order of one epoch: a permutation of `0..len` seeded by seed and epoch.
fn epoch_order(len: u64, seed: u64, epoch: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut order: Vec<u64> = (0..len).collect();
    order.shuffle(&mut rng);
    order
}

/// Reads examples epoch after epoch; see [`PretrainingData::stream`].
pub struct ExampleStream<'a> {
    data: &'a PretrainingData,
    seed: u64,
    cursor: Cursor,
    order: Vec<u64>,
}

impl ExampleStream<'_> {
    /// Where the stream is now; [`PretrainingData::stream`] from it continues identically.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The next example, starting a new shuffled epoch after the last one.
    pub fn next_example(&mut self) -> Result<Example> {
        if self.cursor.position >= self.order.len() as u64 {
            self.cursor = Cursor {
                epoch: self.cursor.epoch + 1,
                position: 0,
            };
            self.order = epoch_order(self.data.len(), self.seed, self.cursor.epoch);
        }
        let example = self
            .data
            .example(self.order[self.cursor.position as usize])?;
        self.cursor.position += 1;
        Ok(example)
    }

    /// The next `batch_size` examples, padded with `[PAD]` to `max_seq_len`.
    pub fn next_batch(&mut self, batch_size: usize) -> Result<Batch> {
        let seq_len = self.data.index.max_seq_len;
        let pad = self.data.index.special.pad;
        let mut batch = Batch {
            batch_size,
            seq_len,
            input_ids: vec![pad; batch_size * seq_len],
            segment_ids: vec![0; batch_size * seq_len],
            lengths: Vec::with_capacity(batch_size),
        };
        for row in 0..batch_size {
            let example = self.next_example()?;
            let n = example.input_ids.len().min(seq_len);
            let at = row * seq_len;
            batch.input_ids[at..at + n].copy_from_slice(&example.input_ids[..n]);
            batch.segment_ids[at..at + n].copy_from_slice(&example.segment_ids[..n]);
            batch.lengths.push(n);
        }
        Ok(batch)
    }
}
