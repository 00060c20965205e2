//! `[algo]`: which RL algorithm, its losses, and which rollouts it trains on.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::AlgoError;
use super::loss::{AggMode, KlKind, PpoClip};
use crate::config::{Issues, Section};

/// The RL algorithms tsr trains with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgoKind {
    /// PPO with a critic and GAE advantages.
    Ppo,
    /// GRPO: no critic, advantages from the group's returns.
    Grpo,
}

impl AlgoKind {
    pub const NAMES: &'static [&'static str] = &["ppo", "grpo"];

    pub fn parse(name: &str) -> Result<AlgoKind, AlgoError> {
        match name {
            "ppo" => Ok(AlgoKind::Ppo),
            "grpo" => Ok(AlgoKind::Grpo),
            _ => Err(AlgoError::UnknownName {
                what: "algorithm",
                name: name.to_owned(),
                allowed: Self::NAMES.join(", "),
            }),
        }
    }
}

/// `[algo]`: the RL algorithm and its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct AlgoConfig {
    /// Algorithm: "ppo" (critic + GAE) or "grpo" (group-relative advantages, no critic).
    pub kind: String,
    /// PPO ratio clip below: the ratio is clipped at 1 - clip_low.
    pub clip_low: f64,
    /// PPO ratio clip above: the ratio is clipped at 1 + clip_high ("clip-higher").
    pub clip_high: f64,
    /// Dual clip: for negative advantages the loss is capped at -A * dual_clip (must be > 1).
    pub dual_clip: f64,
    /// Critic predictions are clipped to old value +- value_clip in the value loss (PPO only).
    pub value_clip: f64,
    /// Weight of the value loss in the total loss (PPO only). The critic shares the policy's
    /// trunk, so its gradient also moves the policy's features.
    pub value_coef: f64,
    /// Weight of the entropy bonus subtracted from the actor loss (0 = none).
    pub entropy_coef: f64,
    /// Weight of the KL penalty to a frozen reference model (0 = no KL and no reference model).
    pub kl_coef: f64,
    /// KL estimator when kl_coef > 0: "k1", "abs", "k2" or "low_var_kl".
    pub kl_kind: String,
    /// GAE discount per assistant token (environment tokens take no step).
    pub gamma: f64,
    /// GAE lambda.
    pub lambda: f64,
    /// GRPO: divide by the group's std (false = only subtract the group mean, Dr. GRPO style).
    pub grpo_norm_by_std: bool,
    /// GRPO: added to the group std before dividing.
    pub grpo_eps: f64,
    /// Whiten GAE advantages over the whole batch (mean 0, unbiased variance 1).
    pub whiten: bool,
    /// Loss aggregation: "token-mean", "seq-mean-token-sum", "seq-mean-token-mean" or
    /// "seq-mean-token-sum-norm".
    pub loss_agg: String,
    /// Passes of the optimizer over each batch of rollouts.
    pub ppo_epochs: usize,
    /// Optimizer steps per pass: the batch's episodes are split into this many minibatches
    /// (capped at the number of episodes trained). More steps per rollout, same compute.
    pub minibatches: usize,
    /// Instance filtering: share of groups kept, those whose returns vary most (1 = keep all;
    /// at least one group is always kept).
    pub filter_ratio: f64,
    /// Task instances per training step; all episodes of a group play the same instance.
    pub env_groups: usize,
    /// Episodes per task instance.
    pub group_size: usize,
}

impl Default for AlgoConfig {
    fn default() -> Self {
        Self {
            kind: "ppo".into(),
            clip_low: 0.2,
            clip_high: 0.28,
            dual_clip: 3.0,
            value_clip: 0.5,
            value_coef: 1.0,
            entropy_coef: 0.001,
            kl_coef: 0.0,
            kl_kind: "low_var_kl".into(),
            gamma: 1.0,
            lambda: 1.0,
            grpo_norm_by_std: true,
            grpo_eps: 1e-6,
            whiten: true,
            loss_agg: "token-mean".into(),
            ppo_epochs: 1,
            minibatches: 1,
            filter_ratio: 0.25,
            env_groups: 8,
            group_size: 16,
        }
    }
}

impl AlgoConfig {
    pub fn algo_kind(&self) -> Result<AlgoKind, AlgoError> {
        AlgoKind::parse(&self.kind)
    }

