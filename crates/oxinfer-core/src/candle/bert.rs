//! A BERT encoder in candle, readable top to bottom: embeddings, N layers of self-attention and
//! feed-forward, each followed by a residual LayerNorm. Weights follow transformers' names
//! (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ...),
//! with or without a `bert.` prefix.
//!
//! The whole batch goes through as one tensor: one upload of the ids and mask, one matmul per
//! projection over all B*S tokens, no per-row host round trips.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use crate::precision::{Packed, Precision};

use super::attention::{MaskBias, attention};
use super::config::{Activation, BertConfig};

/// y = x W^T + b over the last dim, as one 2-D matmul for any leading dims.
struct Linear {
    weight_t: Weights,
    bias: Tensor,
}

/// W^T, transposed once at load so each forward is a plain (tokens x in) @ (in x out).
enum Weights {
    /// In the model's dtype, on its device.
    Plain(Tensor),
    /// Packed for bf16 or int8 products (crate::bf16, crate::int8; f32 CPU models, see `Bert::load`).
    Packed(Packed),
}

impl Linear {
    fn load(vb: VarBuilder, inp: usize, out: usize) -> Result<Self> {
        let weight = vb.get((out, inp), "weight")?;
        let bias = vb.get(out, "bias")?;
        Ok(Linear { weight_t: Weights::Plain(weight.t()?.contiguous()?), bias })
    }

    /// The weights as a tensor: what scaling and concatenation work on, before any packing.
    fn plain(&self) -> Result<&Tensor> {
        match &self.weight_t {
            Weights::Plain(w) => Ok(w),
            Weights::Packed(_) => candle_core::bail!("linear layer: weights already packed"),
        }
    }

    /// Multiplies both by `k` (folds a constant scale of the output into the weights).
    fn scaled(self, k: f64) -> Result<Self> {
        Ok(Linear { weight_t: Weights::Plain((self.plain()? * k)?), bias: (self.bias * k)? })
    }

    /// One projection computing all of `parts` side by side: their outputs are its columns.
    fn concat(parts: &[Linear]) -> Result<Self> {
        let weights = parts.iter().map(Linear::plain).collect::<Result<Vec<&Tensor>>>()?;
        let biases: Vec<&Tensor> = parts.iter().map(|p| &p.bias).collect();
        Ok(Linear { weight_t: Weights::Plain(Tensor::cat(&weights, 1)?), bias: Tensor::cat(&biases, 0)? })
    }

    /// With a reduced `precision`, the weights packed for its products (crate::bf16,
    /// crate::int8) in place of the f32 ones: f32 CPU weights only.
    fn products_in(self, precision: Precision) -> Result<Self> {
        if precision == Precision::Float32 {
            return Ok(self);
        }
        let w = self.plain()?;
        let (k, n) = w.dims2()?;
        match Packed::of(&w.flatten_all()?.to_vec1::<f32>()?, k, n, precision) {
            Some(packed) => Ok(Linear { weight_t: Weights::Packed(packed), bias: self.bias }),
            None => Ok(self),
        }
    }

    /// `threads`: how many threads the matmul may use (see linear.rs).
    fn forward(&self, x: &Tensor, threads: usize) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let inp = dims[dims.len() - 1];
        let rows = x.elem_count() / inp.max(1);
        let x = x.reshape((rows, inp))?;
        let y = match &self.weight_t {
            Weights::Packed(w) => super::linear::linear_packed(&x, w, &self.bias, threads)?,
            Weights::Plain(w) => super::linear::linear(&x, w, &self.bias, threads)?,
        };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank >= 1") = self.bias.dim(0)?;
        y.reshape(out_dims)
    }
}

