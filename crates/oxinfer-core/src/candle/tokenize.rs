//! Text to token ids with the `tokenizers` crate, offline: a tokenizer.json, truncation to the
//! model's length, and no padding (batches are padded to their own longest row later).

use std::path::Path;

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// One tokenized text: ids and token types, special tokens included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
}

pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

impl TextTokenizer {
    /// Reads tokenizer.json and sets truncation at `max_length` tokens (special tokens
    /// counted), replacing whatever truncation and padding the file declares.
    pub fn load(path: &Path, max_length: usize) -> Result<TextTokenizer> {
        let bad = |e: &dyn std::fmt::Display| {
            Error::model_load(format!("{} is not a valid tokenizer: {e}", path.display()))
        };
        let bytes = std::fs::read(path)
            .map_err(|e| Error::model_load(format!("cannot read {}: {e}", path.display())))?;
        let mut inner = Tokenizer::from_bytes(&bytes).map_err(|e| bad(&e))?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| bad(&e))?;
        // The id the file pads with (BERT: [PAD] = 0); padding is masked out anyway.
        let pad_id = inner.get_padding().map(|p| p.pad_id).unwrap_or(0);
        inner.with_padding(None);
        Ok(TextTokenizer { inner, pad_id })
    }

    /// Tokenizes every text; over-long texts are truncated, never an error.
    pub fn encode(&self, texts: &[String]) -> Result<Vec<Tokens>> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| Error::engine(format!("tokenization failed: {e}")))?;
        Ok(encodings
            .into_iter()
            .map(|e| Tokens { ids: e.get_ids().to_vec(), types: e.get_type_ids().to_vec() })
            .collect())
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }
}
