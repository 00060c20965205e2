//! PPO losses on candle tensors shaped `[B, T]` (f32), differentiable with respect to the
//! current log-probs / value predictions / logits. Every other input (old log-probs, advantages,
//! returns, mask) is a constant. Only ops with a backward pass are used; the gradients are checked
//! against verl's in `tests/rl_conformance.rs`. Semantics: verl HEAD `b178a3cd`.

use candle_core::{D, DType, Device, Tensor};

use super::AlgoError;

/// verl clamps the log-ratio before `exp` so one wild token cannot overflow the batch.
const LOG_RATIO_CLAMP: f64 = 20.0;
/// verl's `masked_mean` epsilon, used here for the logged fractions.
const MEAN_EPS: f64 = 1e-8;

/// How per-token losses become one scalar (verl's `loss_agg_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggMode {
    /// `Σ(loss·m) / Σm`: every unmasked token of the batch weighs the same.
    TokenMean,
    /// Mean over non-empty rows of `Σ_t loss·m`.
    SeqMeanTokenSum,
    /// Mean over non-empty rows of `Σ_t loss·m / (Σ_t m + 1e-8)`.
    SeqMeanTokenMean,
    /// `Σ(loss·m) / T` with T the mask width (Dr. GRPO).
    SeqMeanTokenSumNorm,
}

impl AggMode {
    pub const NAMES: &'static [&'static str] = &[
        "token-mean",
        "seq-mean-token-sum",
        "seq-mean-token-mean",
        "seq-mean-token-sum-norm",
    ];

    pub fn parse(name: &str) -> Result<AggMode, AlgoError> {
        match name {
            "token-mean" => Ok(AggMode::TokenMean),
            "seq-mean-token-sum" => Ok(AggMode::SeqMeanTokenSum),
            "seq-mean-token-mean" => Ok(AggMode::SeqMeanTokenMean),
            "seq-mean-token-sum-norm" => Ok(AggMode::SeqMeanTokenSumNorm),
            _ => Err(AlgoError::UnknownName {
                what: "loss aggregation mode",
                name: name.to_owned(),
                allowed: Self::NAMES.join(", "),
            }),
        }
    }
}

/// Which estimator of KL(π‖π_ref) to penalise, per token (verl's `kl_penalty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlKind {
    /// `logp − ref`.
    K1,
    /// `|logp − ref|`.
    Abs,
    /// `0.5·(logp − ref)²`.
    K2,
    /// k3: `x = clamp(ref − logp, ±20)`, `clamp(eˣ − x − 1, ±10)`; unbiased and low-variance.
    LowVarKl,
}

impl KlKind {
    pub const NAMES: &'static [&'static str] = &["k1", "abs", "k2", "low_var_kl"];

    /// Accepts verl's names and aliases ("kl", "mse", "k3").
    pub fn parse(name: &str) -> Result<KlKind, AlgoError> {
        match name {
            "k1" | "kl" => Ok(KlKind::K1),
            "abs" => Ok(KlKind::Abs),
            "k2" | "mse" => Ok(KlKind::K2),
            "low_var_kl" | "k3" => Ok(KlKind::LowVarKl),
            _ => Err(AlgoError::UnknownName {
                what: "KL estimator",
                name: name.to_owned(),
                allowed: Self::NAMES.join(", "),
            }),
        }
    }
}

/// PPO clip ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoClip {
    /// The ratio is clipped below at `1 − low`.
    pub low: f64,
    /// The ratio is clipped above at `1 + high` ("clip-higher" when `high > low`).
    pub high: f64,
    /// Dual clip: for negative advantages the loss is capped at `−A·dual_c` (must be > 1).
    pub dual_c: f64,
}

/// The policy loss and the statistics verl logs with it.
#[derive(Debug, Clone)]
pub struct PolicyLossOut {
    /// Aggregated loss, a scalar tensor to call `backward` on.
    pub loss: Tensor,
    /// Per-token losses `[B, T]` before aggregation (for diagnostics and tests).
    pub per_token: Tensor,
    /// `exp(clamp(logp − old_logp, ±20))` per token, `[B, T]` (for diagnostics and tests).
    pub ratio: Tensor,
    /// Share of unmasked tokens where the clipped branch is the larger loss.
    pub clipfrac: f64,
    /// Masked mean of `old_logp − logp` (approximate KL of the update).
    pub ppo_kl: f64,
    /// Share of unmasked tokens with A < 0 where the dual clip binds.
    pub clipfrac_lower: f64,
}

