//! The BERT-style encoder of the paper: token + position + segment embeddings of width `e`
//! (LayerNorm, dropout), a projection to the hidden size `h` when `e ≠ h`, then transformer
//! blocks with GELU, post-LayerNorm as in the paper or pre-LayerNorm with a final LayerNorm
//! ([`Norm`]); and the [`Backbone`] that wires embeddings, attention mask and blocks together
//! for every head. Its input is a batch of rows ([`EncoderInput`]), one padded sequence per
//! row or several sequences packed side by side ([`Layout`]).
//!
//! Shapes: `b` rows, `s` row length, `e` embedding, `h` hidden, `n` heads, `d = h / n`.

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::embedding;
use burn::tensor::{Int, Tensor};

use super::config::{EncoderConfig, Norm};
use super::layers::{Dense, Dropout, Init, LayerNorm};
use super::ops::{attention_softmax, gelu, merge_heads, split_heads};

/// Token, position and segment embeddings; shared by ELECTRA's generator and discriminator.
#[derive(Module, Debug)]
pub struct Embeddings<B: Backend> {
    /// `[V, e]`; also the tied output matrix of the MLM heads.
    pub word: Param<Tensor<B, 2>>,
    /// `[max_positions, e]`.
    pub position: Param<Tensor<B, 2>>,
    /// `[segments, e]`.
    pub segment: Param<Tensor<B, 2>>,
    /// LayerNorm over `e`.
    pub norm: LayerNorm<B>,
}

impl<B: Backend> Embeddings<B> {
    /// Fresh embeddings for `config`'s vocabulary, positions, segments and width.
    pub fn new(init: &mut Init<'_, B>, config: &EncoderConfig) -> Self {
        Embeddings {
            word: Param::from_tensor(init.weights(config.vocab_size, config.embedding)),
            position: Param::from_tensor(init.weights(config.max_positions, config.embedding)),
            segment: Param::from_tensor(init.weights(config.segments, config.embedding)),
            norm: LayerNorm::new(init, config.embedding),
        }
    }

    /// `ids`, `segments`: `[b, s]` → `[b, s, e]`. Each token's position is its column, or
    /// `positions` `[b, s]` where given (packed rows, where every sequence starts at 0).
    pub fn forward(
        &self,
        ids: Tensor<B, 2, Int>,
        segments: Tensor<B, 2, Int>,
        positions: Option<Tensor<B, 2, Int>>,
        dropout: &mut Dropout,
    ) -> Tensor<B, 3> {
        let [_, s] = ids.dims();
        let e = self.word.val().dims()[1];
        let words = embedding(self.word.val(), ids);
        let segments = embedding(self.segment.val(), segments);
        let summed = match positions {
            Some(positions) => words + embedding(self.position.val(), positions) + segments,
            None => words + self.position.val().slice([0..s, 0..e]).unsqueeze::<3>() + segments,
        };
        dropout.apply(self.norm.forward(summed))
    }
}

/// Multi-head self-attention with its output projection, and the LayerNorm of its residual.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    query: Dense<B>,
    key: Dense<B>,
    value: Dense<B>,
    output: Dense<B>,
    norm: LayerNorm<B>,
    #[module(skip)]
    heads: usize,
}

impl<B: Backend> SelfAttention<B> {
    fn new(init: &mut Init<'_, B>, hidden: usize, heads: usize) -> Self {
        SelfAttention {
            query: Dense::new(init, hidden, hidden),
            key: Dense::new(init, hidden, hidden),
            value: Dense::new(init, hidden, hidden),
            output: Dense::new(init, hidden, hidden),
            norm: LayerNorm::new(init, hidden),
            heads,
        }
    }

    /// The sub-layer: `x` `[b, s, h]` → the dropped-out output projection of the attended
    /// values; `mask_bias`: [`Layout::mask_bias`].
    fn attend(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        dropout: &mut Dropout,
    ) -> Tensor<B, 3> {
        let [_, _, h] = x.dims();
        let (n, d) = (self.heads, h / self.heads);
        let q = split_heads(self.query.forward(x.clone()), n); // [b, n, s, d]
        let k = split_heads(self.key.forward(x.clone()), n);
        let v = split_heads(self.value.forward(x), n);
        let scores = q.matmul(k.swap_dims(2, 3)); // [b, n, s, s]
        let probs = dropout.apply(attention_softmax(
            scores,
            1.0 / (d as f64).sqrt(),
            mask_bias,
        ));
        let context = merge_heads(probs.matmul(v)); // [b, s, h]
        dropout.apply(self.output.forward(context))
    }
}

