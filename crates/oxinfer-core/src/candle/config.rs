//! The files of a Hugging Face style model folder, read into typed configs. Every error names
//! the file it came from.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The activation of the feed-forward blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// Exact (erf) GELU, as transformers' "gelu".
    #[serde(rename = "gelu")]
    Gelu,
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    #[serde(rename = "relu")]
    Relu,
    #[serde(rename = "silu", alias = "swish")]
    Silu,
}

/// config.json of a BERT-family encoder (BERT, MiniLM, BGE, E5, GTE-base v1, ...).
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    #[serde(default = "default_model_type")]
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_model_type() -> String {
    "bert".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// The mean of the token vectors, padding excluded (sentence-transformers' default).
    Mean,
    /// The first token's vector ([CLS]), as BGE uses.
    Cls,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            other => Err(Error::model_load(format!("unknown pooling '{other}': expected mean or cls"))),
        }
    }
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

/// What a sentence-transformers folder says about its pipeline; all optional.
#[derive(Debug, Clone, Default)]
pub struct SentenceConfig {
    /// sentence_bert_config.json's max_seq_length.
    pub max_seq_length: Option<usize>,
    /// 1_Pooling/config.json's mode (mean or cls).
    pub pooling: Option<Pooling>,
    /// modules.json lists a Normalize module (None: no modules.json).
    pub normalize: Option<bool>,
}

/// The files of one model folder.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub tokenizer: PathBuf,
    pub weights: PathBuf,
}

impl ModelFiles {
    pub fn in_dir(dir: &Path) -> Result<ModelFiles> {
        if !dir.is_dir() {
            return Err(Error::model_load(format!(
                "model folder {} does not exist or is not a folder",
                dir.display()
            )));
        }
        let files = ModelFiles {
            dir: dir.to_path_buf(),
            config: dir.join("config.json"),
            tokenizer: dir.join("tokenizer.json"),
            weights: dir.join("model.safetensors"),
        };
        for f in [&files.config, &files.tokenizer, &files.weights] {
            if !f.is_file() {
                return Err(Error::model_load(format!(
                    "{} is missing (a model folder needs config.json, tokenizer.json and model.safetensors)",
                    f.display()
                )));
            }
        }
        Ok(files)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::model_load(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::model_load(format!("{} is not a valid {what}: {e}", path.display())))
}

pub fn read_bert_config(path: &Path) -> Result<BertConfig> {
    let c: BertConfig = read_json(path, "BERT config")?;
    let bad = |why: String| Error::model_load(format!("{}: {why}", path.display()));
    if !matches!(c.model_type.as_str(), "bert") {
        return Err(bad(format!(
            "model_type '{}' is not supported; the embedder loads BERT-family encoders (model_type \"bert\")",
            c.model_type
        )));
    }
    if let Some(p) = c.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
        return Err(bad(format!("position_embedding_type '{p}' is not supported (only \"absolute\")")));
    }
    if c.hidden_size == 0 || c.num_attention_heads == 0 || c.hidden_size % c.num_attention_heads != 0 {
        return Err(bad(format!(
            "hidden_size {} must be a positive multiple of num_attention_heads {}",
            c.hidden_size, c.num_attention_heads
        )));
    }
    if c.vocab_size == 0 || c.max_position_embeddings == 0 || c.num_hidden_layers == 0 {
        return Err(bad("vocab_size, max_position_embeddings and num_hidden_layers must be positive".into()));
    }
    Ok(c)
}

#[derive(Deserialize)]
struct StBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct StPooling {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

#[derive(Deserialize)]
struct StModule {
    #[serde(rename = "type")]
    kind: String,
}

/// Reads the sentence-transformers files when present; a present but unreadable file is an
/// error naming it (silently ignoring it would change the vectors).
pub fn read_sentence_config(dir: &Path) -> Result<SentenceConfig> {
    let mut sc = SentenceConfig::default();
    let st = dir.join("sentence_bert_config.json");
    if st.is_file() {
        sc.max_seq_length = read_json::<StBertConfig>(&st, "sentence-transformers config")?.max_seq_length;
    }
    let pooling = dir.join("1_Pooling").join("config.json");
    if pooling.is_file() {
        let p: StPooling = read_json(&pooling, "pooling config")?;
        sc.pooling = match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens) {
            (true, false) => Some(Pooling::Cls),
            (false, true) => Some(Pooling::Mean),
            _ => None,
        };
        if p.pooling_mode_max_tokens || p.pooling_mode_mean_sqrt_len_tokens || sc.pooling.is_none() {
            return Err(Error::model_load(format!(
                "{}: only mean or cls pooling (one of them) is supported",
                pooling.display()
            )));
        }
    }
    let modules = dir.join("modules.json");
    if modules.is_file() {
        let m: Vec<StModule> = read_json(&modules, "modules list")?;
        sc.normalize = Some(m.iter().any(|m| m.kind.ends_with("Normalize")));
    }
    Ok(sc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn folder(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxinfer-config-{}-{}", std::process::id(), files.len()));
        let _ = fs::remove_dir_all(&dir);
        for (name, text) in files {
            let p = dir.join(name);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        dir
    }

    const BERT: &str = r#"{"model_type":"bert","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
        "num_attention_heads":2,"intermediate_size":16,"hidden_act":"gelu","max_position_embeddings":32}"#;

    #[test]
    fn bert_config_is_checked_and_names_the_file() {
        let dir = folder(&[("config.json", BERT)]);
        let c = read_bert_config(&dir.join("config.json")).unwrap();
        assert_eq!((c.hidden_size, c.hidden_act, c.type_vocab_size), (8, Activation::Gelu, 2));
        for (bad, why) in [
            (BERT.replace("\"bert\"", "\"roberta\""), "model_type 'roberta' is not supported"),
            (BERT.replace("\"hidden_size\":8", "\"hidden_size\":7"), "multiple of num_attention_heads"),
            (BERT.replace("\"gelu\"", "\"swiglu\""), "not a valid BERT config"),
            ("[]".to_string(), "not a valid BERT config"),
        ] {
            fs::write(dir.join("config.json"), &bad).unwrap();
            let e = read_bert_config(&dir.join("config.json")).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::ModelLoad);
            assert!(e.message.contains("config.json") && e.message.contains(why), "{}", e.message);
        }
    }

    #[test]
    fn sentence_transformers_settings() {
        let dir = folder(&[
            ("sentence_bert_config.json", r#"{"max_seq_length": 128}"#),
            ("1_Pooling/config.json", r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#),
            ("modules.json", r#"[{"type":"sentence_transformers.models.Transformer"}]"#),
        ]);
        let sc = read_sentence_config(&dir).unwrap();
        assert_eq!((sc.max_seq_length, sc.pooling, sc.normalize), (Some(128), Some(Pooling::Cls), Some(false)));
        fs::write(dir.join("1_Pooling/config.json"), r#"{"pooling_mode_max_tokens": true}"#).unwrap();
        assert!(read_sentence_config(&dir).unwrap_err().message.contains("only mean or cls pooling"));
    }
}
