//! Which episodes a training step or a validation plays, and what their outcomes add up to.
//! Pure functions of the config and the step number, so every mode (serial or actors, fresh or
//! resumed) plays exactly the same instances with the same sampling seeds.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::search::episode::turn_seed;
use crate::search::{Episode, EpisodeSpec};

/// How a step's (or a validation's) episodes are laid out.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub groups: usize,
    pub group_size: usize,
}

/// Episode ids of training step k occupy [k * STRIDE, (k+1) * STRIDE); validation ids start at
/// VALIDATION_BASE, so an id alone says where an episode came from.
const STRIDE: u64 = 1 << 20;
const VALIDATION_BASE: u64 = 1 << 62;

/// The episodes of training step `step`: group i plays seed `train_seed + groups*step + i`.
pub fn training_specs(
    step: u64,
    layout: Layout,
    train_seed: u64,
    run_seed: u64,
) -> Vec<EpisodeSpec> {
    specs(
        step * STRIDE,
        0..layout.groups,
        layout.group_size,
        |g| train_seed + layout.groups as u64 * step + g as u64,
        run_seed,
    )
}

/// The instances training step `step` replays besides its fresh ones (`train.replay_groups`,
/// see [`super::replay`]): groups `layout.groups + j` play `env_seeds[j]`, with episode ids and
/// sampling seeds continuing the fresh groups'.
pub fn replay_specs(
    step: u64,
    layout: Layout,
    env_seeds: &[u64],
    run_seed: u64,
) -> Vec<EpisodeSpec> {
    specs(
        step * STRIDE,
        layout.groups..layout.groups + env_seeds.len(),
        layout.group_size,
        |g| env_seeds[g - layout.groups],
        run_seed,
    )
}

/// The validation episodes: group i plays the fixed seed `val_seed + i`; their sampling seeds do
/// not depend on the step, so every validation sees the same instances and the same noise.
pub fn validation_specs(layout: Layout, val_seed: u64, run_seed: u64) -> Vec<EpisodeSpec> {
    specs(
        VALIDATION_BASE,
        0..layout.groups,
        layout.group_size,
        |g| val_seed + g as u64,
        run_seed ^ 0x5_EED0_F7A1,
    )
}

fn specs(
    base: u64,
    groups: std::ops::Range<usize>,
    group_size: usize,
    env_seed: impl Fn(usize) -> u64,
    run_seed: u64,
) -> Vec<EpisodeSpec> {
    let mut out = Vec::with_capacity(groups.len() * group_size);
    for group in groups {
        for k in 0..group_size {
            let id = base + (group * group_size + k) as u64;
            out.push(EpisodeSpec {
                id,
                group,
                env_seed: env_seed(group),
                sample_seed: turn_seed(run_seed, id as usize),
            });
        }
    }
    out
}

/// What a set of episodes achieved.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Outcomes {
    pub episodes: usize,
    pub success_rate: f64,
    pub mean_return: f64,
    /// Share of groups in which at least one episode succeeded.
    pub pass_at_k: f64,
    pub mean_turns: f64,
    /// Share of turns whose reply broke the format.
    pub format_error_rate: f64,
    /// Mean generated tokens per episode.
    pub mean_generated_tokens: f64,
    pub truncated: usize,
    /// Success by the instance's optimal solution length (Sokoban: "1-2", "3-4", "5+" moves).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_optimal_len: Vec<Bucket>,
}

/// Success within one difficulty bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bucket {
    pub label: &'static str,
    pub episodes: usize,
    pub success_rate: f64,
}

fn bucket_of(len: usize) -> &'static str {
    match len {
        0..=2 => "1-2",
        3..=4 => "3-4",
        _ => "5+",
    }
}

impl Outcomes {
    pub fn of(episodes: &[Episode]) -> Outcomes {
        let n = episodes.len();
        if n == 0 {
            return Outcomes::default();
        }
        let mut groups: BTreeMap<usize, bool> = BTreeMap::new();
        let turns: usize = episodes.iter().map(|e| e.turns.len()).sum();
        for e in episodes {
            *groups.entry(e.spec.group).or_default() |= e.success;
        }
        let nf = n as f64;
        Outcomes {
            episodes: n,
            success_rate: episodes.iter().filter(|e| e.success).count() as f64 / nf,
            mean_return: episodes.iter().map(|e| e.ret).sum::<f64>() / nf,
            pass_at_k: groups.values().filter(|s| **s).count() as f64 / groups.len() as f64,
            mean_turns: turns as f64 / nf,
            format_error_rate: episodes.iter().map(|e| e.format_errors).sum::<usize>() as f64
                / turns.max(1) as f64,
            mean_generated_tokens: episodes.iter().map(|e| e.generated_tokens).sum::<usize>()
                as f64
                / nf,
            truncated: episodes.iter().filter(|e| e.truncated).count(),
            by_optimal_len: ["1-2", "3-4", "5+"]
                .into_iter()
                .filter_map(|label| {
                    let within: Vec<&Episode> = episodes
                        .iter()
                        .filter(|e| e.optimal_len.map(bucket_of) == Some(label))
                        .collect();
                    (!within.is_empty()).then(|| Bucket {
                        label,
                        episodes: within.len(),
                        success_rate: within.iter().filter(|e| e.success).count() as f64
                            / within.len() as f64,
                    })
                })
                .collect(),
        }
    }
}