/// The value loss and its clip fraction.
#[derive(Debug, Clone)]
pub struct ValueLossOut {
    /// `0.5·agg(max((v−R)², (vclip−R)²))`, a scalar tensor.
    pub loss: Tensor,
    /// `max((v−R)², (vclip−R)²)` per token, `[B, T]`, without the 0.5.
    pub per_token: Tensor,
    /// Share of unmasked tokens where the clipped prediction gives the larger loss.
    pub clipfrac: f64,
}

/// A `[B][T]` batch (advantages, returns, masks) as an f32 tensor `[B, T]` on `device`.
pub fn batch_tensor(batch: &[Vec<f64>], device: &Device) -> Result<Tensor, AlgoError> {
    let width = batch.first().map_or(0, Vec::len);
    if let Some(row) = batch.iter().position(|r| r.len() != width) {
        return Err(AlgoError::Shape {
            what: "batch_tensor",
            detail: format!(
                "row {row} has {} positions, row 0 has {width}",
                batch[row].len()
            ),
        });
    }
    let flat: Vec<f32> = batch.iter().flatten().map(|&x| x as f32).collect();
    Ok(Tensor::from_vec(flat, (batch.len(), width), device)?)
}

/// `where(m, x, 0)·m`: NaN or inf at a masked position cannot leak into the sum or gradient.
fn masked(x: &Tensor, mask: &Tensor) -> Result<Tensor, AlgoError> {
    let keep = mask.ne(0f64)?;
    Ok(keep.where_cond(x, &x.zeros_like()?)?.mul(mask)?)
}

fn sum_f64(x: &Tensor) -> Result<f64, AlgoError> {
    Ok(x.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?)
}

/// verl's `masked_mean` (with its +1e-8) of a non-differentiable statistic, in f64.
pub fn masked_mean_scalar(x: &Tensor, mask: &Tensor) -> Result<f64, AlgoError> {
    let x = x.detach().to_dtype(DType::F64)?;
    let mask = mask.to_dtype(DType::F64)?;
    Ok(sum_f64(&masked(&x, &mask)?)? / (sum_f64(&mask)? + MEAN_EPS))
}

fn check_dims(what: &'static str, first: &Tensor, others: &[&Tensor]) -> Result<(), AlgoError> {
    for t in others {
        if t.dims() != first.dims() || first.rank() != 2 {
            return Err(AlgoError::Shape {
                what,
                detail: format!(
                    "{:?} vs {:?} (expected equal [B, T])",
                    first.dims(),
                    t.dims()
                ),
            });
        }
    }
    Ok(())
}