fn layer_norm(vb: VarBuilder, size: usize, eps: f64) -> Result<LayerNorm> {
    // Old checkpoints name the LayerNorm parameters gamma/beta.
    let (w, b) = if vb.contains_tensor("weight") { ("weight", "bias") } else { ("gamma", "beta") };
    Ok(LayerNorm::new(vb.get(size, w)?, vb.get(size, b)?, eps))
}

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, c: &BertConfig) -> Result<Self> {
        let table = |name: &str, rows: usize| -> Result<Embedding> {
            Ok(Embedding::new(vb.pp(name).get((rows, c.hidden_size), "weight")?, c.hidden_size))
        };
        Ok(Embeddings {
            words: table("word_embeddings", c.vocab_size)?,
            positions: table("position_embeddings", c.max_position_embeddings)?,
            token_types: table("token_type_embeddings", c.type_vocab_size)?,
            norm: layer_norm(vb.pp("LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
        })
    }

    fn forward(&self, ids: &Tensor, token_types: &Tensor) -> Result<Tensor> {
        let seq = ids.dim(1)?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let x = self
            .words
            .forward(ids)?
            .add(&self.token_types.forward(token_types)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        self.norm.forward(&x)
    }
}

struct Layer {
    /// Query, key and value as one projection: one matmul instead of three.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
    heads: usize,
    act: Activation,
}

impl Layer {
    fn load(vb: VarBuilder, c: &BertConfig, products: Precision) -> Result<Self> {
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let att = vb.pp("attention");
        let head_dim = h / c.num_attention_heads;
        Ok(Layer {
            qkv: Linear::concat(&[
                // softmax(q k^T / sqrt(d)): the scale is folded into the query projection, which
                // saves a pass over the [B, heads, S, S] scores.
                Linear::load(att.pp("self").pp("query"), h, h)?.scaled(1.0 / (head_dim as f64).sqrt())?,
                Linear::load(att.pp("self").pp("key"), h, h)?,
                Linear::load(att.pp("self").pp("value"), h, h)?,
            ])?
            .products_in(products)?,
            attn_out: Linear::load(att.pp("output").pp("dense"), h, h)?.products_in(products)?,
            attn_norm: layer_norm(att.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            up: Linear::load(vb.pp("intermediate").pp("dense"), h, i)?.products_in(products)?,
            down: Linear::load(vb.pp("output").pp("dense"), i, h)?.products_in(products)?,
            out_norm: layer_norm(vb.pp("output").pp("LayerNorm"), h, c.layer_norm_eps)?,
            heads: c.num_attention_heads,
            act: c.hidden_act,
        })
    }

    /// `mask_bias`: [B, 1, 1, S], 0 for tokens and a large negative for padding; `None` when
    /// the batch has no padding. `threads`: for the matmuls.
    fn forward(&self, x: &Tensor, mask_bias: Option<&MaskBias>, threads: usize) -> Result<Tensor> {
        let ctx = attention(&self.qkv.forward(x, threads)?, self.heads, mask_bias)?;
        let x = self.attn_norm.forward(&(self.attn_out.forward(&ctx, threads)? + x)?)?;
        let up = self.up.forward(&x, threads)?;
        let up = match self.act {
            Activation::Gelu => super::gelu::gelu_erf(up)?,
            Activation::GeluTanh => up.gelu()?,
            Activation::Relu => up.relu()?,
            Activation::Silu => up.silu()?,
        };
        self.out_norm.forward(&(self.down.forward(&up, threads)? + x)?)
    }
}

pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    dtype: DType,
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub max_positions: usize,
    pub type_vocab_size: usize,
}

impl Bert {
    /// `products`: the precision of the linear layers' products (bf16 or int8 need f32 CPU
    /// weights and a CPU with the instructions, which the caller checks), everything else in
    /// `vb`'s dtype.
    pub fn load(vb: VarBuilder, c: &BertConfig, products: Precision) -> Result<Self> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") { vb } else { vb.pp("bert") };
        let embeddings = Embeddings::load(vb.pp("embeddings"), c)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), c, products))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bert {
            embeddings,
            layers,
            dtype: vb.dtype(),
            hidden_size: c.hidden_size,
            vocab_size: c.vocab_size,
            max_positions: c.max_position_embeddings,
            type_vocab_size: c.type_vocab_size,
        })
    }

    /// ids, token types: [B, S] u32; mask: [B, S] (1 token, 0 padding), or `None` when every
    /// position is a token (the attention then skips the mask add over [B, heads, S, S]).
    /// `threads`: how many threads each matmul may use. `stop` is read before each layer: once it
    /// is set the pass ends with an error (the caller has gone; a layer is the unit of work
    /// it may still wait for). Returns the last hidden state [B, S, H].
    pub fn forward(
        &self,
        ids: &Tensor,
        token_types: &Tensor,
        mask: Option<&Tensor>,
        threads: usize,
        stop: &crate::Cancel,
    ) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        // (mask - 1) * 10000: 0 for tokens, -10000 for padding, which softmax turns into exact
        // zeros, so padded rows give the same vectors as unpadded ones.
        let bias = match mask {
            Some(m) => {
                Some(MaskBias::new(((m.to_dtype(self.dtype)? - 1.0)? * 10_000.0)?.reshape((b, 1, 1, s))?)?)
            }
            None => None,
        };
        let mut x = self.embeddings.forward(ids, token_types)?;
        for layer in &self.layers {
            if stop.is_set() {
                candle_core::bail!("stopped: the caller has gone");
            }
            x = layer.forward(&x, bias.as_ref(), threads)?;
        }
        Ok(x)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Loads weights from safetensors bytes onto `device` in `dtype`.
pub fn var_builder(bytes: Vec<u8>, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    VarBuilder::from_buffered_safetensors(bytes, dtype, device)
}
