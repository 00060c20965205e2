//! Advantage estimation on plain `f64` batches shaped `[B][T]` (no gradients flow through
//! advantages, so tensors would only add cost). Semantics follow verl HEAD `b178a3cd`
//! (`core_algos.py`, `torch_functional.py`); see `shared/reference/README.md` Part B.

use std::collections::HashMap;
use std::hash::Hash;

use super::AlgoError;

/// A batch of per-token values, `[B][T]`.
pub type Batch = Vec<Vec<f64>>;

/// verl adds this to the token count of every masked mean; it is kept for bit-level parity.
const MEAN_EPS: f64 = 1e-8;
/// verl adds this to the variance before the square root when whitening.
const WHITEN_EPS: f64 = 1e-8;

/// Check that every batch in `others` has the rows and row lengths of `first`.
pub(crate) fn check_same_shape(
    what: &'static str,
    first: &[Vec<f64>],
    others: &[&[Vec<f64>]],
) -> Result<(), AlgoError> {
    for other in others {
        if other.len() != first.len() {
            return Err(AlgoError::Shape {
                what,
                detail: format!("{} rows vs {} rows", first.len(), other.len()),
            });
        }
        for (row, (a, b)) in first.iter().zip(other.iter()).enumerate() {
            if a.len() != b.len() {
                return Err(AlgoError::Shape {
                    what,
                    detail: format!("row {row} has {} vs {} positions", a.len(), b.len()),
                });
            }
        }
    }
    Ok(())
}

/// `Σ where(m, x, 0)·m`: a value at a masked position never leaks in, even if it is NaN.
pub fn masked_sum(x: &[Vec<f64>], mask: &[Vec<f64>]) -> Result<f64, AlgoError> {
    check_same_shape("masked_sum", x, &[mask])?;
    Ok(x.iter()
        .zip(mask)
        .flat_map(|(xr, mr)| xr.iter().zip(mr))
        .map(|(&v, &m)| if m != 0.0 { v * m } else { 0.0 })
        .sum())
}

/// `masked_sum / (Σm + 1e-8)`, over the whole batch.
pub fn masked_mean(x: &[Vec<f64>], mask: &[Vec<f64>]) -> Result<f64, AlgoError> {
    let count: f64 = mask.iter().flatten().sum();
    Ok(masked_sum(x, mask)? / (count + MEAN_EPS))
}

/// Unbiased masked variance over the whole batch: `masked_mean((x − mean)²)·n/(n−1)`.
/// With one unmasked token verl divides by zero (NaN); the Bessel factor is dropped there instead
/// so a degenerate batch whitens to finite values. No unmasked token at all is an error.
pub fn masked_var(x: &[Vec<f64>], mask: &[Vec<f64>]) -> Result<f64, AlgoError> {
    let mean = masked_mean(x, mask)?;
    let centered: Batch = x
        .iter()
        .map(|row| row.iter().map(|v| (v - mean).powi(2)).collect())
        .collect();
    let variance = masked_mean(&centered, mask)?;
    let count: f64 = mask.iter().flatten().sum();
    if count == 0.0 {
        return Err(AlgoError::EmptyMask("masked_var"));
    }
    let bessel = if count == 1.0 {
        1.0
    } else {
        count / (count - 1.0)
    };
    Ok(variance * bessel)
}

/// The result of whitening, with the statistics used (logged by the learner).
#[derive(Debug, Clone, PartialEq)]
pub struct Whitened {
    /// `(x − mean)·rsqrt(var + 1e-8)` at every position, masked or not.
    pub values: Batch,
    /// Masked mean over the whole batch.
    pub mean: f64,
    /// Unbiased masked variance over the whole batch.
    pub var: f64,
}

/// Whiten with statistics from the unmasked positions of the whole batch (not per row), applied
/// to all positions including masked ones, as verl does; losses mask those out later.
pub fn masked_whiten(x: &[Vec<f64>], mask: &[Vec<f64>]) -> Result<Whitened, AlgoError> {
    let mean = masked_mean(x, mask)?;
    let var = masked_var(x, mask)?;
    let scale = 1.0 / (var + WHITEN_EPS).sqrt();
    let values = x
        .iter()
        .map(|row| row.iter().map(|v| (v - mean) * scale).collect())
        .collect();
    Ok(Whitened { values, mean, var })
}

/// Which GAE recursion to run. Only [`GaeVariant::Verl`] is used for training; the others are
/// kept because the reference vectors carry their outputs and they document what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaeVariant {
    /// verl >= v0.5.0 (PR #2337): mask=0 positions are skipped, carrying `nextvalue` and
    /// `lastgaelam` through them; returns = raw advantages + values at every position.
    Verl,
    /// verl <= v0.4.1: the recursion runs through every position; the mask only whitens.
    LegacyVerl,
    /// RAGEN: like `Verl` on mask=1 positions, but leaves 0 advantage and 0 return at mask=0.
    Ragen,
}

