//! Training throughput, for `tsr bench train`: the same config run for a few steps in several
//! shapes (synchronous vs overlapped, 1..8 search actors), each measured over the same window
//! (from the end of the first step to the end of the last), so the figures compare as ratios.

use std::time::Instant;

use serde::Serialize;

use super::driver::{StepLine, train_loop};
use super::setup;
use crate::config::Config;

/// One measured shape.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRow {
    pub label: String,
    pub search_actors: usize,
    pub policy_lag: u64,
    pub deterministic: bool,
    pub steps_measured: usize,
    pub wall_s: f64,
    pub env_steps_per_s: f64,
    pub generated_tokens_per_s: f64,
    pub trained_tokens_per_s: f64,
    /// Sequences per inference batch (actor mode only).
    pub mean_inference_batch: Option<f64>,
    /// Share of the window the learner spent updating.
    pub learner_busy_share: f64,
}

/// Run `config` for `steps` steps (at least 2) and measure steps 1.. of it.
pub fn measure(
    label: &str,
    config: &Config,
    steps: u64,
    deterministic: bool,
) -> anyhow::Result<ThroughputRow> {
    let mut config = config.clone();
    config.train.steps = steps.max(2);
    config.train.val_every = 0;
    config.train.checkpoint_every = 0;
    config.train.samples_every = 0;
    let running = setup::into_backend(setup::fresh(config.clone())?, deterministic)?;
    let setup::Running {
        mut backend,
        config,
        mut run,
        state,
    } = running;
    let mut marks: Vec<(Instant, StepLine)> = Vec::new();
    {
        let backend_ref = &mut backend;
        let mut on_step = |line: &StepLine| marks.push((Instant::now(), line.clone()));
        train_loop(
            backend_ref.as_mut(),
            &config,
            &mut run,
            state,
            &mut on_step,
            &|| false,
        )?;
    }
    anyhow::ensure!(marks.len() >= 2, "needs at least two steps to measure");
    let window = &marks[1..];
    let wall = window
        .last()
        .map(|m| m.0)
        .unwrap_or_else(Instant::now)
        .duration_since(marks[0].0)
        .as_secs_f64();
    let sum = |f: &dyn Fn(&StepLine) -> f64| window.iter().map(|(_, l)| f(l)).sum::<f64>();
    let counts = backend.inference_counts();
    Ok(ThroughputRow {
        label: label.to_owned(),
        search_actors: config.actors.search_actors,
        policy_lag: config.train.policy_lag,
        deterministic,
        steps_measured: window.len(),
        wall_s: wall,
        env_steps_per_s: sum(&|l| l.env_steps as f64) / wall,
        generated_tokens_per_s: sum(&|l| l.generated_tokens as f64) / wall,
        trained_tokens_per_s: sum(&|l| l.update.tokens_trained as f64) / wall,
        mean_inference_batch: counts.map(|(b, s)| s as f64 / b.max(1) as f64),
        learner_busy_share: sum(&|l| l.update.time_prepare_s + l.update.time_update_s) / wall,
    })
}

/// The shapes issue 4 asks for: synchronous vs overlapped on the same config, and 1, 2, 4, 8
/// (and 16) search actors (overlapped); plus overlapped without the prompt cache.
pub fn standard_grid(config: &Config, steps: u64) -> anyhow::Result<Vec<ThroughputRow>> {
    let mut rows = Vec::new();
    for (label, lag) in [("synchronous", 0u64), ("overlapped", 1)] {
        let mut c = config.clone();
        c.train.policy_lag = lag;
        rows.push(measure(label, &c, steps, false)?);
    }
    // The same overlapped shape with every turn prefilled from its first token again.
    let mut c = config.clone();
    c.train.policy_lag = 1;
    c.model.prompt_cache_entries = 0;
    rows.push(measure("overlapped, no prompt cache", &c, steps, false)?);
    for actors in [1usize, 2, 4, 8, 16] {
        let mut c = config.clone();
        c.actors.search_actors = actors;
        c.train.policy_lag = 1;
        rows.push(measure(
            &format!("search_actors={actors}"),
            &c,
            steps,
            false,
        )?);
    }
    Ok(rows)
}
