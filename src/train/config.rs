//! `[train]`, `[actors]` and `[metrics]`: how long to train, how to validate and checkpoint, and
//! how the actor system is sized.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use crate::config::{Issues, Section};

/// `[train]`: the training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Optimizer updates (training steps) to run.
    pub steps: u64,
    /// Stop after this many minutes of wall time even if `steps` are not done (0 = no limit).
    pub max_minutes: f64,
    /// Training step k, group i plays instance seed train_seed + env_groups*k + i.
    pub train_seed: u64,
    /// Validation group i plays the fixed seed val_seed + i.
    pub val_seed: u64,
    /// Validation instances.
    pub val_groups: usize,
    /// Episodes per validation instance.
    pub val_group_size: usize,
    /// Validate every this many steps (and before training and at the end; 0 = only those).
    pub val_every: u64,
    /// Sampling temperature for training rollouts.
    pub temperature: f64,
    /// Sampling temperature for validation and `tsr eval` (ignored when val_greedy).
    pub val_temperature: f64,
    /// Validate with greedy decoding instead of sampling.
    pub val_greedy: bool,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f64,
    /// Sample only among the k likeliest tokens (0 = off).
    pub top_k: usize,
    /// Prompt form: "compact" (from-scratch presets; grid only), "compact_full" (compact with
    /// the whole observation, coordinates included), "compact_columns" (the grid, then the grid
    /// read column by column), "chat" (pretrained), or "auto".
    pub prompt_form: String,
    /// Write a checkpoint every this many steps (0 = only at the end).
    pub checkpoint_every: u64,
    /// Checkpoints kept besides the best one by validation success.
    pub keep_last: usize,
    /// Write readable sample trajectories every this many steps (0 = never).
    pub samples_every: u64,
    /// Episodes written per sample file.
    pub samples_per_file: usize,
    /// Rollouts for step k+1 may use weights up to this many versions old: 0 (synchronous) or 1
    /// (step k+1's rollouts overlap step k's update).
    pub policy_lag: u64,
    /// Stop the run after this many consecutive skipped (non-finite) updates.
    pub max_skipped_in_row: u64,
    /// Supervised steps teaching a from-scratch model the reply format on uniformly random
    /// valid actions before RL (0 = none; ignored for pretrained models).
    pub format_warmup_steps: usize,
    /// Synthetic episodes per format warm-up step.
    pub format_warmup_batch: usize,
    /// Learning rate of the format warm-up (the RL rate applies afterwards).
    pub format_warmup_lr: f64,
    /// Decode only well-formed replies (`<answer>a</answer>`, `<answer>a || b</answer>`, ...
    /// up to env.max_actions_per_turn actions) and train only the tokens where the model had a
    /// choice. For from-scratch models on the grid tasks with a compact prompt form.
    pub constrained_reply: bool,
    /// Instances replayed per step besides the `env_groups` fresh ones: instances whose
    /// training episodes failed (fewer than half succeeded) earlier in the run, oldest first
    /// (0 = off; see src/train/replay.rs).
    pub replay_groups: usize,
    /// Times one failed instance is replayed at most.
    pub replay_max: u32,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            steps: 200,
            max_minutes: 0.0,
            train_seed: 10_000,
            val_seed: 123,
            val_groups: 32,
            val_group_size: 16,
            val_every: 10,
            temperature: 1.0,
            val_temperature: 0.5,
            val_greedy: false,
            top_p: 1.0,
            top_k: 0,
            prompt_form: "auto".into(),
            checkpoint_every: 50,
            keep_last: 3,
            samples_every: 10,
            samples_per_file: 4,
            policy_lag: 1,
            max_skipped_in_row: 5,
            format_warmup_steps: 60,
            format_warmup_batch: 16,
            format_warmup_lr: 1e-3,
            constrained_reply: false,
            replay_groups: 0,
            replay_max: 2,
        }
    }
}

