//! The learner as a pure object: a step's episodes in, one PPO or GRPO update out. The learner
//! actor is a thin message loop around it; the serial mode calls it directly.
//!
//! Reads top to bottom as the spec's math: filter instances, build the token batch, recompute old
//! log-probs and values on the exact training sequences, compute advantages (GAE over assistant
//! tokens, or group-normalised returns), then `ppo_epochs` passes of clipped policy loss
//! - entropy bonus (+ clipped value loss for PPO), each pass in `minibatches` optimizer steps.

use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{DType, Tensor};
use serde::Serialize;

use crate::algo::{self, AlgoConfig, AlgoKind};
use crate::policy::{LrSchedule, Policy, PolicyOptimizer, TrainBatch};
use crate::search::Episode;

#[derive(Debug, thiserror::Error)]
pub enum LearnerError {
    #[error(transparent)]
    Algo(#[from] algo::AlgoError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("{0}")]
    Invalid(String),
}

/// What one update did; becomes part of the step's `metrics.jsonl` line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateReport {
    pub groups_kept: usize,
    pub episodes_trained: usize,
    pub tokens_trained: usize,
    pub pg_loss: f64,
    pub value_loss: f64,
    pub entropy: f64,
    pub ppo_kl: f64,
    pub clipfrac: f64,
    pub clipfrac_lower: f64,
    pub value_clipfrac: f64,
    pub grad_norm: f64,
    /// Optimizer steps skipped for a non-finite loss or gradient.
    pub skipped: usize,
    /// Optimizer steps applied (`ppo_epochs x minibatches` when none is skipped).
    pub optimizer_steps: usize,
    /// Every advantage was zero (all kept groups had equal returns): no update was made.
    pub no_signal: bool,
    /// Mean and max policy lag (versions) of the trained tokens.
    pub lag_mean: f64,
    pub lag_max: u64,
    pub mean_advantage_abs: f64,
    /// KL to the frozen reference (token-aggregated), when the penalty is on.
    pub kl_to_reference: f64,
    /// Wall time by phase, seconds.
    pub time_prepare_s: f64,
    pub time_update_s: f64,
}

/// Owns the trainable policy and its optimizer.
pub struct Learner {
    pub policy: Policy,
    pub optimizer: PolicyOptimizer,
    pub algo: AlgoConfig,
    /// Version of the weights `policy` holds: the number of updates applied.
    pub version: u64,
    /// Frozen reference for the optional KL penalty (`algo.kl_coef > 0`); `None` otherwise.
    pub reference: Option<Policy>,
    /// Trajectory selection (`search.kind = "select"`): after instance filtering keep, in each
    /// group, the half of the episodes whose returns are farthest from the group mean.
    pub select_half: bool,
    /// Learning rates by update index (the version before the update); a constant schedule
    /// leaves the optimizer's rates as they are.
    pub lr_schedule: LrSchedule,
}

fn to_rows(t: &Tensor) -> Result<Vec<Vec<f64>>, LearnerError> {
    Ok(t.to_dtype(DType::F64)?.to_vec2::<f64>()?)
}

impl Learner {
    /// Train on one step's episodes (all groups; filtering happens here).
    pub fn update(&mut self, episodes: &[Episode]) -> Result<UpdateReport, LearnerError> {
        self.update_with(episodes, false)
    }