    pub fn kl_kind(&self) -> Result<KlKind, AlgoError> {
        KlKind::parse(&self.kl_kind)
    }

    pub fn agg_mode(&self) -> Result<AggMode, AlgoError> {
        AggMode::parse(&self.loss_agg)
    }

    pub fn ppo_clip(&self) -> PpoClip {
        PpoClip {
            low: self.clip_low,
            high: self.clip_high,
            dual_c: self.dual_clip,
        }
    }
}

impl Section for AlgoConfig {
    fn validate(&self, p: &str, issues: &mut Issues) {
        let key = |field: &str| format!("{p}.{field}");
        issues.check(
            AlgoKind::parse(&self.kind).is_ok(),
            &key("kind"),
            &self.kind,
            &format!("one of {}", AlgoKind::NAMES.join(", ")),
        );
        issues.range(&key("clip_low"), self.clip_low, 0.0, 0.99);
        issues.range(&key("clip_high"), self.clip_high, 0.0, 10.0);
        issues.check(
            self.dual_clip > 1.0 && self.dual_clip <= 1000.0,
            &key("dual_clip"),
            self.dual_clip,
            "a value in (1, 1000]",
        );
        issues.range(&key("value_clip"), self.value_clip, 0.0, 1000.0);
        issues.range(&key("value_coef"), self.value_coef, 0.0, 1000.0);
        issues.range(&key("entropy_coef"), self.entropy_coef, 0.0, 1.0);
        issues.range(&key("kl_coef"), self.kl_coef, 0.0, 10.0);
        issues.check(
            KlKind::parse(&self.kl_kind).is_ok(),
            &key("kl_kind"),
            &self.kl_kind,
            &format!("one of {}", KlKind::NAMES.join(", ")),
        );
        issues.range(&key("gamma"), self.gamma, 0.0, 1.0);
        issues.range(&key("lambda"), self.lambda, 0.0, 1.0);
        issues.check(
            self.grpo_eps > 0.0 && self.grpo_eps <= 1.0,
            &key("grpo_eps"),
            self.grpo_eps,
            "a value in (0, 1]",
        );
        issues.check(
            AggMode::parse(&self.loss_agg).is_ok(),
            &key("loss_agg"),
            &self.loss_agg,
            &format!("one of {}", AggMode::NAMES.join(", ")),
        );
        issues.range(&key("ppo_epochs"), self.ppo_epochs, 1, 100);
        issues.range(&key("minibatches"), self.minibatches, 1, 1024);
        issues.check(
            self.filter_ratio > 0.0 && self.filter_ratio <= 1.0,
            &key("filter_ratio"),
            self.filter_ratio,
            "a value in (0, 1]",
        );
        issues.range(&key("env_groups"), self.env_groups, 1, 100_000);
        issues.range(&key("group_size"), self.group_size, 1, 100_000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_parse() {
        let config = AlgoConfig::default();
        let mut issues = Issues::default();
        config.validate("algo", &mut issues);
        assert!(issues.0.is_empty(), "{:?}", issues.0);
        assert_eq!(config.algo_kind().unwrap(), AlgoKind::Ppo);
        assert_eq!(config.kl_kind().unwrap(), KlKind::LowVarKl);
        assert_eq!(config.agg_mode().unwrap(), AggMode::TokenMean);
    }

    #[test]
    fn every_bad_value_is_reported_with_its_key() {
        let config = AlgoConfig {
            kind: "a2c".into(),
            clip_low: 1.5,
            dual_clip: 1.0,
            kl_kind: "k9".into(),
            gamma: 1.1,
            grpo_eps: 0.0,
            loss_agg: "sum".into(),
            ppo_epochs: 0,
            filter_ratio: 0.0,
            group_size: 0,
            ..AlgoConfig::default()
        };
        let mut issues = Issues::default();
        config.validate("algo", &mut issues);
        let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "algo.kind",
                "algo.clip_low",
                "algo.dual_clip",
                "algo.kl_kind",
                "algo.gamma",
                "algo.grpo_eps",
                "algo.loss_agg",
                "algo.ppo_epochs",
                "algo.filter_ratio",
                "algo.group_size",
            ]
        );
    }
}
