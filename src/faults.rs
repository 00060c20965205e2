//! Fault injection (`[faults]`, everything off by default) and the supervision counters that
//! prove a faulty run lost nothing and counted nothing twice.
//!
//! Faults are rolled on seeded dice ([`Dice`]): every random choice derives from the run seed,
//! a role and an index, so a fault pattern can be replayed. The actors consult the section where
//! the fault would really happen (an environment actor while stepping, a search actor while
//! playing a step, the inference actor before a batch, the learner before an update).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use documented::DocumentedFields;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{Issues, Section};
use crate::metrics as m;
use crate::search::Episode;
use crate::train::learner::{Learner, LearnerError, UpdateReport};

/// `[faults]`: injected faults for reliability tests and soaks, and the retry budgets of the
/// supervisors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsSection {
    /// Probability that an environment actor panics while stepping an environment (per step;
    /// 0 = off). Its supervisor restarts it empty; the episodes it held are replayed.
    pub env_panic_p: f64,
    /// Probability that a search actor panics while playing a step (per step; 0 = off). The
    /// episode is replayed from its start.
    pub search_panic_p: f64,
    /// Delay added before every inference batch, in milliseconds (0 = off).
    pub inference_delay_ms: f64,
    /// Uniformly random extra delay on top of `inference_delay_ms`, in milliseconds (0 = none).
    pub inference_jitter_ms: f64,
    /// Probability that a learner update fails before touching the weights (0 = off); it is
    /// retried on the same episodes.
    pub learner_fail_p: f64,
    /// Delay added before every learner update, in milliseconds: a deliberately slow learner
    /// (0 = off).
    pub learner_delay_ms: f64,
    /// Make the loss of every update NaN once the weights reach this version (0 = off), to
    /// exercise the skip of non-finite updates and `train.max_skipped_in_row`.
    pub nan_loss_from_version: u64,
    /// Supervision, not injection: plays of one episode (the first and its replays) before its
    /// failure stops the run.
    pub episode_attempts: usize,
    /// Supervision, not injection: attempts of one learner update before its failure stops the
    /// run (an attempt is retried only when it failed before changing any weight).
    pub learner_attempts: usize,
}

impl Default for FaultsSection {
    fn default() -> Self {
        Self {
            env_panic_p: 0.0,
            search_panic_p: 0.0,
            inference_delay_ms: 0.0,
            inference_jitter_ms: 0.0,
            learner_fail_p: 0.0,
            learner_delay_ms: 0.0,
            nan_loss_from_version: 0,
            episode_attempts: 8,
            learner_attempts: 8,
        }
    }
}

impl Section for FaultsSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        // A certain panic would replay an episode forever; keep every probability below 1
        // except the learner's, whose budget ends the run with a clear error.
        issues.range(&format!("{p}.env_panic_p"), self.env_panic_p, 0.0, 0.5);
        issues.range(
            &format!("{p}.search_panic_p"),
            self.search_panic_p,
            0.0,
            0.5,
        );
        issues.range(
            &format!("{p}.learner_fail_p"),
            self.learner_fail_p,
            0.0,
            1.0,
        );
        for (key, ms) in [
            ("inference_delay_ms", self.inference_delay_ms),
            ("inference_jitter_ms", self.inference_jitter_ms),
            ("learner_delay_ms", self.learner_delay_ms),
        ] {
            issues.range(&format!("{p}.{key}"), ms, 0.0, 600_000.0);
        }
        issues.range(
            &format!("{p}.episode_attempts"),
            self.episode_attempts,
            1,
            1000,
        );
        issues.range(
            &format!("{p}.learner_attempts"),
            self.learner_attempts,
            1,
            1000,
        );
    }
}

/// Who rolls the dice; part of each die's seed so roles never share a stream.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    Env = 1,
    Search = 2,
    Inference = 3,
    Learner = 4,
}

/// A seeded die for fault decisions.
#[derive(Debug, Clone)]
pub struct Dice(ChaCha8Rng);

impl Dice {
    /// The die of `role` number `index` in a run seeded with `run_seed`.
    pub fn new(run_seed: u64, role: Role, index: u64) -> Self {
        // SplitMix64 finaliser: nearby (seed, role, index) triples get unrelated streams.
        let mut z = run_seed
            ^ (role as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ index.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self(ChaCha8Rng::seed_from_u64(z ^ (z >> 31)))
    }

    /// True with probability `p` (never rolls when `p` is 0, so a run without faults draws
    /// nothing).
    pub fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.0.random_range(0.0..1.0) < p
    }

    /// `base_ms` plus up to `jitter_ms` drawn uniformly.
    pub fn delay(&mut self, base_ms: f64, jitter_ms: f64) -> Duration {
        let extra = if jitter_ms > 0.0 {
            self.0.random_range(0.0..jitter_ms)
        } else {
            0.0
        };
        Duration::from_secs_f64((base_ms + extra).max(0.0) / 1000.0)
    }
}

/// Panic on purpose (a fault the supervisors must absorb) with probability `p`.
pub fn maybe_panic(dice: &mut Dice, p: f64, who: &str) {
    if dice.roll(p) {
        panic!("injected fault: {who} panics");
    }
}