    /// [`Learner::update`], with the loss made NaN when `poison_loss` (fault injection: the
    /// optimizer must skip the step and the loop must count it).
    pub fn update_with(
        &mut self,
        episodes: &[Episode],
        poison_loss: bool,
    ) -> Result<UpdateReport, LearnerError> {
        let started = Instant::now();
        if !self.lr_schedule.is_constant() {
            let (lr, critic_lr) = self.lr_schedule.rates(self.version);
            self.optimizer.set_lrs(lr, critic_lr);
        }
        let kind = self.algo.algo_kind()?;
        let mode = self.algo.agg_mode()?;
        let mut report = UpdateReport::default();

        // 1. Instance filtering: keep the groups whose returns vary most.
        let mut by_group: BTreeMap<usize, Vec<&Episode>> = BTreeMap::new();
        for e in episodes {
            by_group.entry(e.spec.group).or_default().push(e);
        }
        let groups: Vec<Vec<&Episode>> = by_group.into_values().collect();
        let returns: Vec<Vec<f64>> = groups
            .iter()
            .map(|g| g.iter().map(|e| e.ret).collect())
            .collect();
        let keep = algo::filter_and_select(
            &returns,
            self.algo.filter_ratio,
            self.select_half,
            self.version,
        );
        let batch: Vec<&Episode> = keep
            .iter()
            .flat_map(|(g, kept)| kept.iter().map(|&i| groups[*g][i]))
            .collect();
        let batch: Vec<&Episode> = batch
            .into_iter()
            .filter(|e| e.assistant_mask.contains(&1))
            .collect();
        report.groups_kept = keep.len();
        report.episodes_trained = batch.len();
        if batch.is_empty() {
            return Ok(report);
        }

        // 2. The token batch, right-padded; masks cover assistant tokens only (with a reply
        //    grammar, only the tokens where the policy had a choice).
        let trained: Vec<Vec<u8>> = batch
            .iter()
            .map(|e| match self.policy.reply_grammar() {
                Some(g) => g.choice_mask(&e.tokens, &e.assistant_mask),
                None => e.assistant_mask.clone(),
            })
            .collect();
        let width = batch.iter().map(|e| e.tokens.len()).max().unwrap_or(0);
        let pad = |row: &[u8]| -> Vec<f64> {
            let mut v: Vec<f64> = row.iter().map(|&m| m as f64).collect();
            v.resize(width, 0.0);
            v
        };
        let mask_rows: Vec<Vec<f64>> = trained.iter().map(|m| pad(m)).collect();
        let train_batch = TrainBatch {
            tokens: batch.iter().map(|e| e.tokens.clone()).collect(),
        };
        let device = self.policy.device().clone();
        let mask = Tensor::new(
            mask_rows
                .iter()
                .flatten()
                .map(|&m| m as f32)
                .collect::<Vec<f32>>(),
            &device,
        )?
        .reshape((batch.len(), width))?;
        report.tokens_trained = mask_rows.iter().flatten().filter(|&&m| m > 0.0).count();
        let (lag_sum, lag_max) = batch
            .iter()
            .zip(&trained)
            .flat_map(|(e, m)| m.iter().zip(&e.token_version))
            .fold((0u64, 0u64), |(s, m), (&mask, &v)| {
                if mask == 1 {
                    let lag = self.version.saturating_sub(v);
                    (s + lag, m.max(lag))
                } else {
                    (s, m)
                }
            });
        report.lag_mean = lag_sum as f64 / report.tokens_trained.max(1) as f64;
        report.lag_max = lag_max;

        // 3. Old log-probs and values, recomputed on the exact training sequences before any
        //    step, one forward per minibatch. The first minibatch's forward is also its first
        //    epoch's forward (no weight has changed yet), so it is not run twice; the others
        //    are run again after the steps before them (this saves half a batch's forward over
        //    one forward of the whole batch here plus one per minibatch in the update).
        let replies: Vec<Vec<u8>> = batch.iter().map(|e| e.assistant_mask.clone()).collect();
        let parts = self.algo.minibatches.clamp(1, batch.len());
        let minibatches = (0..parts)
            .map(|part| {
                let rows: Vec<usize> = (part..batch.len()).step_by(parts).collect();
                Minibatch::new(&rows, &train_batch, &replies, &device)
            })
            .collect::<Result<Vec<_>, LearnerError>>()?;
        let mut old_logp_rows = vec![vec![0.0; width]; batch.len()];
        let mut old_value_rows = vec![vec![0.0; width]; batch.len()];
        let mut first_forward = None;
        for mb in &minibatches {
            let fwd = self
                .policy
                .forward_train_constrained(&mb.batch, Some(&mb.replies))?;
            mb.scatter(&fwd.logprobs, &mut old_logp_rows)?;
            mb.scatter(&fwd.values, &mut old_value_rows)?;
            first_forward.get_or_insert(fwd);
        }
        let as_tensor = |rows: &[Vec<f64>]| -> Result<Tensor, LearnerError> {
            let flat: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
            Ok(Tensor::from_vec(flat, (rows.len(), width), &device)?)
        };
        let old_logp = as_tensor(&old_logp_rows)?;
        let old_values = as_tensor(&old_value_rows)?.mul(&mask)?;

        // 4. Advantages: the episode return sits on the last assistant token.
        let token_rewards: Vec<Vec<f64>> = batch
            .iter()
            .zip(&mask_rows)
            .map(|(e, m)| {
                let mut r = vec![0.0; width];
                if let Some(last) = m.iter().rposition(|&x| x > 0.0) {
                    r[last] = e.ret;
                }
                r
            })
            .collect();
        let (advantages, returns) = match kind {
            AlgoKind::Grpo => {
                let ids: Vec<usize> = batch.iter().map(|e| e.spec.group).collect();
                let out = algo::grpo_advantages(
                    &token_rewards,
                    &mask_rows,
                    &ids,
                    self.algo.grpo_norm_by_std,
                    self.algo.grpo_eps,
                )?;
                (out.advantages.clone(), out.advantages)
            }
            AlgoKind::Ppo => {
                let values = to_rows(&old_values)?;
                let out = algo::gae(
                    &token_rewards,
                    &values,
                    &mask_rows,
                    self.algo.gamma,
                    self.algo.lambda,
                    self.algo.whiten,
                )?;
                (out.advantages, out.returns)
            }
        };
        let n_tok = report.tokens_trained.max(1) as f64;
        report.mean_advantage_abs = advantages
            .iter()
            .flatten()
            .zip(mask_rows.iter().flatten())
            .map(|(a, m)| a.abs() * m)
            .sum::<f64>()
            / n_tok;
        let adv = as_tensor(&advantages)?;
        let ret = as_tensor(&returns)?;
        report.time_prepare_s = started.elapsed().as_secs_f64();

        // A batch whose advantages are all zero teaches the policy nothing; stepping anyway
        // would let the entropy bonus alone steer Adam, whose normalised steps are full-size
        // even for tiny gradients (this drifted a from-scratch model into noise).
        if kind == AlgoKind::Grpo && advantages.iter().flatten().all(|a| a.abs() < 1e-12) {
            report.no_signal = true;
            return Ok(report);
        }

        // 5. The update: clipped policy loss - entropy bonus (+ clipped value loss).
        let t_update = Instant::now();
        let epochs = self.algo.ppo_epochs.max(1);
        let kl_kind = self.algo.kl_kind()?;
        let ref_logp = match (&self.reference, self.algo.kl_coef > 0.0) {
            (Some(reference), true) => {
                Some(reference.forward_train(&train_batch)?.logprobs.detach())
            }
            _ => None,
        };
        let scalar = |t: &Tensor| -> Result<f64, LearnerError> {
            Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
        };
        // Each epoch walks the batch in `minibatches` optimizer steps; the rows of a minibatch
        // are strided (i, i + k, ...) so each mixes instances, and the partition is fixed, so a
        // run stays reproducible without a shuffle.
        let passes = (epochs * parts) as f64;
        for _ in 0..epochs {
            for sub in &minibatches {
                let fwd = match first_forward.take() {
                    Some(fwd) => fwd,
                    None => self
                        .policy
                        .forward_train_constrained(&sub.batch, Some(&sub.replies))?,
                };
                let take = |t: &Tensor| sub.take(t, fwd.logprobs.dim(1)?);
                let (mask, adv, ret) = (take(&mask)?, take(&adv)?, take(&ret)?);
                let (old_logp, old_values) = (take(&old_logp)?, take(&old_values)?);
                let ref_logp = ref_logp.as_ref().map(take).transpose()?;
                let pg = algo::policy_loss(
                    &fwd.logprobs,
                    &old_logp,
                    &adv,
                    &mask,
                    &self.algo.ppo_clip(),
                    mode,
                )?;
                let entropy = algo::agg_loss(&fwd.entropy, &mask, mode)?;
                let kl = match &ref_logp {
                    Some(r) => Some(algo::agg_loss(
                        &algo::kl_penalty(&fwd.logprobs, r, kl_kind)?,
                        &mask,
                        mode,
                    )?),
                    None => None,
                };
                if let Some(kl) = &kl {
                    report.kl_to_reference += scalar(kl)? / passes;
                }
                let mut loss = algo::actor_loss(
                    &pg.loss,
                    &entropy,
                    kl.as_ref(),
                    self.algo.entropy_coef,
                    self.algo.kl_coef,
                )?;
                if kind == AlgoKind::Ppo {
                    let vl = algo::value_loss(
                        &fwd.values,
                        &old_values,
                        &ret,
                        &mask,
                        self.algo.value_clip,
                        mode,
                    )?;
                    report.value_loss += scalar(&vl.loss)? / passes;
                    report.value_clipfrac += vl.clipfrac / passes;
                    loss = loss.add(&vl.loss.affine(self.algo.value_coef, 0.0)?)?;
                }
                if poison_loss {
                    loss = (loss * f64::NAN)?;
                }
                let stats = self.optimizer.step(&loss)?;
                report.pg_loss += scalar(&pg.loss)? / passes;
                report.entropy += scalar(&entropy)? / passes;
                report.ppo_kl += pg.ppo_kl / passes;
                report.clipfrac += pg.clipfrac / passes;
                report.clipfrac_lower += pg.clipfrac_lower / passes;
                report.grad_norm += stats.grad_norm / passes;
                report.skipped += usize::from(stats.skipped);
                report.optimizer_steps += usize::from(!stats.skipped);
            }
        }
        if report.optimizer_steps > 0 {
            self.version += 1;
        }
        report.time_update_s = t_update.elapsed().as_secs_f64();
        Ok(report)
    }
}