/// Aggregate per-token `loss` `[B, T]` into a scalar by `mode`. An empty mask gives 0, not NaN
/// (the denominators are taken as at least 1 then, which changes nothing for non-empty masks).
pub fn agg_loss(loss: &Tensor, mask: &Tensor, mode: AggMode) -> Result<Tensor, AlgoError> {
    check_dims("agg_loss", loss, &[mask])?;
    let masked_loss = masked(loss, mask)?;
    let row_counts: Vec<f64> = mask
        .to_dtype(DType::F64)?
        .sum(D::Minus1)?
        .to_vec1::<f64>()?;
    let total: f64 = row_counts.iter().sum();
    let width = mask.dim(D::Minus1)?;
    let rows_used = row_counts.iter().filter(|&&n| n > 0.0).count().max(1) as f64;
    // Row weights are computed on the host: the mask carries no gradient.
    let row_weight = |per_row: fn(f64) -> f64| -> Result<Tensor, AlgoError> {
        let weights: Vec<f32> = row_counts
            .iter()
            .map(|&n| {
                if n > 0.0 {
                    (per_row(n) / rows_used) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let rows = Tensor::from_vec(weights, row_counts.len(), loss.device())?;
        Ok(masked_loss.sum(D::Minus1)?.mul(&rows)?.sum_all()?)
    };
    match mode {
        AggMode::TokenMean => Ok(masked_loss.sum_all()?.affine(1.0 / total.max(1.0), 0.0)?),
        AggMode::SeqMeanTokenSum => row_weight(|_| 1.0),
        AggMode::SeqMeanTokenMean => row_weight(|n| 1.0 / (n + MEAN_EPS)),
        AggMode::SeqMeanTokenSumNorm => Ok(masked_loss
            .sum_all()?
            .affine(1.0 / width.max(1) as f64, 0.0)?),
    }
}

/// Vanilla PPO policy loss with asymmetric clipping and dual clip (verl `compute_policy_loss`).
/// Inputs must be finite at every position, masked or not (as in verl): the forward pass masks a
/// NaN out, but the backward pass would multiply it by a zero gradient and get NaN.
pub fn policy_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    advantages: &Tensor,
    mask: &Tensor,
    clip: &PpoClip,
    mode: AggMode,
) -> Result<PolicyLossOut, AlgoError> {
    check_dims("policy_loss", logp, &[old_logp, advantages, mask])?;
    let neg_adv = advantages.neg()?;
    let log_ratio = logp
        .sub(old_logp)?
        .clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)?;
    let ratio = log_ratio.exp()?;
    let ppo_kl = masked_mean_scalar(&log_ratio.neg()?, mask)?;
    let unclipped = neg_adv.mul(&ratio)?;
    let clipped = neg_adv.mul(&ratio.clamp(1.0 - clip.low, 1.0 + clip.high)?)?;
    let clip_max = unclipped.maximum(&clipped)?;
    let clipfrac = masked_mean_scalar(&clipped.gt(&unclipped)?.to_dtype(DType::F32)?, mask)?;
    let dual_cap = neg_adv.affine(clip.dual_c, 0.0)?;
    let dual = dual_cap.minimum(&clip_max)?;
    let negative = advantages.lt(0f64)?;
    let dual_binds = clip_max
        .gt(&dual_cap)?
        .to_dtype(DType::F32)?
        .mul(&negative.to_dtype(DType::F32)?)?;
    let clipfrac_lower = masked_mean_scalar(&dual_binds, mask)?;
    let per_token = negative.where_cond(&dual, &clip_max)?;
    let loss = agg_loss(&per_token, mask, mode)?;
    Ok(PolicyLossOut {
        loss,
        per_token,
        ratio,
        clipfrac,
        ppo_kl,
        clipfrac_lower,
    })
}

/// Clipped value loss: `vclip = clamp(vpred, V ± cliprange)`,
/// `0.5·agg(max((vpred−R)², (vclip−R)²))` (the 0.5 is verl's since PR #2016).
pub fn value_loss(
    vpred: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    mask: &Tensor,
    cliprange: f64,
    mode: AggMode,
) -> Result<ValueLossOut, AlgoError> {
    check_dims("value_loss", vpred, &[old_values, returns, mask])?;
    let vclip = vpred
        .minimum(&old_values.affine(1.0, cliprange)?)?
        .maximum(&old_values.affine(1.0, -cliprange)?)?;
    let unclipped = vpred.sub(returns)?.sqr()?;
    let clipped = vclip.sub(returns)?.sqr()?;
    let per_token = unclipped.maximum(&clipped)?;
    let clipfrac = masked_mean_scalar(&clipped.gt(&unclipped)?.to_dtype(DType::F32)?, mask)?;
    let loss = agg_loss(&per_token, mask, mode)?.affine(0.5, 0.0)?;
    Ok(ValueLossOut {
        loss,
        per_token,
        clipfrac,
    })
}

/// Entropy of the categorical over the last axis: `logsumexp(z) − Σ softmax(z)·z`.
/// `logits` is `[B, T, V]`; the result is `[B, T]`, differentiable with respect to the logits.
pub fn entropy_from_logits(logits: &Tensor) -> Result<Tensor, AlgoError> {
    // The max shift only stabilises exp; it cancels exactly, so it needs no gradient.
    let shift = logits.max_keepdim(D::Minus1)?.detach();
    let lse = logits
        .broadcast_sub(&shift)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&shift)?;
    let probs = logits.broadcast_sub(&lse)?.exp()?;
    let expected_logit = probs.mul(logits)?.sum_keepdim(D::Minus1)?;
    Ok(lse.sub(&expected_logit)?.squeeze(D::Minus1)?)
}

