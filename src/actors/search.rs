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
use super::inference::{InferenceMsg, RemoteSampler};
use crate::env::TaskEnv;
use crate::metrics as m;
use crate::policy::{Sampling, Tokenizer};
use crate::search::strategy::Strategy;
use crate::search::{Episode, EpisodeSettings, EpisodeSpec};

/// Attempts per episode before the failure goes to the coordinator.
const MAX_ATTEMPTS: usize = 3;

/// What every search actor shares; cloned into each thread.
#[derive(Clone)]
pub struct SearchShared {
    pub envs: Vec<Addr<EnvActor>>,
    /// For the task's fixed facts (action names) without asking an environment actor.
    pub template: TaskEnv,
    pub inference: Sender<InferenceMsg>,
    pub tokenizer: Arc<Tokenizer>,
    pub settings: EpisodeSettings,
    pub strategy: Arc<Strategy>,
}

pub struct SearchActor {
    shared: SearchShared,
}

impl SearchActor {
    pub fn new(shared: SearchShared) -> Self {
        Self { shared }
    }

    fn play(&self, msg: &RunEpisode) -> Result<Episode, String> {
        let s = &self.shared;
        let addr = s.envs[(msg.spec.id % s.envs.len() as u64) as usize].clone();
        let mut env = RemoteEnv::new(addr, msg.spec.id, &s.template);
        let mut sampler = RemoteSampler {
            tx: s.inference.clone(),
            sampling: msg.sampling.clone(),
            max_new_tokens: s.settings.max_new_tokens,
            version: 0,
            timeout: std::time::Duration::from_secs(600),
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
        let mut last_error = String::new();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                metrics::counter!(m::ACTOR_RESTARTS, "role" => "search").increment(1);
                tracing::warn!(
                    episode = msg.spec.id,
                    attempt,
                    "replaying episode from its start: {last_error}"
                );
            }
            match catch_unwind(AssertUnwindSafe(|| self.play(&msg))) {
                Ok(Ok(episode)) => return Ok(episode),
                Ok(Err(e)) if e.contains("sampler is closed") => return Err(e),
                Ok(Err(e)) => last_error = e,
                Err(_) => last_error = "the episode panicked".into(),
            }
        }
        Err(format!(
            "episode {} failed {MAX_ATTEMPTS} times: {last_error}",
            msg.spec.id
        ))
    }
}
