//! The training loop, written once for both ways of running it: a [`Backend`] plays rollouts and
//! applies updates, either serially in this thread (deterministic mode) or through the actor
//! system. The loop owns the schedule: which step's episodes to play, when to validate, when to
//! checkpoint, and the policy lag (rollouts of step k+1 overlap the update of step k when
//! `policy_lag >= 1`).

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::learner::UpdateReport;
use super::plan::{Layout, Outcomes, replay_specs, training_specs, validation_specs};
use super::replay::{ReplayQueue, ReplayReport};
use super::run_dir::RunDir;
use crate::config::Config;
use crate::policy::Sampling;
use crate::search::{Episode, EpisodeSpec};

/// What a backend does for the loop.
pub trait Backend {
    /// Play these episodes with this sampling (search only when `train` is true).
    fn rollouts(
        &mut self,
        specs: &[EpisodeSpec],
        sampling: Sampling,
        train: bool,
    ) -> anyhow::Result<Vec<Episode>>;
    /// Begin an update on a step's episodes; at most one is pending at a time.
    fn start_update(&mut self, episodes: Vec<Episode>) -> anyhow::Result<()>;
    /// Wait for the pending update; returns its report and the new weights' version.
    fn finish_update(&mut self) -> anyhow::Result<(UpdateReport, u64)>;
    /// Write a checkpoint of the current weights and optimizer into `dir` (complete on return).
    fn checkpoint(&mut self, dir: &Path, state: &TrainState) -> anyhow::Result<()>;
    /// Inference batches and sequences served so far, where batching happens.
    fn inference_counts(&self) -> Option<(u64, u64)> {
        None
    }
    /// Restart and episode accounting, where actors are supervised.
    fn supervision(&self) -> Option<crate::faults::SupervisionCounts> {
        None
    }
    /// Prompt tokens found in the prompt cache so far (not prefilled again).
    fn prompt_tokens_reused(&self) -> u64;
}

/// The loop's own state, saved in every checkpoint so a resumed run continues exactly.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// The next training step to run.
    pub next_step: u64,
    /// Version of the weights in the checkpoint (updates applied).
    pub version: u64,
    /// Best validation success so far and the step it was measured at.
    pub best_success: Option<(f64, u64)>,
    /// Consecutive skipped updates at the time of the checkpoint.
    pub skipped_in_row: u64,
    /// Hash of the resolved config, to warn when a resume uses a different one.
    pub config_hash: String,
    /// Failed instances waiting to be replayed (`train.replay_groups`); absent from
    /// checkpoints written before replay existed, which start with an empty queue.
    #[serde(default)]
    pub replay: ReplayQueue,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub struct StepLine {
    /// Always "train" (validation lines say "validation").
    pub kind: &'static str,
    pub step: u64,
    pub version: u64,
    pub wall_s: f64,
    pub train: Outcomes,
    pub update: UpdateReport,
    pub rollout_s: f64,
    pub generated_tokens: usize,
    pub generated_tokens_per_s: f64,
    /// Prompt tokens of this step's rollouts found in the prompt cache, so not prefilled again
    /// (an episode's next turn extends its previous prompt and reply).
    pub prompt_tokens_reused: u64,
    pub trained_tokens_per_s: f64,
    pub env_turns: usize,
    /// Primitive environment actions played in the kept trajectories.
    pub env_steps: usize,
    /// What TSR search spent this step.
    pub search: SearchAccounting,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<Outcomes>,
    /// Totals of this process so far (actor mode): proof that faults lost no episode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervision: Option<crate::faults::SupervisionCounts>,
    /// Replayed failed instances (only when `train.replay_groups` > 0; their episodes are also
    /// counted in `train`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayReport>,
}

/// Search accounting of one step: tokens generated for search vs kept, forks, candidates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SearchAccounting {
    /// Generated tokens that were not kept in any trajectory (search candidates, lookahead).
    pub search_tokens: usize,
    /// Generated tokens kept in the trajectories (what the learner may train on).
    pub kept_tokens: usize,
    pub forks: usize,
    /// Candidates sampled per committed turn (1 without search).
    pub candidates_per_turn: f64,
    /// Share of the episodes' wall time spent searching (0-1).
    pub time_share: f64,
}

impl SearchAccounting {
    pub fn of(episodes: &[Episode]) -> Self {
        let turns: usize = episodes.iter().map(|e| e.turns.len()).sum();
        let extra: usize = episodes.iter().map(|e| e.search.extra_candidates).sum();
        let search_tokens: usize = episodes.iter().map(|e| e.search.discarded_tokens).sum();
        let generated: usize = episodes.iter().map(|e| e.generated_tokens).sum();
        let seconds: f64 = episodes.iter().map(|e| e.seconds).sum();
        SearchAccounting {
            search_tokens,
            kept_tokens: generated.saturating_sub(search_tokens),
            forks: episodes.iter().map(|e| e.search.forks).sum(),
            candidates_per_turn: (turns + extra) as f64 / turns.max(1) as f64,
            time_share: episodes.iter().map(|e| e.search.seconds).sum::<f64>() / seconds.max(1e-12),
        }
    }
}