/// Per-token KL estimate between the policy and the frozen reference, `[B, T]`.
pub fn kl_penalty(logp: &Tensor, ref_logp: &Tensor, kind: KlKind) -> Result<Tensor, AlgoError> {
    check_dims("kl_penalty", logp, &[ref_logp])?;
    let diff = logp.sub(ref_logp)?;
    Ok(match kind {
        KlKind::K1 => diff,
        KlKind::Abs => diff.abs()?,
        KlKind::K2 => diff.sqr()?.affine(0.5, 0.0)?,
        KlKind::LowVarKl => {
            let x = diff.neg()?.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)?;
            x.exp()?.sub(&x)?.affine(1.0, -1.0)?.clamp(-10.0, 10.0)?
        }
    })
}

/// The actor's objective as verl's dp_actor builds it: `pg − entropy_coef·entropy + kl_coef·kl`.
/// `kl_loss` is `None` when no reference model is used (kl_coef = 0).
pub fn actor_loss(
    pg_loss: &Tensor,
    entropy_loss: &Tensor,
    kl_loss: Option<&Tensor>,
    entropy_coef: f64,
    kl_coef: f64,
) -> Result<Tensor, AlgoError> {
    let mut total = pg_loss.sub(&entropy_loss.affine(entropy_coef, 0.0)?)?;
    if let Some(kl) = kl_loss {
        total = total.add(&kl.affine(kl_coef, 0.0)?)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn t(rows: &[[f32; 3]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (rows.len(), 3), &Device::Cpu).unwrap()
    }

    fn value(x: &Tensor) -> f32 {
        x.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn empty_rows_are_left_out_of_sequence_means() {
        let loss = t(&[[1.0, 2.0, 3.0], [9.0, 9.0, 9.0]]);
        let mask = t(&[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]);
        let agg = |mode| value(&agg_loss(&loss, &mask, mode).unwrap());
        assert_eq!(agg(AggMode::TokenMean), 1.5);
        assert_eq!(agg(AggMode::SeqMeanTokenSum), 3.0);
        assert!((agg(AggMode::SeqMeanTokenMean) - 1.5).abs() < 1e-6);
        assert_eq!(agg(AggMode::SeqMeanTokenSumNorm), 1.0);
    }

    #[test]
    fn fully_masked_batch_aggregates_to_zero() {
        let loss = t(&[[1.0, 2.0, 3.0]]);
        let mask = t(&[[0.0, 0.0, 0.0]]);
        for name in AggMode::NAMES {
            let mode = AggMode::parse(name).unwrap();
            assert_eq!(value(&agg_loss(&loss, &mask, mode).unwrap()), 0.0, "{name}");
        }
    }

    #[test]
    fn nan_loss_on_masked_positions_reaches_neither_value_nor_gradient() {
        let per_token = Var::from_tensor(&t(&[[1.0, f32::NAN, f32::INFINITY]])).unwrap();
        let mask = t(&[[1.0, 0.0, 0.0]]);
        for name in AggMode::NAMES {
            let mode = AggMode::parse(name).unwrap();
            let loss = agg_loss(per_token.as_tensor(), &mask, mode).unwrap();
            assert!(value(&loss).is_finite(), "{name}");
            let grads = loss.backward().unwrap();
            let grad: Vec<Vec<f32>> = grads.get(&per_token).unwrap().to_vec2().unwrap();
            assert_eq!(&grad[0][1..], &[0.0, 0.0], "{name}");
        }
    }

    #[test]
    fn mismatched_shapes_and_unknown_names_are_errors() {
        let a = t(&[[0.0; 3]]);
        let b = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            kl_penalty(&a, &b, KlKind::K1),
            Err(AlgoError::Shape { .. })
        ));
        assert!(AggMode::parse("mean").is_err());
        let ragged = batch_tensor(&[vec![0.0; 3], vec![0.0; 2]], &Device::Cpu);
        assert!(matches!(ragged, Err(AlgoError::Shape { .. })));
        assert_eq!(KlKind::parse("k3").unwrap(), KlKind::LowVarKl);
        assert!(KlKind::parse("k4").is_err());
    }
}
