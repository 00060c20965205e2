//! The serial backend: rollouts and updates in this thread, one after the other. This is the
//! `--deterministic` mode (bit-for-bit reproducible: nothing depends on thread timing) and the
//! reference the actor system is checked against.

use std::path::Path;

use super::driver::{Backend, TrainState};
use super::learner::{Learner, UpdateReport};
use crate::env::TaskEnv;
use crate::policy::{GenRequest, Policy, Sampling, Tokenizer};
use crate::search::strategy::Strategy;
use crate::search::{
    Candidate, Codec, Episode, EpisodeSettings, EpisodeSpec, SampleError, Sampler,
};

impl Codec for Tokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>, SampleError> {
        Tokenizer::encode(self, text).map_err(|e| SampleError::Failed(e.to_string()))
    }
    fn decode(&self, ids: &[u32]) -> String {
        Tokenizer::decode(self, ids)
    }
    fn end_of_turn(&self) -> u32 {
        self.eos_id()
    }
}

/// Samples straight from a policy in this thread.
pub struct PolicySampler<'a> {
    pub policy: &'a Policy,
    pub sampling: Sampling,
    pub max_new_tokens: usize,
    pub version: u64,
}

impl Sampler for PolicySampler<'_> {
    fn sample(
        &mut self,
        prompt: &[u32],
        n: usize,
        seed: u64,
    ) -> Result<Vec<Candidate>, SampleError> {
        let mut out = self.sample_each(&[(prompt, n, seed)])?;
        Ok(out.pop().unwrap_or_default())
    }
    fn sample_each(
        &mut self,
        requests: &[(&[u32], usize, u64)],
    ) -> Result<Vec<Vec<Candidate>>, SampleError> {
        let reqs: Vec<GenRequest> = requests
            .iter()
            .map(|&(prompt, n, seed)| GenRequest {
                prompt: prompt.to_vec(),
                n,
                max_new_tokens: self.max_new_tokens,
                sampling: self.sampling.clone(),
                stop_strings: Vec::new(),
                seed,
            })
            .collect();
        let out = self
            .policy
            .generate(&reqs)
            .map_err(|e| SampleError::Failed(e.to_string()))?;
        Ok(out
            .into_iter()
            .map(|o| o.samples.into_iter().map(candidate_of).collect())
            .collect())
    }
    fn policy_version(&self) -> u64 {
        self.version
    }
}

/// A policy sample as the search sees it.
pub fn candidate_of(s: crate::policy::Sample) -> Candidate {
    Candidate {
        finished: s.finish != crate::policy::Finish::Length,
        tokens: s.tokens,
        logprobs: s.logprobs,
    }
}

pub struct SerialBackend {
    pub env: TaskEnv,
    pub learner: Learner,
    pub settings: EpisodeSettings,
    pub strategy: Strategy,
    /// Injected learner faults (off unless set) and the retry of a failed update.
    pub faults: crate::faults::LearnerFaults,
    pending: Option<Vec<Episode>>,
}

impl SerialBackend {
    pub fn new(
        env: TaskEnv,
        learner: Learner,
        settings: EpisodeSettings,
        strategy: Strategy,
    ) -> Self {
        Self {
            env,
            learner,
            settings,
            strategy,
            faults: Default::default(),
            pending: None,
        }
    }
}

impl Backend for SerialBackend {
    fn rollouts(
        &mut self,
        specs: &[EpisodeSpec],
        sampling: Sampling,
        train: bool,
    ) -> anyhow::Result<Vec<Episode>> {
        let policy = &self.learner.policy;
        let mut sampler = PolicySampler {
            policy,
            sampling,
            max_new_tokens: self.settings.max_new_tokens,
            version: self.learner.version,
        };
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut env = self.env.clone();
            out.push(self.strategy.play(
                &mut env,
                *spec,
                &self.settings,
                &mut sampler,
                policy.tokenizer(),
                train,
            )?);
        }
        Ok(out)
    }

    fn start_update(&mut self, episodes: Vec<Episode>) -> anyhow::Result<()> {
        self.pending = Some(episodes);
        Ok(())
    }

    fn finish_update(&mut self) -> anyhow::Result<(UpdateReport, u64)> {
        let episodes = self
            .pending
            .take()
            .ok_or_else(|| anyhow::anyhow!("no update pending"))?;
        let report = self.faults.update(&mut self.learner, &episodes)?;
        Ok((report, self.learner.version))
    }

    fn prompt_tokens_reused(&self) -> u64 {
        self.learner.policy.prompt_tokens_reused()
    }

    fn checkpoint(&mut self, dir: &Path, state: &TrainState) -> anyhow::Result<()> {
        let state = serde_json::to_value(state)?;
        self.learner
            .policy
            .save_checkpoint(dir, &self.learner.optimizer, &state)?;
        Ok(())
    }
}