/// The rows of one minibatch: their token sequences and reply masks for the forward pass, and
/// the row indices to cut the batch-wide tensors (advantages, old log-probs, masks) with.
struct Minibatch {
    batch: TrainBatch,
    replies: Vec<Vec<u8>>,
    rows: Tensor,
    /// The same row indices, for writing per-minibatch results back into batch-wide rows.
    row_ids: Vec<usize>,
}

impl Minibatch {
    fn new(
        rows: &[usize],
        all: &TrainBatch,
        replies: &[Vec<u8>],
        device: &candle_core::Device,
    ) -> Result<Minibatch, LearnerError> {
        let ids: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        Ok(Minibatch {
            batch: TrainBatch {
                tokens: rows.iter().map(|&r| all.tokens[r].clone()).collect(),
            },
            replies: rows.iter().map(|&r| replies[r].clone()).collect(),
            rows: Tensor::new(ids, device)?,
            row_ids: rows.to_vec(),
        })
    }

    /// Write this minibatch's `(rows, own width)` tensor into the batch-wide rows (the columns
    /// past its own width stay as they are: padding).
    fn scatter(&self, t: &Tensor, all: &mut [Vec<f64>]) -> Result<(), LearnerError> {
        for (row, values) in self.row_ids.iter().zip(to_rows(&t.detach())?) {
            all[*row][..values.len()].copy_from_slice(&values);
        }
        Ok(())
    }

    /// This minibatch's rows of a `(batch, width)` tensor, cut to the minibatch's own width
    /// (sequences are right-padded, so the columns past its longest sequence are padding).
    fn take(&self, t: &Tensor, width: usize) -> Result<Tensor, LearnerError> {
        Ok(t.index_select(&self.rows, 0)?.narrow(1, 0, width)?)
    }
}
