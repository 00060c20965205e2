//! The shape of a Qwen2-family decoder: read from a Hugging Face `config.json` or a named preset.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::PolicyError;

/// Preset names accepted by `[model] preset`.
pub const PRESETS: &[&str] = &["tiny", "mini", "small"];

/// Everything the forward pass needs to know about the network's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Rows of the embedding table (and of the LM head).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (GQA); divides `num_heads`.
    pub num_kv_heads: usize,
    /// Width of one head; Qwen2 fixes it to hidden/heads.
    pub head_dim: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Whether the LM head reuses the embedding matrix (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    /// Longest position the model was built for.
    pub max_position_embeddings: usize,
}

impl Arch {
    /// Read `config.json` of a Qwen2 checkpoint. Accepts the transformers 4.x top-level
    /// `rope_theta` and the 5.x `rope_parameters.rope_theta`; rejects other architectures and
    /// RoPE scaling types this implementation does not do.
    pub fn from_config_json(path: &Path) -> Result<Arch, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| PolicyError::bad_file(path, format!("not JSON: {e}")))?;
        let bad = |m: String| PolicyError::bad_file(path, m);
        let model_type = v.get("model_type").and_then(|x| x.as_str()).unwrap_or("");
        if model_type != "qwen2" {
            return Err(bad(format!(
                "unknown architecture: model_type {model_type:?} (only \"qwen2\" is supported)"
            )));
        }
        let int = |key: &str| -> Result<usize, PolicyError> {
            v.get(key)
                .and_then(|x| x.as_u64())
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("missing or non-integer key {key:?}")))
        };
        let rope = v.get("rope_parameters").filter(|x| !x.is_null());
        if let Some(kind) = rope
            .and_then(|r| r.get("rope_type"))
            .and_then(|t| t.as_str())
            && kind != "default"
        {
            return Err(bad(format!(
                "rope_type {kind:?} is not supported (only \"default\")"
            )));
        }
        if v.get("rope_scaling").is_some_and(|x| !x.is_null()) {
            return Err(bad("rope_scaling is not supported".into()));
        }
        let rope_theta = rope
            .and_then(|r| r.get("rope_theta"))
            .or_else(|| v.get("rope_theta"))
            .and_then(|x| x.as_f64())
            .unwrap_or(10_000.0);
        let num_heads = int("num_attention_heads")?;
        let hidden_size = int("hidden_size")?;
        let arch = Arch {
            vocab_size: int("vocab_size")?,
            hidden_size,
            intermediate_size: int("intermediate_size")?,
            num_layers: int("num_hidden_layers")?,
            num_heads,
            num_kv_heads: v
                .get("num_key_value_heads")
                .and_then(|x| x.as_u64())
                .map_or(num_heads, |x| x as usize),
            head_dim: v
                .get("head_dim")
                .and_then(|x| x.as_u64())
                .map_or(hidden_size / num_heads.max(1), |x| x as usize),
            rope_theta,
            rms_norm_eps: v
                .get("rms_norm_eps")
                .and_then(|x| x.as_f64())
                .unwrap_or(1e-6),
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(|x| x.as_bool())
                .unwrap_or(false),
            max_position_embeddings: v
                .get("max_position_embeddings")
                .and_then(|x| x.as_u64())
                .map_or(32_768, |x| x as usize),
        };
        arch.check().map_err(bad)?;
        Ok(arch)
    }

    /// Internal consistency; the message names the offending fields.
    pub fn check(&self) -> Result<(), String> {
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            return Err(format!(
                "num_attention_heads {} must be a positive multiple of num_key_value_heads {}",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim {} must be even and positive",
                self.head_dim
            ));
        }
        if [
            self.vocab_size,
            self.hidden_size,
            self.intermediate_size,
            self.num_layers,
        ]
        .contains(&0)
        {
            return Err(
                "vocab_size, hidden_size, intermediate_size and num_hidden_layers must be positive"
                    .into(),
            );
        }
        // Far above any Qwen2-family model (Qwen2-72B: 80 layers, hidden 8192, intermediate
        // 29568, vocab 152064); a config.json beyond them is broken, and building its tensor
        // list would exhaust memory before any weight file is read.
        for (name, value, max) in [
            ("vocab_size", self.vocab_size, 1 << 22),
            ("hidden_size", self.hidden_size, 1 << 16),
            ("intermediate_size", self.intermediate_size, 1 << 18),
            ("num_hidden_layers", self.num_layers, 1 << 10),
            ("num_attention_heads", self.num_heads, 1 << 10),
            ("head_dim", self.head_dim, 1 << 12),
        ] {
            if value > max {
                return Err(format!("{name} {value} is beyond {max}"));
            }
        }
        Ok(())
    }

    /// The `config.json` a Hugging Face loader accepts for this shape (both RoPE key forms).
    pub fn to_config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            "hidden_act": "silu",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rope_theta": self.rope_theta,
            "rope_parameters": {"rope_theta": self.rope_theta, "rope_type": "default"},
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "torch_dtype": "float32",
        })
    }

    /// Parameter count including the (tied or untied) LM head.
    pub fn num_params(&self) -> usize {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (q, kv) = (self.num_heads * d, self.num_kv_heads * d);
        let layer = h * q + q + 2 * (h * kv + kv) + q * h + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + self.num_layers * layer + h + head
    }

    /// Multiply-adds per token of the forward pass, excluding attention over the context.
    pub fn matmul_flops_per_token(&self) -> f64 {
        // The embedding lookup is free; a tied table is also the LM head matmul.
        let lookup = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * self.hidden_size
        };
        2.0 * (self.num_params() - lookup) as f64
    }
}

/// The named from-scratch shapes; `vocab_size` comes from the tokenizer.
pub fn preset_arch(name: &str, vocab_size: usize, context: usize) -> Result<Arch, PolicyError> {
    let (hidden, inter, layers, heads, kv) = match name {
        "tiny" => (128, 352, 4, 4, 2),
        // Twice tiny's width (4x its weights, ~3M): for tasks whose rules tiny learns only in part.
        "mini" => (256, 704, 4, 4, 2),
        "small" => (384, 1024, 8, 6, 2),
        other => {
            return Err(PolicyError::Config(format!(
                "unknown preset {other:?}; expected one of {}",
                PRESETS.join(", ")
            )));
        }
    };
    Ok(Arch {
        vocab_size,
        hidden_size: hidden,
        intermediate_size: inter,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: kv,
        head_dim: hidden / heads,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        max_position_embeddings: context.max(2048),
    })
}
