//! The search actor: drives one episode at a time, turn by turn (prompt, samples, parse, step,
//! record), through the pure `play_episode`. Several run on their own threads (an actix
//! `SyncArbiter`), so the inference actor sees many requests at once.
//!
//! An episode that fails (its environment actor lost it, or the episode code panicked) is played
//! again from its start, so no episode is lost or counted twice; the retries are counted as
//! restarts.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use actix::prelude::*;
use crossbeam_channel::Sender;

use super::env::{EnvActor, RemoteEnv};
use super::inference::{InferenceMsg, InferenceStats, RemoteSampler};
use crate::env::TaskEnv;
use crate::faults::{Dice, FaultsSection, Role, Supervision};
use crate::metrics as m;
use crate::policy::{Sampling, Tokenizer};
use crate::search::strategy::Strategy;
use crate::search::{Episode, EpisodeSettings, EpisodeSpec};

/// What every search actor shares; cloned into each thread.
#[derive(Clone)]
pub struct SearchShared {
    pub envs: Vec<Addr<EnvActor>>,
    /// For the task's fixed facts (action names) without asking an environment actor.
    pub template: TaskEnv,
    pub inference: Sender<InferenceMsg>,
    /// The inference thread's counters, read to tell a busy inference thread from a stuck one.
    pub inference_progress: Arc<InferenceStats>,
    pub tokenizer: Arc<Tokenizer>,
    pub settings: EpisodeSettings,
    pub strategy: Arc<Strategy>,
    /// Injected faults and the episode attempt budget (`faults.episode_attempts`).
    pub faults: FaultsSection,
    /// Seeds the fault dice: each play of an episode gets its own die.
    pub run_seed: u64,
    /// Where plays, replays and restarts are counted.
    pub supervision: Arc<Supervision>,
}

pub struct SearchActor {
    shared: SearchShared,
}

impl SearchActor {
    pub fn new(shared: SearchShared) -> Self {
        Self { shared }
    }

    fn play(&self, msg: &RunEpisode, attempt: usize) -> Result<Episode, String> {
        let s = &self.shared;
        let addr = s.envs[(msg.spec.id % s.envs.len() as u64) as usize].clone();
        let mut env = RemoteEnv::new(addr, msg.spec.id, &s.template);
        if s.faults.search_panic_p > 0.0 {
            // Keyed by episode and attempt, so the fault pattern does not depend on which
            // thread happens to play the episode.
            let index = msg.spec.id.wrapping_mul(1024).wrapping_add(attempt as u64);
            env.dice = Some(Dice::new(s.run_seed, Role::Search, index));
            env.panic_p = s.faults.search_panic_p;
        }
        let mut sampler = RemoteSampler {
            tx: s.inference.clone(),
            sampling: msg.sampling.clone(),
            max_new_tokens: s.settings.max_new_tokens,
            version: 0,
            timeout: std::time::Duration::from_secs(600),
            progress: s.inference_progress.clone(),
        };
        s.strategy
            .play(
                &mut env,
                msg.spec,
                &s.settings,
                &mut sampler,
                s.tokenizer.as_ref(),
                msg.train,
            )
            .map_err(|e| e.to_string())
    }
}

impl Actor for SearchActor {
    type Context = SyncContext<Self>;
}

/// Play one episode.
#[derive(Message)]
#[rtype(result = "Result<Episode, String>")]
pub struct RunEpisode {
    pub spec: EpisodeSpec,
    pub sampling: Sampling,
    /// Training rollouts search; validation never does.
    pub train: bool,
}

impl Handler<RunEpisode> for SearchActor {
    type Result = Result<Episode, String>;
    fn handle(&mut self, msg: RunEpisode, _: &mut SyncContext<Self>) -> Self::Result {
        metrics::gauge!(m::QUEUE_DEPTH, "role" => "search").decrement(1);
        let sup = self.shared.supervision.clone();
        let attempts = self.shared.faults.episode_attempts.max(1);
        let mut last_error = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                sup.episode_replayed();
                tracing::warn!(
                    episode = msg.spec.id,
                    attempt,
                    "replaying episode from its start: {last_error}"
                );
            }
            sup.episode_started();
            match catch_unwind(AssertUnwindSafe(|| self.play(&msg, attempt))) {
                Ok(Ok(episode)) => {
                    sup.episode_finished();
                    return Ok(episode);
                }
                Ok(Err(e)) if e.contains("sampler is closed") => {
                    sup.episode_abandoned();
                    return Err(e);
                }
                Ok(Err(e)) => last_error = e,
                Err(_) => {
                    sup.search_restarted();
                    last_error = "the episode panicked".into();
                }
            }
        }
        sup.episode_abandoned();
        Err(format!(
            "episode {} failed {attempts} times: {last_error}",
            msg.spec.id
        ))
    }
}
