//! Metric updates derived from what the training loop sees: finished episodes, step reports,
//! validations and checkpoints. The loop calls these for both backends, so serial and actor
//! runs export the same series; actor-only figures (batches, queues) are set in the actors.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::search::Episode;
use crate::train::driver::StepLine;
use crate::train::plan::Outcomes;

/// The run's label values, fixed by [`init_series`] (empty when metrics are off).
static LABELS: OnceLock<(String, String)> = OnceLock::new();
/// Process start for the checkpoint clock; checkpoint times are milliseconds after it.
static CLOCK: OnceLock<Instant> = OnceLock::new();
static LAST_CHECKPOINT_MS: AtomicU64 = AtomicU64::new(0);

pub(super) fn set_labels(task: &str, search_kind: &str) {
    let _ = LABELS.set((task.to_owned(), search_kind.to_owned()));
}

fn labels() -> (String, String) {
    LABELS.get().cloned().unwrap_or_default()
}

fn outcome(e: &Episode) -> &'static str {
    match (e.success, e.truncated) {
        (true, _) => "success",
        (false, true) => "truncated",
        (false, false) => "failure",
    }
}

/// Count a batch of finished episodes: a training step's rollouts (`train`) or a validation's.
/// `wall_s` is the wall time the batch took.
pub fn record_episodes(episodes: &[Episode], wall_s: f64, train: bool) {
    let phase = if train { "train" } else { "validation" };
    let (task, search) = labels();
    for e in episodes {
        metrics::counter!(EPISODES, "phase" => phase, "outcome" => outcome(e)).increment(1);
    }
    let generated: usize = episodes.iter().map(|e| e.generated_tokens).sum();
    metrics::counter!(TOKENS_GENERATED, "phase" => phase).increment(generated as u64);
    metrics::histogram!(ROLLOUT_SECONDS, "phase" => phase).record(wall_s);
    let steps: usize = episodes
        .iter()
        .flat_map(|e| &e.turns)
        .map(|t| t.actions.len())
        .sum();
    metrics::counter!(ENV_STEPS, "task" => task).increment(steps as u64);
    let outcomes = Outcomes::of(episodes);
    if !train {
        metrics::gauge!(VALIDATION_SUCCESS).set(outcomes.success_rate);
        metrics::gauge!(VALIDATION_RETURN).set(outcomes.mean_return);
        return;
    }
    let mut spent = crate::search::episode::SearchCounts::default();
    for e in episodes {
        spent.add(&e.search);
    }
    let s = search.clone();
    metrics::counter!(SEARCH_CANDIDATES, "search" => s).increment(spent.extra_candidates as u64);
    let s = search.clone();
    metrics::counter!(SEARCH_FORKS, "search" => s).increment(spent.forks as u64);
    let s = search.clone();
    metrics::counter!(SEARCH_TOKENS, "search" => s).increment(spent.discarded_tokens as u64);
    let per_episode = metrics::histogram!(SEARCH_SECONDS, "search" => search.clone());
    for e in episodes {
        per_episode.record(e.search.seconds);
    }
    // Episodes overlap in time, so the share compares summed episode times, not wall time.
    let busy: f64 = episodes.iter().map(|e| e.seconds).sum();
    let share = if busy > 0.0 {
        (spent.seconds / busy).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let s = search.clone();
    metrics::gauge!(SEARCH_TIME_SHARE, "search" => s).set(share);
    let per_turn = crate::train::driver::SearchAccounting::of(episodes).candidates_per_turn;
    metrics::gauge!(SEARCH_CANDIDATES_PER_TURN, "search" => search).set(per_turn);
    metrics::gauge!(TRAIN_SUCCESS).set(outcomes.success_rate);
    metrics::gauge!(TRAIN_RETURN).set(outcomes.mean_return);
}

/// A training step is complete: its update's figures.
pub fn record_step(line: &StepLine) {
    crate::train::report_update(&line.update);
    metrics::gauge!(POLICY_VERSION, "role" => "learner").set(line.version as f64);
    if let Some(replay) = &line.replay {
        metrics::counter!(REPLAYED).increment(replay.groups as u64);
        metrics::gauge!(REPLAY_WAITING).set(replay.waiting as f64);
    }
}

fn now_ms() -> u64 {
    CLOCK.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A complete checkpoint was written: the checkpoint age starts again from 0.
pub fn checkpoint_written() {
    LAST_CHECKPOINT_MS.store(now_ms(), Ordering::Relaxed);
    metrics::gauge!(CHECKPOINT_AGE).set(0.0);
}

/// Keep [`CHECKPOINT_AGE`] current once a second (the exporter renders only stored values).
pub(super) fn start_checkpoint_clock() {
    LAST_CHECKPOINT_MS.store(now_ms(), Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("tsr-checkpoint-age".into())
        .spawn(|| {
            loop {
                let age_ms = now_ms().saturating_sub(LAST_CHECKPOINT_MS.load(Ordering::Relaxed));
                metrics::gauge!(CHECKPOINT_AGE).set(age_ms as f64 / 1000.0);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("checkpoint age will not be updated: {e}");
    }
}