/// `x` plus `sublayer`'s output, with `norm` where `placement` puts it: `LN(x + f(x))` after
/// the sum (post-LN), or `x + f(LN(x))` on the sub-layer's input (pre-LN).
fn residual<B: Backend>(
    placement: Norm,
    norm: &LayerNorm<B>,
    x: Tensor<B, 3>,
    sublayer: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    match placement {
        Norm::Post => norm.forward(sublayer(x.clone()) + x),
        Norm::Pre => sublayer(norm.forward(x.clone())) + x,
    }
}

/// One transformer block: attention, then a GELU feed-forward network, each a residual
/// sub-layer with its LayerNorm.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    attention: SelfAttention<B>,
    intermediate: Dense<B>,
    output: Dense<B>,
    norm: LayerNorm<B>,
    #[module(skip)]
    placement: Norm,
}

impl<B: Backend> Block<B> {
    fn new(init: &mut Init<'_, B>, config: &EncoderConfig) -> Self {
        Block {
            attention: SelfAttention::new(init, config.hidden, config.heads),
            intermediate: Dense::new(init, config.hidden, config.intermediate),
            output: Dense::new(init, config.intermediate, config.hidden),
            norm: LayerNorm::new(init, config.hidden),
            placement: config.norm,
        }
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        dropout: &mut Dropout,
    ) -> Tensor<B, 3> {
        let attention = &self.attention;
        let attended = residual(self.placement, &attention.norm, x, |x| {
            attention.attend(x, mask_bias, dropout)
        });
        residual(self.placement, &self.norm, attended, |x| {
            let inner = gelu(self.intermediate.forward(x)); // [b, s, i]
            dropout.apply(self.output.forward(inner))
        })
    }
}

/// The transformer stack on top of (shared) embeddings: `e → h` projection when needed, then
/// the blocks (and, pre-LN, the final LayerNorm).
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    projection: Option<Dense<B>>,
    blocks: Vec<Block<B>>,
    final_norm: Option<LayerNorm<B>>,
}

impl<B: Backend> Encoder<B> {
    /// A fresh encoder of `config`'s shape.
    pub fn new(init: &mut Init<'_, B>, config: &EncoderConfig) -> Self {
        let projection = (config.embedding != config.hidden)
            .then(|| Dense::new(init, config.embedding, config.hidden));
        let blocks = (0..config.layers)
            .map(|_| Block::new(init, config))
            .collect();
        let final_norm = (config.norm == Norm::Pre).then(|| LayerNorm::new(init, config.hidden));
        Encoder {
            projection,
            blocks,
            final_norm,
        }
    }

    /// `embedded`: `[b, s, e]`, `mask_bias` from [`Layout::mask_bias`] → `[b, s, h]`, handing `each` the input of the first block (layer 0: the
    /// embeddings, projected to `h`) and every block's output (layer `i + 1`; the last one
    /// after the final LayerNorm of a pre-LN encoder), as transformers' `hidden_states`.
    fn forward_each(
        &self,
        embedded: Tensor<B, 3>,
        mask_bias: Tensor<B, 4>,
        dropout: &mut Dropout,
        mut each: impl FnMut(&Tensor<B, 3>),
    ) -> Tensor<B, 3> {
        let mut x = match &self.projection {
            Some(projection) => projection.forward(embedded),
            None => embedded,
        };
        let last = self.blocks.len();
        for layer in 0..=last {
            if layer > 0 {
                x = self.blocks[layer - 1].forward(x, mask_bias.clone(), dropout);
            }
            if let (true, Some(norm)) = (layer == last, &self.final_norm) {
                x = norm.forward(x);
            }
            each(&x);
        }
        x
    }
}

/// The bias of attention to a key no query may see: −10000, exactly 0 weight after softmax.
pub const MASKED: f32 = -10000.0;

/// One batch of token rows on the device, as every backbone reads it.
pub struct EncoderInput<B: Backend> {
    /// `[b, s]` token ids.
    pub ids: Tensor<B, 2, Int>,
    /// `[b, s]` segment ids.
    pub segments: Tensor<B, 2, Int>,
    /// Where the sequences are in the rows.
    pub layout: Layout<B>,
}