/// A config's identity for resume checks.
pub fn config_hash(config: &Config) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config.to_toml().hash(&mut h);
    format!("{:016x}", h.finish())
}

pub fn sampling_for_training(c: &Config) -> Sampling {
    Sampling {
        temperature: c.train.temperature as f32,
        top_p: c.train.top_p as f32,
        top_k: c.train.top_k,
        greedy: false,
    }
}

pub fn sampling_for_validation(c: &Config) -> Sampling {
    Sampling {
        temperature: c.train.val_temperature as f32,
        top_p: c.train.top_p as f32,
        top_k: c.train.top_k,
        greedy: c.train.val_greedy,
    }
}

/// Validation on the fixed seeds, without search.
pub fn validate(
    backend: &mut dyn Backend,
    config: &Config,
) -> anyhow::Result<(Outcomes, Vec<Episode>)> {
    let layout = Layout {
        groups: config.train.val_groups,
        group_size: config.train.val_group_size,
    };
    let specs = validation_specs(layout, config.train.val_seed, config.run.seed);
    let t = Instant::now();
    let mut episodes = backend.rollouts(&specs, sampling_for_validation(config), false)?;
    crate::metrics::record_episodes(&episodes, t.elapsed().as_secs_f64(), false);
    annotate_optimal_lengths(config, &mut episodes);
    Ok((Outcomes::of(&episodes), episodes))
}

/// Fill in each Sokoban episode's optimal solution length (from the BFS solver), so validation
/// can report success by difficulty: most short rooms are solved even by a random policy.
fn annotate_optimal_lengths(config: &Config, episodes: &mut [Episode]) {
    if config.env.task != "sokoban" {
        return;
    }
    let Ok(crate::env::TaskEnv::Sokoban(mut env)) = super::setup::build_env(config) else {
        return;
    };
    let mut cache = std::collections::HashMap::new();
    for e in episodes {
        e.optimal_len = *cache.entry(e.spec.env_seed).or_insert_with(|| {
            crate::env::Env::reset(&mut env, e.spec.env_seed);
            env.optimal_solution_len()
        });
    }
}

/// A step whose episodes are played and whose update is in flight.
struct Pending {
    step: u64,
    outcomes: Outcomes,
    rollout_s: f64,
    generated: usize,
    prompt_tokens_reused: u64,
    turns: usize,
    steps: usize,
    search: SearchAccounting,
    replay: Option<ReplayReport>,
}

/// The replay queue holds this many steps' worth of `train.replay_groups`: failures older than
/// that were made by a policy that has since moved on.
const REPLAY_QUEUE_STEPS: usize = 4;

