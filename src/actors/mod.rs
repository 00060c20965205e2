//! The actor system: environment actors, search actors, one batched inference actor and one
//! learner actor, exchanging messages through bounded queues. actix runs them (and is known only
//! inside this folder); the hot path from search to inference is a crossbeam channel.
//!
//! [`wire`] builds the whole system in one place:
//!
//! ```text
//!  coordinator ──RunEpisode──▶ search actors ×S ──Generate──▶ inference actor (batches)
//!       │                          │  ▲                         ▲
//!       │                          ▼  │ Open/Play/Fork          │ Publish(weights, version)
//!       │                      env actors ×E                    │
//!       └──────────Train(episodes)──────────────▶ learner actor ─┘
//! ```

pub mod batcher;
pub mod env;
pub mod inference;
pub mod learner;
pub mod search;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::{Context as _, anyhow};

use self::batcher::BatchLimits;
use self::env::EnvActor;
use self::learner::{Checkpoint, LearnerActor, Train};
use self::search::{RunEpisode, SearchActor, SearchShared};
use crate::config::Config;
use crate::env::TaskEnv;
use crate::faults::{Dice, LearnerFaults, Role, Supervision, SupervisionCounts};
use crate::policy::{Policy, Sampling};
use crate::search::strategy::Strategy;
use crate::search::{Episode, EpisodeSettings, EpisodeSpec};
use crate::train::driver::{Backend, TrainState};
use crate::train::learner::{Learner, UpdateReport};

/// The running system, as the training loop sees it.
pub struct ActorBackend {
    search: Addr<SearchActor>,
    learner: Addr<LearnerActor>,
    /// The update in flight, if any (at most one: the loop enforces the policy lag).
    pending: Option<Request<LearnerActor, Train>>,
    system: actix::System,
    /// Batch counts of the inference actor, for throughput reports.
    pub inference_stats: Arc<inference::InferenceStats>,
    /// Restarts, replays and episode accounting of every actor.
    pub supervision: Arc<Supervision>,
    system_thread: Option<std::thread::JoinHandle<()>>,
    inference_thread: Option<std::thread::JoinHandle<()>>,
}

/// Build and start every actor. `inference_policy` is a second copy of the learner's weights.
pub fn wire(
    config: &Config,
    env: TaskEnv,
    learner: Learner,
    inference_policy: Policy,
    settings: EpisodeSettings,
    strategy: Strategy,
) -> anyhow::Result<ActorBackend> {
    let a = &config.actors;
    let limits = BatchLimits {
        max_sequences: a.max_batch,
        max_tokens: a.max_batch_tokens,
        max_wait: Duration::from_secs_f64(a.max_wait_ms / 1000.0),
    };
    let stats = Arc::new(inference::InferenceStats::default());
    let supervision = Arc::new(Supervision::default());
    let (faults, seed) = (config.faults.clone(), config.run.seed);
    if faults.env_panic_p > 0.0 || faults.search_panic_p > 0.0 {
        crate::faults::quiet_injected_panics();
    }
    let inference_faults = inference::InferenceFaults {
        delay_ms: faults.inference_delay_ms,
        jitter_ms: faults.inference_jitter_ms,
        dice: Dice::new(seed, Role::Inference, 0),
        supervision: supervision.clone(),
    };
    let (inference_tx, inference_thread) = inference::spawn(
        inference_policy,
        learner.version,
        limits,
        a.queue_bound,
        stats.clone(),
        inference_faults,
    )?;
    let learner_faults = LearnerFaults::new(&faults, seed, Some(supervision.clone()));
    let (sup, progress) = (supervision.clone(), stats.clone());
    let shared_tokenizer = Arc::new(learner.policy.tokenizer().clone());
    let (search_actors, env_actors) = (a.search_actors, a.env_actors);
    let (addrs_tx, addrs_rx) = std::sync::mpsc::channel();
    let learner_cell = std::sync::Mutex::new(Some(learner));
    let strategy = Arc::new(strategy);
    let system_thread = std::thread::Builder::new()
        .name("tsr-actors".into())
        .spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                // Supervised: an environment actor that stops after a panic is restarted empty
                // behind the same address.
                let envs: Vec<Addr<EnvActor>> = (0..env_actors)
                    .map(|i| {
                        let template = env.clone();
                        let dice = Dice::new(seed, Role::Env, i as u64);
                        let (p, sup) = (faults.env_panic_p, sup.clone());
                        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| {
                            EnvActor::new(template, p, dice, sup)
                        })
                    })
                    .collect();
                let shared = SearchShared {
                    envs,
                    template: env,
                    inference: inference_tx.clone(),
                    inference_progress: progress,
                    tokenizer: shared_tokenizer,
                    settings,
                    strategy,
                    faults,
                    run_seed: seed,
                    supervision: sup,
                };
                let search =
                    SyncArbiter::start(search_actors, move || SearchActor::new(shared.clone()));
                let learner = learner_cell.lock().ok().and_then(|mut l| l.take());
                let learner = learner.map(|l| {
                    let cell = std::sync::Mutex::new(Some(l));
                    SyncArbiter::start(1, move || {
                        let l = cell
                            .lock()
                            .ok()
                            .and_then(|mut c| c.take())
                            .expect("the learner actor is started once");
                        LearnerActor::new(l, inference_tx.clone(), learner_faults.clone())
                    })
                });
                let _ = addrs_tx.send((search, learner, actix::System::current()));
            });
            let _ = system.run();
        })?;
    let (search, learner, system) = addrs_rx.recv().context("the actor system did not start")?;
    let learner =
        learner.ok_or_else(|| anyhow!("the learner was not handed to the actor system"))?;
    Ok(ActorBackend {
        search,
        learner,
        pending: None,
        system,
        inference_stats: stats,
        supervision,
        system_thread: Some(system_thread),
        inference_thread: Some(inference_thread),
    })
}