/// How a batch's sequences lie in its rows.
pub enum Layout<B: Backend> {
    /// One sequence per row from column 0, padded to the longest: `[b, s]`, 1 on tokens and
    /// 0 on padding.
    Padded(Tensor<B, 2>),
    /// Several sequences side by side in a row, each attending only to itself.
    Packed(Packing<B>),
}

/// Sequences packed into rows (what spares a fine-tuning batch of short sentences the work
/// on padding), and the way back to one sequence per row.
pub struct Packing<B: Backend> {
    /// `[b, s]`: each token's position in its own sequence.
    pub positions: Tensor<B, 2, Int>,
    /// `[b, 1, s, s]`: 0 where query and key belong to the same sequence, [`MASKED`]
    /// elsewhere.
    pub mask_bias: Tensor<B, 4>,
    /// `[m · t]`: for the `m` sequences, each padded to the longest `t`, the flat index
    /// `row · s + column` of each token in the rows (padding points at any index).
    pub unpack: Tensor<B, 1, Int>,
    /// `[m, t]`: 1 on the unpacked sequences' tokens, 0 on their padding.
    pub attention: Tensor<B, 2>,
}

impl<B: Backend> Layout<B> {
    /// The additive attention mask of the rows: `[b, 1, 1, s]` (0 on tokens, [`MASKED`] on
    /// padding) or, packed, [`Packing::mask_bias`].
    fn mask_bias(&self) -> Tensor<B, 4> {
        match self {
            Layout::Padded(attention) => {
                let [b, s] = attention.dims();
                ((attention.clone() - 1.0) * -MASKED).reshape([b, 1, 1, s])
            }
            Layout::Packed(packing) => packing.mask_bias.clone(),
        }
    }
}

/// The network every head reads: embeddings → attention mask → transformer blocks, giving the
/// final hidden states. A view over the two modules rather than their owner, because ELECTRA's
/// generator and discriminator are two backbones over one set of embeddings (the models own
/// their modules, so each parameter is visited, clipped and updated exactly once).
#[derive(Debug, Clone, Copy)]
pub struct Backbone<'a, B: Backend> {
    /// Token, position and segment embeddings.
    pub embeddings: &'a Embeddings<B>,
    /// The projection and the blocks.
    pub encoder: &'a Encoder<B>,
}

impl<B: Backend> Backbone<'_, B> {
    /// `input` → final hidden states `[b, s, h]`, in the input's rows.
    pub fn forward(&self, input: &EncoderInput<B>, dropout: &mut Dropout) -> Tensor<B, 3> {
        self.forward_each(input, dropout, |_| {})
    }

    /// [`Backbone::forward`], handing `each` every layer's hidden states
    /// ([`Encoder::forward_each`]).
    fn forward_each(
        &self,
        input: &EncoderInput<B>,
        dropout: &mut Dropout,
        each: impl FnMut(&Tensor<B, 3>),
    ) -> Tensor<B, 3> {
        let positions = match &input.layout {
            Layout::Padded(_) => None,
            Layout::Packed(packing) => Some(packing.positions.clone()),
        };
        let embedded = self.embeddings.forward(
            input.ids.clone(),
            input.segments.clone(),
            positions,
            dropout,
        );
        self.encoder
            .forward_each(embedded, input.layout.mask_bias(), dropout, each)
    }

    /// `input` → the hidden states of every layer, `[b, s, h]` each, in the input's rows:
    /// layer 0 is the embeddings (projected to `h`), layer `i` the output of block `i`
    /// (transformers' `hidden_states`). What a probe of frozen features reads.
    pub fn every_layer(&self, input: &EncoderInput<B>) -> Vec<Tensor<B, 3>> {
        let mut layers = Vec::new();
        self.forward_each(input, &mut Dropout::Off, |x| layers.push(x.clone()));
        layers
    }

    /// `input` → final hidden states one sequence per row, `[m, t, h]`, with their
    /// attention mask `[m, t]` (1 on tokens): what a head that reads whole sequences needs,
    /// whichever the input's layout.
    pub fn sequences(
        &self,
        input: &EncoderInput<B>,
        dropout: &mut Dropout,
    ) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let hidden = self.forward(input, dropout);
        match &input.layout {
            Layout::Padded(attention) => (hidden, attention.clone()),
            Layout::Packed(packing) => {
                let [b, s, h] = hidden.dims();
                let [m, t] = packing.attention.dims();
                let unpacked = hidden
                    .reshape([b * s, h])
                    .select(0, packing.unpack.clone())
                    .reshape([m, t, h]);
                (unpacked, packing.attention.clone())
            }
        }
    }
}
