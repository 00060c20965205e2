//! `[model]`: which policy to build and how to train and sample it.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use crate::config::{Issues, Section};

/// `[model]`: the policy network, its device, optimiser and generation limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Architecture preset for a from-scratch model: "tiny" (~1M params), "mini" (~3M) or "small" (~13M).
    /// Ignored when `path` names a pretrained folder.
    pub preset: String,
    /// Hugging Face model folder (config.json, model.safetensors, tokenizer.json);
    /// "" trains the preset from scratch with a tokenizer built over the task text.
    pub path: String,
    /// Where tensors live: "cpu", or "cuda:N" (needs the `cuda` cargo feature).
    pub device: String,
    /// AdamW learning rate of the actor (every decoder parameter).
    pub lr: f64,
    /// AdamW learning rate of the value head (PPO critic).
    pub critic_lr: f64,
    /// Learning-rate schedule over `train.steps` updates: "constant", "linear" or "cosine"
    /// (decay from `lr` / `critic_lr` to `lr_min_ratio` of them, after `lr_warmup_steps`).
    pub lr_schedule: String,
    /// Floor of a decaying schedule, as a fraction of the base rates.
    pub lr_min_ratio: f64,
    /// Updates over which the rates rise linearly from near 0 to their base (0 = none).
    pub lr_warmup_steps: u64,
    /// AdamW decoupled weight decay, applied to every parameter.
    pub weight_decay: f64,
    /// AdamW first-moment decay.
    pub beta1: f64,
    /// AdamW second-moment decay.
    pub beta2: f64,
    /// AdamW denominator epsilon.
    pub eps: f64,
    /// Clip the global gradient L2 norm to this value; 0 turns clipping off.
    pub grad_clip: f64,
    /// New tokens per reply at most.
    pub max_new_tokens: usize,
    /// Tokens the model attends over at most (prompt + reply); also the RoPE table length.
    pub context_limit: usize,
    /// On a prompt that leaves no room for `max_new_tokens` within `context_limit`: true keeps
    /// its last tokens (drops the oldest), false fails the request with an error.
    pub truncate_long_prompts: bool,
    /// Prompt caches kept between generation calls (0 = none): an episode's next turn then
    /// prefills only the tokens it added. Each holds a prompt's keys and values for every layer.
    pub prompt_cache_entries: usize,
    /// Vocabulary size of the byte-level BPE tokenizer built for from-scratch presets
    /// (256 bytes + merges + 3 specials).
    pub tokenizer_vocab: usize,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            preset: "tiny".into(),
            path: String::new(),
            device: "cpu".into(),
            lr: 1e-4,
            critic_lr: 1e-3,
            lr_schedule: "constant".into(),
            lr_min_ratio: 0.1,
            lr_warmup_steps: 0,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_clip: 1.0,
            max_new_tokens: 64,
            context_limit: 1024,
            truncate_long_prompts: false,
            prompt_cache_entries: 64,
            tokenizer_vocab: 512,
        }
    }
}

impl ModelSection {
    /// The learning-rate schedule of a run of `total` updates.
    pub fn lr_schedule(&self, total: u64) -> crate::policy::LrSchedule {
        crate::policy::LrSchedule {
            kind: crate::policy::ScheduleKind::parse(&self.lr_schedule)
                .unwrap_or(crate::policy::ScheduleKind::Constant),
            lr: self.lr,
            critic_lr: self.critic_lr,
            warmup: self.lr_warmup_steps,
            total,
            min_ratio: self.lr_min_ratio,
        }
    }
}

impl Section for ModelSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.check(
            self.path.is_empty() || std::path::Path::new(&self.path).is_dir(),
            &format!("{p}.path"),
            &self.path,
            "a folder",
        );
        issues.check(
            !self.path.is_empty() || crate::policy::arch::PRESETS.contains(&self.preset.as_str()),
            &format!("{p}.preset"),
            &self.preset,
            "one of tiny, small",
        );
        if let Err(e) = crate::policy::policy::parse_device(&self.device) {
            issues.push(format!("{p}.device"), e.to_string());
        }
        issues.range(&format!("{p}.lr"), self.lr, 0.0, 1.0);
        issues.range(&format!("{p}.critic_lr"), self.critic_lr, 0.0, 1.0);
        issues.check(
            crate::policy::ScheduleKind::parse(&self.lr_schedule).is_some(),
            &format!("{p}.lr_schedule"),
            &self.lr_schedule,
            &format!("one of {}", crate::policy::ScheduleKind::NAMES.join(", ")),
        );
        issues.range(&format!("{p}.lr_min_ratio"), self.lr_min_ratio, 0.0, 1.0);
        issues.range(
            &format!("{p}.lr_warmup_steps"),
            self.lr_warmup_steps,
            0,
            100_000_000,
        );
        issues.range(&format!("{p}.weight_decay"), self.weight_decay, 0.0, 1.0);
        issues.range(&format!("{p}.beta1"), self.beta1, 0.0, 0.999_999);
        issues.range(&format!("{p}.beta2"), self.beta2, 0.0, 0.999_999_9);
        issues.range(&format!("{p}.eps"), self.eps, 1e-12, 1.0);
        issues.range(&format!("{p}.grad_clip"), self.grad_clip, 0.0, 1e6);
        issues.range(
            &format!("{p}.max_new_tokens"),
            self.max_new_tokens,
            1,
            32_768,
        );
        issues.range(
            &format!("{p}.context_limit"),
            self.context_limit,
            2,
            131_072,
        );
        issues.check(
            self.max_new_tokens < self.context_limit,
            &format!("{p}.max_new_tokens"),
            self.max_new_tokens,
            "fewer than model.context_limit",
        );
        issues.range(
            &format!("{p}.tokenizer_vocab"),
            self.tokenizer_vocab,
            262,
            65_536,
        );
    }
}