/// GAE output: advantages for the policy loss, returns as the critic's target.
#[derive(Debug, Clone, PartialEq)]
pub struct GaeOutput {
    /// Whitened advantages (or the raw ones when whitening is off), `[B][T]`.
    pub advantages: Batch,
    /// Value targets, `[B][T]`; meaningful on mask=1 positions only.
    pub returns: Batch,
    /// Advantages before whitening, for diagnostics.
    pub raw_advantages: Batch,
    /// Whitening mean (0 when whitening is off).
    pub whiten_mean: f64,
    /// Whitening variance, unbiased (1 when whitening is off).
    pub whiten_var: f64,
}

/// Raw GAE advantages and returns of one row.
fn gae_row(
    variant: GaeVariant,
    rewards: &[f64],
    values: &[f64],
    mask: &[f64],
    gamma: f64,
    lambda: f64,
) -> (Vec<f64>, Vec<f64>) {
    let len = rewards.len();
    let mut advantages = vec![0.0; len];
    let mut returns = vec![0.0; len];
    let mut next_value = 0.0;
    let mut last_gae_lam = 0.0;
    for t in (0..len).rev() {
        let valid = mask[t] != 0.0;
        match variant {
            GaeVariant::Verl => {
                let delta = rewards[t] + gamma * next_value - values[t];
                let candidate = delta + gamma * lambda * last_gae_lam;
                if valid {
                    next_value = values[t];
                    last_gae_lam = candidate;
                }
                advantages[t] = last_gae_lam;
                returns[t] = last_gae_lam + values[t];
            }
            GaeVariant::LegacyVerl => {
                let next = if t + 1 < len { values[t + 1] } else { 0.0 };
                let delta = rewards[t] + gamma * next - values[t];
                last_gae_lam = delta + gamma * lambda * last_gae_lam;
                advantages[t] = last_gae_lam;
                returns[t] = last_gae_lam + values[t];
            }
            GaeVariant::Ragen if valid => {
                let delta = rewards[t] + gamma * next_value - values[t];
                last_gae_lam = delta + gamma * lambda * last_gae_lam;
                next_value = values[t];
                advantages[t] = last_gae_lam;
                returns[t] = last_gae_lam + values[t];
            }
            GaeVariant::Ragen => {}
        }
    }
    (advantages, returns)
}

/// Generalised advantage estimation, per row from the end, then (if `whiten`) whitened over the
/// whole batch. `variant` picks the recursion; training uses [`GaeVariant::Verl`].
pub fn gae_variant(
    variant: GaeVariant,
    rewards: &[Vec<f64>],
    values: &[Vec<f64>],
    mask: &[Vec<f64>],
    gamma: f64,
    lambda: f64,
    whiten: bool,
) -> Result<GaeOutput, AlgoError> {
    check_same_shape("gae", rewards, &[values, mask])?;
    let (raw_advantages, returns): (Batch, Batch) = rewards
        .iter()
        .zip(values)
        .zip(mask)
        .map(|((r, v), m)| gae_row(variant, r, v, m, gamma, lambda))
        .unzip();
    let (advantages, whiten_mean, whiten_var) = if whiten {
        let w = masked_whiten(&raw_advantages, mask)?;
        (w.values, w.mean, w.var)
    } else {
        (raw_advantages.clone(), 0.0, 1.0)
    };
    Ok(GaeOutput {
        advantages,
        returns,
        raw_advantages,
        whiten_mean,
        whiten_var,
    })
}

/// Current-verl GAE: environment tokens (mask 0) are skipped by the recursion, so their rewards
/// and values are ignored; put the outcome reward on the last mask=1 token.
pub fn gae(
    rewards: &[Vec<f64>],
    values: &[Vec<f64>],
    mask: &[Vec<f64>],
    gamma: f64,
    lambda: f64,
    whiten: bool,
) -> Result<GaeOutput, AlgoError> {
    gae_variant(
        GaeVariant::Verl,
        rewards,
        values,
        mask,
        gamma,
        lambda,
        whiten,
    )
}

/// GRPO per-episode advantages: `(score − group mean)/(group std + eps)` with the unbiased std,
/// or `score − group mean` when `norm_by_std` is false. A group of one uses mean 0 and std 1.
pub fn grpo_scalars<K: Hash + Eq>(
    scores: &[f64],
    group_ids: &[K],
    norm_by_std: bool,
    eps: f64,
) -> Result<Vec<f64>, AlgoError> {
    if scores.len() != group_ids.len() {
        return Err(AlgoError::Shape {
            what: "grpo",
            detail: format!("{} scores vs {} group ids", scores.len(), group_ids.len()),
        });
    }
    let mut groups: HashMap<&K, Vec<f64>> = HashMap::new();
    for (id, &score) in group_ids.iter().zip(scores) {
        groups.entry(id).or_default().push(score);
    }
    let stats: HashMap<&K, (f64, f64)> = groups
        .into_iter()
        .map(|(id, members)| {
            let stats = if members.len() == 1 {
                (0.0, 1.0)
            } else {
                (mean(&members), unbiased_std(&members))
            };
            (id, stats)
        })
        .collect();
    Ok(scores
        .iter()
        .zip(group_ids)
        .map(|(score, id)| {
            let (mean, std) = stats[id];
            if norm_by_std {
                (score - mean) / (std + eps)
            } else {
                score - mean
            }
        })
        .collect())
}

