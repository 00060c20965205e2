//! Format warm-up for models trained from scratch. A randomly initialised model almost never
//! writes a well-formed `<answer>...</answer>` reply, so reinforcement learning would only ever
//! see the format penalty. Before RL, a few supervised steps teach the *format* on replies whose
//! actions are drawn uniformly at random: the model learns how to answer, not what to answer, so
//! it starts at the level of a uniformly random valid policy and everything above that is
//! learned by RL. `model.format_warmup_steps = 0` turns it off (pretrained chat models need none).

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::env::TaskEnv;
use crate::policy::{Policy, PolicyOptimizer, TrainBatch};
use crate::search::episode::{Candidate, Codec, SampleError, Sampler};
use crate::search::strategy::random_reply;
use crate::search::{EpisodeSettings, EpisodeSpec, PlainSampling, play_episode};

/// A sampler that writes well-formed replies with uniformly random valid actions.
struct RandomReplies<'a> {
    rng: ChaCha8Rng,
    actions: Vec<String>,
    max_actions: usize,
    /// `model.max_new_tokens`: a synthetic reply is never longer than a sampled one.
    max_tokens: usize,
    codec: &'a dyn Codec,
}

impl Sampler for RandomReplies<'_> {
    fn sample(
        &mut self,
        _prompt: &[u32],
        n: usize,
        _seed: u64,
    ) -> Result<Vec<Candidate>, SampleError> {
        (0..n)
            .map(|_| {
                let (max_actions, max_tokens) = (self.max_actions, self.max_tokens);
                random_reply(
                    &mut self.rng,
                    &self.actions,
                    max_actions,
                    max_tokens,
                    self.codec,
                )
            })
            .collect()
    }
    fn policy_version(&self) -> u64 {
        0
    }
}

/// Run `steps` supervised steps of `batch` synthetic episodes each; returns the final loss.
pub fn format_warmup(
    policy: &Policy,
    optimizer: &mut PolicyOptimizer,
    env: &TaskEnv,
    settings: &EpisodeSettings,
    steps: usize,
    batch: usize,
    seed: u64,
) -> anyhow::Result<f64> {
    let codec = policy.tokenizer();
    let actions = crate::env::Env::action_names(env);
    let mut sampler = RandomReplies {
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0xF0F0),
        actions,
        max_actions: settings.rules.max_actions_per_turn,
        max_tokens: settings.max_new_tokens,
        codec,
    };
    let mut last = f64::NAN;
    for step in 0..steps {
        let mut rows = Vec::with_capacity(batch);
        for i in 0..batch {
            let id = (step * batch + i) as u64;
            let spec = EpisodeSpec {
                id,
                group: 0,
                env_seed: seed.wrapping_mul(31).wrapping_add(id) | (1 << 40),
                sample_seed: id,
            };
            let mut e = env.clone();
            rows.push(play_episode(
                &mut e,
                spec,
                settings,
                &mut PlainSampling,
                &mut sampler,
                codec,
            )?);
        }
        let width = rows.iter().map(|r| r.tokens.len()).max().unwrap_or(0);
        let mask: Vec<f32> = rows
            .iter()
            .flat_map(|r| {
                r.assistant_mask
                    .iter()
                    .map(|&m| m as f32)
                    .chain(std::iter::repeat_n(0.0, width - r.tokens.len()))
            })
            .collect();
        let mask = Tensor::from_vec(mask, (rows.len(), width), policy.device())?;
        let fwd = policy.forward_train(&TrainBatch {
            tokens: rows.into_iter().map(|r| r.tokens).collect(),
        })?;
        let loss = fwd.logprobs.mul(&mask)?.sum_all()?.neg()?.affine(
            1.0 / mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64,
            0.0,
        )?;
        optimizer.step(&loss)?;
        last = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if step % 20 == 0 {
            tracing::info!(step, loss = last, "format warm-up");
        }
    }
    Ok(last)
}