impl Section for TrainSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.range(&format!("{p}.steps"), self.steps, 1, 100_000_000);
        issues.range(&format!("{p}.max_minutes"), self.max_minutes, 0.0, 1e7);
        issues.range(&format!("{p}.val_groups"), self.val_groups, 1, 100_000);
        issues.range(
            &format!("{p}.val_group_size"),
            self.val_group_size,
            1,
            10_000,
        );
        issues.range(&format!("{p}.temperature"), self.temperature, 1e-3, 100.0);
        issues.range(
            &format!("{p}.val_temperature"),
            self.val_temperature,
            1e-3,
            100.0,
        );
        issues.range(&format!("{p}.top_p"), self.top_p, 1e-6, 1.0);
        let forms = ["compact", "compact_full", "compact_columns", "chat", "auto"];
        issues.check(
            forms.contains(&self.prompt_form.as_str()),
            &format!("{p}.prompt_form"),
            &self.prompt_form,
            "one of compact, compact_full, compact_columns, chat, auto",
        );
        issues.range(&format!("{p}.keep_last"), self.keep_last, 1, 1000);
        // The actor system keeps at most one update in flight while the next step's rollouts
        // run, so a lag above 1 would be accepted and behave as 1: refused instead.
        issues.range(&format!("{p}.policy_lag"), self.policy_lag, 0, 1);
        issues.range(
            &format!("{p}.replay_groups"),
            self.replay_groups,
            0,
            100_000,
        );
        issues.range(&format!("{p}.replay_max"), self.replay_max, 1, 1000);
        issues.range(
            &format!("{p}.format_warmup_lr"),
            self.format_warmup_lr,
            0.0,
            1.0,
        );
        issues.range(
            &format!("{p}.format_warmup_batch"),
            self.format_warmup_batch,
            1,
            100_000,
        );
        issues.range(
            &format!("{p}.max_skipped_in_row"),
            self.max_skipped_in_row,
            1,
            1_000_000,
        );
    }
}

/// Checks of `[train]` against other sections.
pub fn cross_check(config: &crate::config::Config, issues: &mut Issues) {
    if !config.train.constrained_reply {
        return;
    }
    if !["sokoban", "frozenlake"].contains(&config.env.task.as_str()) {
        issues.push(
            "train.constrained_reply",
            format!(
                "has no reply grammar for task {:?} (only sokoban and frozenlake)",
                config.env.task
            ),
        );
    }
    if config.train.prompt_form == "chat" || !config.model.path.is_empty() {
        issues.push(
            "train.constrained_reply",
            "needs a compact prompt form (the chat form's replies carry free <think> text)",
        );
    }
    // 4 actions: 4 + 16 + ... + 4^k replies in the trie.
    if config.env.max_actions_per_turn > 6 {
        issues.push(
            "train.constrained_reply",
            format!(
                "allows at most 6 actions per turn (env.max_actions_per_turn = {}: 4^{} replies)",
                config.env.max_actions_per_turn, config.env.max_actions_per_turn
            ),
        );
    }
}

/// `[actors]`: counts and queue bounds of the actor system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct ActorsSection {
    /// Search actors, each driving one episode at a time; more of them fill inference batches.
    pub search_actors: usize,
    /// Environment actors owning the real environments (episodes are spread over them).
    pub env_actors: usize,
    /// Inference batch: at most this many sequences (candidates count one each).
    pub max_batch: usize,
    /// Inference batch: at most this many prompt tokens in total.
    pub max_batch_tokens: usize,
    /// Inference batch: send it once its oldest request has waited this long (milliseconds).
    pub max_wait_ms: f64,
    /// Bound of every queue between actors; a full queue makes its sender wait.
    pub queue_bound: usize,
}

impl Default for ActorsSection {
    fn default() -> Self {
        Self {
            search_actors: 8,
            env_actors: 2,
            max_batch: 64,
            max_batch_tokens: 32_768,
            max_wait_ms: 5.0,
            queue_bound: 256,
        }
    }
}

impl Section for ActorsSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.range(&format!("{p}.search_actors"), self.search_actors, 1, 1024);
        issues.range(&format!("{p}.env_actors"), self.env_actors, 1, 1024);
        issues.range(&format!("{p}.max_batch"), self.max_batch, 1, 4096);
        issues.range(
            &format!("{p}.max_batch_tokens"),
            self.max_batch_tokens,
            16,
            10_000_000,
        );
        issues.range(&format!("{p}.max_wait_ms"), self.max_wait_ms, 0.0, 60_000.0);
        issues.range(&format!("{p}.queue_bound"), self.queue_bound, 1, 1_000_000);
    }
}

/// `[metrics]`: the Prometheus endpoint and console status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Address to serve /metrics on; port 0 disables. Loopback unless you mean otherwise.
    pub listen: String,
    /// Seconds between one-line status reports when stderr is not a terminal.
    pub status_interval_s: f64,
    /// Keep serving /metrics this many seconds after the run ends, so that Prometheus scrapes
    /// the final values (0 = exit at once).
    pub linger_s: f64,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9464".into(),
            status_interval_s: 10.0,
            linger_s: 0.0,
        }
    }
}

impl Section for MetricsSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        let ok = self.listen.parse::<std::net::SocketAddr>().is_ok();
        issues.check(
            ok,
            &format!("{p}.listen"),
            &self.listen,
            "an address like 127.0.0.1:9464 (port 0 disables)",
        );
        issues.range(
            &format!("{p}.status_interval_s"),
            self.status_interval_s,
            0.1,
            86_400.0,
        );
        issues.range(&format!("{p}.linger_s"), self.linger_s, 0.0, 86_400.0);
    }
}