/// GRPO output: the same advantage on every mask=1 token of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoOutput {
    /// `scalar·mask`, `[B][T]`. verl also uses these as the returns.
    pub advantages: Batch,
    /// Episode scores: the sum of token rewards over all positions (masked or not).
    pub scores: Vec<f64>,
    /// Per-episode advantage before broadcasting.
    pub scalars: Vec<f64>,
}

/// GRPO from token-level rewards, as verl's `compute_grpo_outcome_advantage`.
pub fn grpo_advantages<K: Hash + Eq>(
    token_rewards: &[Vec<f64>],
    mask: &[Vec<f64>],
    group_ids: &[K],
    norm_by_std: bool,
    eps: f64,
) -> Result<GrpoOutput, AlgoError> {
    check_same_shape("grpo", token_rewards, &[mask])?;
    let scores: Vec<f64> = token_rewards.iter().map(|row| row.iter().sum()).collect();
    let scalars = grpo_scalars(&scores, group_ids, norm_by_std, eps)?;
    let advantages = mask
        .iter()
        .zip(&scalars)
        .map(|(row, s)| row.iter().map(|m| s * m).collect())
        .collect();
    Ok(GrpoOutput {
        advantages,
        scores,
        scalars,
    })
}

pub(crate) fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Unbiased (N−1) standard deviation, as `torch.std`; 0 for fewer than two values.
pub(crate) fn unbiased_std(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singleton_grpo_group_divides_by_one_plus_eps() {
        let out = grpo_scalars(&[3.0, 1.0, 2.0], &["a", "b", "b"], true, 1e-6).unwrap();
        assert!((out[0] - 3.0 / (1.0 + 1e-6)).abs() < 1e-12);
        let std = unbiased_std(&[1.0, 2.0]);
        assert!((out[1] - (1.0 - 1.5) / (std + 1e-6)).abs() < 1e-12);
        let plain = grpo_scalars(&[3.0], &[0u32], false, 1e-6).unwrap();
        assert_eq!(plain, vec![3.0]);
    }

    #[test]
    fn grpo_rejects_mismatched_lengths() {
        assert!(grpo_scalars(&[1.0, 2.0], &[0u8], true, 1e-6).is_err());
    }

    #[test]
    fn all_masked_row_gets_carried_zero_and_batch_stats_ignore_it() {
        let rewards = vec![vec![0.0, 0.0, 1.0], vec![5.0, 5.0, 5.0]];
        let values = vec![vec![0.0; 3], vec![7.0; 3]];
        let mask = vec![vec![1.0, 1.0, 1.0], vec![0.0; 3]];
        let out = gae(&rewards, &values, &mask, 1.0, 1.0, true).unwrap();
        assert_eq!(out.raw_advantages[1], vec![0.0; 3]);
        assert_eq!(out.returns[1], vec![7.0; 3]);
        // Row 0 has raw advantages [1, 1, 1]; row 1 adds nothing to the statistics.
        assert!((out.whiten_mean - 3.0 / (3.0 + 1e-8)).abs() < 1e-12);
        assert!(out.advantages.iter().flatten().all(|v| v.is_finite()));
    }

    #[test]
    fn fully_masked_batch_is_an_error_not_a_nan() {
        let x = vec![vec![1.0, 2.0]];
        let mask = vec![vec![0.0, 0.0]];
        assert!(matches!(
            masked_whiten(&x, &mask),
            Err(AlgoError::EmptyMask(_))
        ));
    }

    #[test]
    fn env_tokens_cost_no_discount_step() {
        let rewards = vec![vec![0.0, 9.0, 1.0]];
        let values = vec![vec![0.0, 9.0, 0.0]];
        let mask = vec![vec![1.0, 0.0, 1.0]];
        let out = gae(&rewards, &values, &mask, 0.5, 1.0, false).unwrap();
        assert_eq!(out.raw_advantages[0][0], 0.5);
        assert_eq!(out.raw_advantages[0][1], 1.0);
    }

    #[test]
    fn shape_mismatch_is_reported() {
        let err = gae(
            &[vec![0.0; 2]],
            &[vec![0.0; 3]],
            &[vec![1.0; 2]],
            1.0,
            1.0,
            true,
        );
        assert!(matches!(err, Err(AlgoError::Shape { .. })));
    }
}