/// Running totals shared by every actor of one process. Invariant after every step:
/// `episodes_started == episodes_finished + episodes_replayed + episodes_abandoned`.
#[derive(Debug, Default)]
pub struct Supervision {
    env_restarts: AtomicU64,
    search_restarts: AtomicU64,
    learner_retries: AtomicU64,
    episodes_started: AtomicU64,
    episodes_finished: AtomicU64,
    episodes_replayed: AtomicU64,
    episodes_abandoned: AtomicU64,
    inference_queue_peak: AtomicU64,
}

/// A snapshot of [`Supervision`], written into every `metrics.jsonl` line of the actor mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisionCounts {
    /// Environment actors restarted by their supervisor.
    pub env_restarts: u64,
    /// Episodes whose search actor panicked (each is replayed).
    pub search_restarts: u64,
    /// Learner updates attempted again after a failure.
    pub learner_retries: u64,
    /// Plays of an episode begun (first plays and replays).
    pub episodes_started: u64,
    /// Plays that ended with an episode handed to the trainer.
    pub episodes_finished: u64,
    /// Plays that failed and were played again from the start.
    pub episodes_replayed: u64,
    /// Plays that failed with no attempt left (the run stops).
    pub episodes_abandoned: u64,
    /// Most inference requests ever waiting at once.
    pub inference_queue_peak: u64,
}

impl Supervision {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn env_restarted(&self) {
        Self::bump(&self.env_restarts);
        metrics::counter!(m::ACTOR_RESTARTS, "role" => "env").increment(1);
    }
    pub fn search_restarted(&self) {
        Self::bump(&self.search_restarts);
        metrics::counter!(m::ACTOR_RESTARTS, "role" => "search").increment(1);
    }
    pub fn learner_retried(&self) {
        Self::bump(&self.learner_retries);
        metrics::counter!(m::ACTOR_RESTARTS, "role" => "learner").increment(1);
    }
    pub fn episode_started(&self) {
        Self::bump(&self.episodes_started);
    }
    pub fn episode_finished(&self) {
        Self::bump(&self.episodes_finished);
    }
    pub fn episode_replayed(&self) {
        Self::bump(&self.episodes_replayed);
    }
    pub fn episode_abandoned(&self) {
        Self::bump(&self.episodes_abandoned);
    }
    pub fn inference_queue(&self, depth: usize) {
        self.inference_queue_peak
            .fetch_max(depth as u64, Ordering::Relaxed);
    }
    pub fn counts(&self) -> SupervisionCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SupervisionCounts {
            env_restarts: get(&self.env_restarts),
            search_restarts: get(&self.search_restarts),
            learner_retries: get(&self.learner_retries),
            episodes_started: get(&self.episodes_started),
            episodes_finished: get(&self.episodes_finished),
            episodes_replayed: get(&self.episodes_replayed),
            episodes_abandoned: get(&self.episodes_abandoned),
            inference_queue_peak: get(&self.inference_queue_peak),
        }
    }
}

/// The learner's faults and its retry: shared by the serial backend and the learner actor.
#[derive(Debug, Clone)]
pub struct LearnerFaults {
    section: FaultsSection,
    dice: Dice,
    /// Where retries are counted (the actor system's totals; `None` counts in Prometheus only).
    supervision: Option<std::sync::Arc<Supervision>>,
}

impl Default for LearnerFaults {
    fn default() -> Self {
        Self::new(&FaultsSection::default(), 0, None)
    }
}

impl LearnerFaults {
    pub fn new(
        section: &FaultsSection,
        run_seed: u64,
        supervision: Option<std::sync::Arc<Supervision>>,
    ) -> Self {
        Self {
            section: section.clone(),
            dice: Dice::new(run_seed, Role::Learner, 0),
            supervision,
        }
    }

    /// One update, with the configured delay, poisoning and injected failures. A failed
    /// attempt that changed no weight (the optimizer made no step) is retried on the same
    /// episodes; one that did, or the last allowed attempt, is returned as the error.
    pub fn update(
        &mut self,
        learner: &mut Learner,
        episodes: &[Episode],
    ) -> Result<UpdateReport, LearnerError> {
        let s = &self.section;
        if s.learner_delay_ms > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(s.learner_delay_ms / 1000.0));
        }
        let poison = s.nan_loss_from_version > 0 && learner.version >= s.nan_loss_from_version;
        let attempts = s.learner_attempts.max(1);
        let mut attempt = 1;
        loop {
            let steps_before = learner.optimizer.step;
            let result = if self.dice.roll(s.learner_fail_p) {
                Err(LearnerError::Invalid(
                    "injected fault: the learner update failed".into(),
                ))
            } else {
                learner.update_with(episodes, poison)
            };
            match result {
                Err(e) if attempt < attempts && learner.optimizer.step == steps_before => {
                    tracing::warn!(attempt, "learner update failed, retrying: {e}");
                    match &self.supervision {
                        Some(sup) => sup.learner_retried(),
                        None => {
                            metrics::counter!(m::ACTOR_RESTARTS, "role" => "learner").increment(1)
                        }
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Keep injected panics out of stderr (they are expected, counted and logged as warnings);
/// every other panic still reaches the previous hook. Installed once per process.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !text.starts_with("injected fault") {
                previous(info);
            }
        }));
    });
}