impl Backend for ActorBackend {
    fn rollouts(
        &mut self,
        specs: &[EpisodeSpec],
        sampling: Sampling,
        train: bool,
    ) -> anyhow::Result<Vec<Episode>> {
        metrics::gauge!(crate::metrics::QUEUE_DEPTH, "role" => "search")
            .increment(specs.len() as f64);
        let asks = specs.iter().map(|&spec| {
            self.search.send(RunEpisode {
                spec,
                sampling: sampling.clone(),
                train,
            })
        });
        let answers = futures::executor::block_on(futures::future::join_all(asks));
        answers
            .into_iter()
            .map(|a| {
                a.map_err(|e| anyhow!("search actor mailbox: {e}"))?
                    .map_err(|e| anyhow!(e))
            })
            .collect()
    }

    fn start_update(&mut self, episodes: Vec<Episode>) -> anyhow::Result<()> {
        anyhow::ensure!(self.pending.is_none(), "an update is already in flight");
        metrics::gauge!(crate::metrics::QUEUE_DEPTH, "role" => "learner").increment(1.0);
        self.pending = Some(self.learner.send(Train(episodes)));
        Ok(())
    }

    fn finish_update(&mut self) -> anyhow::Result<(UpdateReport, u64)> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| anyhow!("no update pending"))?;
        futures::executor::block_on(pending)
            .map_err(|e| anyhow!("learner mailbox: {e}"))?
            .map_err(|e| anyhow!(e))
    }

    fn inference_counts(&self) -> Option<(u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        Some((
            self.inference_stats.batches.load(Relaxed),
            self.inference_stats.sequences.load(Relaxed),
        ))
    }

    fn supervision(&self) -> Option<SupervisionCounts> {
        Some(self.supervision.counts())
    }

    fn prompt_tokens_reused(&self) -> u64 {
        self.inference_stats
            .prompt_tokens_reused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn checkpoint(&mut self, dir: &Path, state: &TrainState) -> anyhow::Result<()> {
        let msg = Checkpoint {
            dir: dir.to_owned(),
            state: state.clone(),
        };
        futures::executor::block_on(self.learner.send(msg))
            .map_err(|e| anyhow!("learner mailbox: {e}"))?
            .map_err(|e| anyhow!(e))
    }
}

impl Drop for ActorBackend {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(t) = self.system_thread.take() {
            let _ = t.join();
        }
        // The system's actors held the last inference senders; with them gone the thread exits.
        if let Some(t) = self.inference_thread.take() {
            let _ = t.join();
        }
    }
}
