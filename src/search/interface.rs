//! What the turn loop talks to: a sampler that continues prompts, a codec between text and
//! token ids, a handle on the real environment, and the chooser that picks each turn's reply
//! (with what finding it cost). Implemented by the policy (serial mode), by handles on the actors,
//! and by scripted fakes in tests.

use serde::Serialize;

use super::episode::{EpisodeSettings, EpisodeState, turn_seed};
use crate::env::{Env, ParsedReply, TaskEnv, TaskKind, TurnResult, TurnRules, play_turn};

/// One sampled continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Generated token ids, including the end-of-turn token when the model produced it.
    pub tokens: Vec<u32>,
    /// Log-prob of each generated token under the sampling policy.
    pub logprobs: Vec<f32>,
    /// The model stopped on its own (end-of-turn token) rather than at the length limit.
    pub finished: bool,
}

/// Why a sampler could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// The inference side has shut down (the run is stopping).
    #[error("the sampler is closed")]
    Closed,
    #[error("sampling failed: {0}")]
    Failed(String),
    /// The environment actor holding the episode lost it (e.g. it was restarted).
    #[error("environment lost: {0}")]
    EnvLost(String),
}

/// Something that continues prompts: the policy itself (serial mode) or a handle to the
/// inference actor.
pub trait Sampler {
    /// `n` continuations of `prompt`; continuation i is a function of (`seed`, i) and the weights.
    fn sample(
        &mut self,
        prompt: &[u32],
        n: usize,
        seed: u64,
    ) -> Result<Vec<Candidate>, SampleError>;
    /// Continuations of several prompts, `(prompt, n, seed)` each, answered in order. The
    /// default asks one after another; samplers that batch send them together, so that the
    /// branches of a search share one inference batch instead of waiting for one each.
    fn sample_each(
        &mut self,
        requests: &[(&[u32], usize, u64)],
    ) -> Result<Vec<Vec<Candidate>>, SampleError> {
        requests
            .iter()
            .map(|&(prompt, n, seed)| self.sample(prompt, n, seed))
            .collect()
    }
    /// Version of the weights the most recent samples came from.
    fn policy_version(&self) -> u64;
}

/// Text <-> token ids, as the sampler's tokenizer does it.
pub trait Codec {
    fn encode(&self, text: &str) -> Result<Vec<u32>, SampleError>;
    fn decode(&self, ids: &[u32]) -> String;
    /// The end-of-turn token (`<|im_end|>`).
    fn end_of_turn(&self) -> u32;
}

/// Where the episode's real environment lives: in this thread (serial mode) or in an
/// environment actor (the search actor then holds a handle that sends it messages).
/// Its calls fail only when a remote environment is lost.
pub trait EnvHandle {
    fn reset(&mut self, seed: u64) -> Result<(), SampleError>;
    fn observation(&self) -> Result<String, SampleError>;
    fn kind(&self) -> TaskKind;
    fn action_names(&self) -> Vec<String>;
    /// Play one parsed reply under the turn rules (see `env::play_turn`).
    fn play(
        &mut self,
        reply: &ParsedReply,
        actions_used: usize,
        rules: &TurnRules,
    ) -> Result<TurnResult, SampleError>;
    /// An independent copy for search to try candidates on; the real environment is untouched.
    fn fork(&self) -> Result<TaskEnv, SampleError>;
}

impl EnvHandle for TaskEnv {
    fn reset(&mut self, seed: u64) -> Result<(), SampleError> {
        Env::reset(self, seed);
        Ok(())
    }
    fn observation(&self) -> Result<String, SampleError> {
        Ok(Env::observation(self))
    }
    fn kind(&self) -> TaskKind {
        TaskEnv::kind(self)
    }
    fn action_names(&self) -> Vec<String> {
        Env::action_names(self)
    }
    fn play(
        &mut self,
        reply: &ParsedReply,
        actions_used: usize,
        rules: &TurnRules,
    ) -> Result<TurnResult, SampleError> {
        Ok(play_turn(self, reply, actions_used, rules))
    }
    fn fork(&self) -> Result<TaskEnv, SampleError> {
        Ok(self.clone())
    }
}

/// What search spent, per turn or summed over an episode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SearchCounts {
    /// Candidate replies sampled beyond the one a plain rollout would take.
    pub extra_candidates: usize,
    /// Environment forks made.
    pub forks: usize,
    /// Generated tokens that were not kept in the trajectory.
    pub discarded_tokens: usize,
    /// Wall time spent scoring and in extra sampling, seconds.
    pub seconds: f64,
}

impl SearchCounts {
    pub fn add(&mut self, o: &SearchCounts) {
        self.extra_candidates += o.extra_candidates;
        self.forks += o.forks;
        self.discarded_tokens += o.discarded_tokens;
        self.seconds += o.seconds;
    }
}

/// The reply a chooser commits and what finding it cost.
#[derive(Debug, Clone)]
pub struct Choice {
    pub candidate: Candidate,
    /// All tokens generated for this turn (kept or not).
    pub generated: usize,
    pub counts: SearchCounts,
}

/// Chooses the reply a turn commits. Plain sampling takes one sample; the TSR strategies
/// (`super::strategy`) sample several and score them on forks of `env`.
pub trait TurnChooser {
    /// `state` has its turn open: `state.tokens()` is the prompt.
    fn choose(
        &mut self,
        env: &dyn EnvHandle,
        state: &EpisodeState,
        settings: &EpisodeSettings,
        sampler: &mut dyn Sampler,
        codec: &dyn Codec,
    ) -> Result<Choice, SampleError>;
}

/// One sample per turn: no search.
pub struct PlainSampling;

impl TurnChooser for PlainSampling {
    fn choose(
        &mut self,
        _env: &dyn EnvHandle,
        state: &EpisodeState,
        _settings: &EpisodeSettings,
        sampler: &mut dyn Sampler,
        _codec: &dyn Codec,
    ) -> Result<Choice, SampleError> {
        let seed = turn_seed(state.spec().sample_seed, state.turn() + 1);
        let candidate = sampler
            .sample(state.tokens(), 1, seed)?
            .pop()
            .ok_or_else(|| SampleError::Failed("sampler returned no candidate".into()))?;
        let generated = candidate.tokens.len();
        Ok(Choice {
            candidate,
            generated,
            counts: SearchCounts::default(),
        })
    }
}
