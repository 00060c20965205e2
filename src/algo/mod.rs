//! PPO, GRPO, advantages and instance filtering: pure math, no channels.
//!
//! - [`advantages`]: GAE (current verl, plus the legacy and RAGEN variants), GRPO, whitening, on
//!   plain `f64` batches `[B][T]`.
//! - [`loss`]: policy, value, entropy and KL losses on candle tensors `[B, T]`, differentiable.
//! - [`filter`]: instance filtering and trajectory selection.
//! - [`config`]: the `[algo]` config section.
//!
//! Formulas follow verl HEAD `b178a3cd`; `shared/reference/README.md` Part B states them exactly.

pub mod advantages;
pub mod config;
pub mod filter;
pub mod loss;

pub use advantages::{
    Batch, GaeOutput, GaeVariant, GrpoOutput, Whitened, gae, gae_variant, grpo_advantages,
    grpo_scalars, masked_mean, masked_sum, masked_var, masked_whiten,
};
/// Plain mean and unbiased spread, shared with the experiment's summaries so that the table and
/// the curves use the same definition as GRPO's group statistics.
pub(crate) use advantages::{mean, unbiased_std};
pub use config::{AlgoConfig, AlgoKind};
pub use filter::{filter_and_select, filter_groups, groups_to_keep, select_trajectories};
pub use loss::{
    AggMode, KlKind, PolicyLossOut, PpoClip, ValueLossOut, actor_loss, agg_loss, batch_tensor,
    entropy_from_logits, kl_penalty, masked_mean_scalar, policy_loss, value_loss,
};

/// Problems with the inputs of the RL math.
#[derive(Debug, thiserror::Error)]
pub enum AlgoError {
    /// Inputs that must share a shape do not.
    #[error("{what}: inputs differ in shape: {detail}")]
    Shape { what: &'static str, detail: String },
    /// A statistic over the unmasked positions was asked of a batch with none.
    #[error("{0}: the mask selects no position")]
    EmptyMask(&'static str),
    /// A name (aggregation mode, KL kind, algorithm) that is not one we know.
    #[error("unknown {what} {name:?}; expected one of {allowed}")]
    UnknownName {
        what: &'static str,
        name: String,
        allowed: String,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
