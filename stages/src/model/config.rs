//! Sizes of the transformer encoders: named presets, overridable field by field
//! ([`ModelParams`], the `model:` param of `pretrain` and `from_scratch:` of `finetune`), and
//! the generator's shape derived from the discriminator's.

use serde::{Deserialize, Serialize};

/// The shape of a BERT-style encoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Token ids (the tokenizer's vocabulary size).
    pub vocab_size: usize,
    /// Width `e` of the token, position and segment embeddings.
    pub embedding: usize,
    /// Hidden size `h` of the transformer blocks.
    pub hidden: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Attention heads per block.
    pub heads: usize,
    /// Inner size of each block's feed-forward network.
    pub intermediate: usize,
    /// Longest sequence (position embeddings).
    pub max_positions: usize,
    /// Segment (token type) ids.
    pub segments: usize,
    /// Dropout on embeddings, attention probabilities and block outputs.
    pub dropout: f64,
    /// Where each block's LayerNorms sit (absent from files when it is the paper's `post`).
    #[serde(default, skip_serializing_if = "Norm::is_post")]
    pub norm: Norm,
}

/// Where a transformer block's LayerNorms sit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// After each residual sum, `LN(x + f(x))`: BERT's and ELECTRA's (the default).
    #[default]
    Post,
    /// Before each sub-layer, `x + f(LN(x))`, with a final LayerNorm after the last block
    /// (Xiong et al. 2020; trains without warm-up at higher rates).
    Pre,
}

impl Norm {
    fn is_post(&self) -> bool {
        *self == Norm::Post
    }
}

/// The named model sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// 2 layers, h 64, 2 heads, FFN 256, e 64: seconds per hundred steps on a CPU, for tests.
    Tiny,
    /// 4 layers, h 128, 2 heads, FFN 512, e 128: minutes on a CPU.
    Mini,
    /// The paper's ELECTRA-Small: 12 layers, h 256, 4 heads, FFN 1024, e 128.
    Small,
    /// The paper's Base: 12 layers, h 768, 12 heads, FFN 3072, e 768.
    Base,
}

impl Preset {
    /// The preset's encoder for a vocabulary of `vocab_size` tokens.
    pub fn encoder(self, vocab_size: usize) -> EncoderConfig {
        let (layers, hidden, heads, intermediate, embedding) = match self {
            Preset::Tiny => (2, 64, 2, 256, 64),
            Preset::Mini => (4, 128, 2, 512, 128),
            Preset::Small => (12, 256, 4, 1024, 128),
            Preset::Base => (12, 768, 12, 3072, 768),
        };
        EncoderConfig {
            vocab_size,
            embedding,
            hidden,
            layers,
            heads,
            intermediate,
            max_positions: 512,
            segments: 2,
            dropout: 0.1,
            norm: Norm::Post,
        }
    }
}

impl EncoderConfig {
    /// The generator for this discriminator: the same embeddings; hidden size, FFN and heads
    /// scaled by `size`, and the number of blocks by `depth` (ELECTRA-Small's generator is ¼
    /// wide and as deep: h 64, FFN 256, 1 head, 12 blocks).
    pub fn generator(&self, size: f64, depth: f64) -> EncoderConfig {
        let scale = |n: usize, by: f64| ((n as f64 * by).round() as usize).max(1);
        EncoderConfig {
            hidden: scale(self.hidden, size),
            heads: scale(self.heads, size),
            intermediate: scale(self.intermediate, size),
            layers: scale(self.layers, depth),
            ..*self
        }
    }

    /// Checks the shape is buildable; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("embedding", self.embedding),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("heads", self.heads),
            ("intermediate", self.intermediate),
            ("max_positions", self.max_positions),
            ("segments", self.segments),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err((
                    field.to_owned(),
                    "expected a positive size, found 0".to_owned(),
                ));
            }
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return Err((
                "heads".to_owned(),
                format!(
                    "hidden size {} is not divisible by {} heads: expected heads to divide hidden",
                    self.hidden, self.heads
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err((
                "dropout".to_owned(),
                format!("expected a probability in [0, 1), found {}", self.dropout),
            ));
        }
        Ok(())
    }
}

/// A preset and any fields to override, as pipelines write a model's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelParams {
    /// The named size.
    pub preset: Preset,
    /// Embedding width `e`.
    pub embedding: Option<usize>,
    /// Hidden size `h`.
    pub hidden: Option<usize>,
    /// Transformer blocks.
    pub layers: Option<usize>,
    /// Attention heads.
    pub heads: Option<usize>,
    /// Feed-forward size.
    pub intermediate: Option<usize>,
    /// Dropout probability.
    pub dropout: Option<f64>,
    /// LayerNorm placement: `post` (the paper's) or `pre`.
    pub norm: Option<Norm>,
}

impl ModelParams {
    /// The preset's encoder for a vocabulary of `vocab_size`, with the overridden fields.
    pub fn encoder(&self, vocab_size: usize) -> EncoderConfig {
        let base = self.preset.encoder(vocab_size);
        EncoderConfig {
            embedding: self.embedding.unwrap_or(base.embedding),
            hidden: self.hidden.unwrap_or(base.hidden),
            layers: self.layers.unwrap_or(base.layers),
            heads: self.heads.unwrap_or(base.heads),
            intermediate: self.intermediate.unwrap_or(base.intermediate),
            dropout: self.dropout.unwrap_or(base.dropout),
            norm: self.norm.unwrap_or(base.norm),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_small_generator_is_a_quarter_of_the_discriminator() {
        let disc = Preset::Small.encoder(30522);
        let gen = disc.generator(0.25, 1.0);
        assert_eq!((gen.hidden, gen.intermediate, gen.heads), (64, 256, 1));
        assert_eq!((gen.layers, gen.embedding), (12, 128));
        assert!(disc.validate().is_ok() && gen.validate().is_ok());
        let shallow = disc.generator(0.25, 0.25);
        assert_eq!((shallow.layers, shallow.hidden), (3, 64));
    }

    #[test]
    fn impossible_shapes_name_their_field() {
        let mut c = Preset::Tiny.encoder(100);
        c.heads = 3;
        assert_eq!(c.validate().unwrap_err().0, "heads");
        c.heads = 2;
        c.layers = 0;
        assert_eq!(c.validate().unwrap_err().0, "layers");
    }
}