/// Run training from `state` to `config.train.steps`, logging into `run`.
pub fn train_loop(
    backend: &mut dyn Backend,
    config: &Config,
    run: &mut RunDir,
    mut state: TrainState,
    on_step: &mut dyn FnMut(&StepLine),
    stop: &dyn Fn() -> bool,
) -> anyhow::Result<TrainState> {
    let started = Instant::now();
    let layout = Layout {
        groups: config.algo.env_groups,
        group_size: config.algo.group_size,
    };
    let tc = &config.train;
    let out_of_time =
        || tc.max_minutes > 0.0 && started.elapsed().as_secs_f64() > tc.max_minutes * 60.0;
    if state.next_step == 0 && !stop() {
        let (val, _) = validate(backend, config)?;
        tracing::info!(
            success = val.success_rate,
            ret = val.mean_return,
            "validation before training"
        );
        run.log_metrics(&serde_json::json!({ "kind": "validation", "step": 0, "version": state.version, "validation": val }))?;
        record_best(&mut state, &val, 0);
    }
    let mut pending: Option<Pending> = None;
    while state.next_step < tc.steps && !stop() && !out_of_time() {
        let step = state.next_step;
        // With no lag allowed, the previous update must land before these rollouts start.
        if tc.policy_lag == 0
            && let Some(p) = pending.take()
        {
            finish(backend, config, run, &mut state, p, started, on_step)?;
        }
        let t = Instant::now();
        let mut specs = training_specs(step, layout, tc.train_seed, config.run.seed);
        let replayed = state.replay.take(tc.replay_groups);
        let replay_seeds: Vec<u64> = replayed.iter().map(|e| e.env_seed).collect();
        specs.extend(replay_specs(step, layout, &replay_seeds, config.run.seed));
        let reused_before = backend.prompt_tokens_reused();
        let episodes = backend.rollouts(&specs, sampling_for_training(config), true)?;
        let rollout_s = t.elapsed().as_secs_f64();
        // Saturating: a backend that rebuilt its policy (a learner retry) counts from 0 again.
        let prompt_tokens_reused = backend.prompt_tokens_reused().saturating_sub(reused_before);
        let replay = (tc.replay_groups > 0).then(|| {
            let capacity = REPLAY_QUEUE_STEPS * tc.replay_groups;
            state
                .replay
                .record(&episodes, layout.groups, &replayed, tc.replay_max, capacity)
        });
        crate::metrics::record_episodes(&episodes, rollout_s, true);
        if tc.samples_every > 0 && step.is_multiple_of(tc.samples_every) {
            run.write_samples(step, &episodes[..episodes.len().min(tc.samples_per_file)])?;
        }
        if let Some(p) = pending.take() {
            finish(backend, config, run, &mut state, p, started, on_step)?;
        }
        let p = Pending {
            step,
            outcomes: Outcomes::of(&episodes),
            rollout_s,
            generated: episodes.iter().map(|e| e.generated_tokens).sum(),
            prompt_tokens_reused,
            turns: episodes.iter().map(|e| e.turns.len()).sum(),
            steps: episodes
                .iter()
                .flat_map(|e| &e.turns)
                .map(|t| t.actions.len())
                .sum(),
            search: SearchAccounting::of(&episodes),
            replay,
        };
        backend.start_update(episodes)?;
        pending = Some(p);
        state.next_step = step + 1;
        let last = state.next_step == tc.steps;
        let val_due = last || (tc.val_every > 0 && state.next_step.is_multiple_of(tc.val_every));
        let ckpt_due = last
            || (tc.checkpoint_every > 0 && state.next_step.is_multiple_of(tc.checkpoint_every));
        let mut improved = false;
        if val_due || ckpt_due {
            if let Some(p) = pending.take() {
                finish(backend, config, run, &mut state, p, started, on_step)?;
            }
            if val_due {
                let (val, _) = validate(backend, config)?;
                tracing::info!(
                    step = state.next_step,
                    success = val.success_rate,
                    ret = val.mean_return,
                    "validation"
                );
                run.log_metrics(&serde_json::json!({ "kind": "validation", "step": state.next_step, "version": state.version, "validation": val }))?;
                let at = state.next_step;
                improved = record_best(&mut state, &val, at);
            }
            if ckpt_due || improved {
                save_checkpoint(backend, run, &state, config)?;
            }
        }
    }
    if let Some(p) = pending.take() {
        finish(backend, config, run, &mut state, p, started, on_step)?;
        save_checkpoint(backend, run, &state, config)?;
    }
    Ok(state)
}

/// Remember the best validation; true when this one is a new best.
fn record_best(state: &mut TrainState, val: &Outcomes, step: u64) -> bool {
    let better = state
        .best_success
        .is_none_or(|(best, _)| val.success_rate > best);
    if better {
        state.best_success = Some((val.success_rate, step));
    }
    better
}

fn finish(
    backend: &mut dyn Backend,
    config: &Config,
    run: &mut RunDir,
    state: &mut TrainState,
    p: Pending,
    started: Instant,
    on_step: &mut dyn FnMut(&StepLine),
) -> anyhow::Result<()> {
    let (update, version) = backend.finish_update()?;
    state.version = version;
    // Every optimizer step of the update was skipped: no weights changed.
    if update.skipped > 0 && update.optimizer_steps == 0 {
        state.skipped_in_row += 1;
        anyhow::ensure!(
            state.skipped_in_row < config.train.max_skipped_in_row,
            "{} updates in a row had a non-finite loss or gradient; stopping (the last checkpoint is intact)",
            state.skipped_in_row
        );
    } else {
        state.skipped_in_row = 0;
    }
    let line = StepLine {
        kind: "train",
        step: p.step,
        version,
        wall_s: started.elapsed().as_secs_f64(),
        train: p.outcomes,
        generated_tokens: p.generated,
        generated_tokens_per_s: p.generated as f64 / p.rollout_s.max(1e-9),
        prompt_tokens_reused: p.prompt_tokens_reused,
        trained_tokens_per_s: update.tokens_trained as f64
            / (update.time_update_s + update.time_prepare_s).max(1e-9),
        env_turns: p.turns,
        env_steps: p.steps,
        search: p.search,
        rollout_s: p.rollout_s,
        update,
        validation: None,
        supervision: backend.supervision(),
        replay: p.replay,
    };
    run.log_metrics(&line)?;
    crate::metrics::record_step(&line);
    on_step(&line);
    Ok(())
}

fn save_checkpoint(
    backend: &mut dyn Backend,
    run: &RunDir,
    state: &TrainState,
    config: &Config,
) -> anyhow::Result<()> {
    let dir = run.checkpoint_dir(state.next_step);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    backend.checkpoint(&dir, state)?;
    std::fs::write(
        dir.join("train_state.json"),
        serde_json::to_string_pretty(state)?,
    )?;
    RunDir::mark_complete(&dir)?;
    crate::metrics::checkpoint_written();
    run.prune_checkpoints(config.train.keep_last, state.best_success.map(|(_, s)| s))?;
    Ok(())
}
