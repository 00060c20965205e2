//! Shared by the search test files: a scripted sampler and a character-level codec so the best
//! candidate is known in advance, episode settings and small lakes.
#![allow(dead_code)]

use tsr::env::frozenlake::{FrozenLake, TurnLimits};
use tsr::env::{TaskEnv, TurnRules};
use tsr::search::prompt::PromptForm;
use tsr::search::score::Horizon;
use tsr::search::{Candidate, Codec, EpisodeSettings, EpisodeSpec, SampleError, Sampler};

/// One token per character; the end-of-turn token is outside the character range.
pub struct CharCodec;
pub const EOT: u32 = 0x11_0000;

impl Codec for CharCodec {
    fn encode(&self, text: &str) -> Result<Vec<u32>, SampleError> {
        Ok(text.chars().map(|c| c as u32).collect())
    }
    fn decode(&self, ids: &[u32]) -> String {
        ids.iter().filter_map(|&i| char::from_u32(i)).collect()
    }
    fn end_of_turn(&self) -> u32 {
        EOT
    }
}

/// Answers every call from a script: call k gets `script(k, n)`; records (prompt length, n).
pub struct Scripted<F: FnMut(usize, usize) -> Vec<String>> {
    pub script: F,
    pub calls: Vec<usize>,
}

impl<F: FnMut(usize, usize) -> Vec<String>> Sampler for Scripted<F> {
    fn sample(
        &mut self,
        _prompt: &[u32],
        n: usize,
        _seed: u64,
    ) -> Result<Vec<Candidate>, SampleError> {
        let k = self.calls.len();
        self.calls.push(n);
        let texts = (self.script)(k, n);
        assert_eq!(texts.len(), n, "script must answer n candidates");
        Ok(texts
            .into_iter()
            .map(|t| {
                let mut tokens = CharCodec.encode(&t).unwrap_or_default();
                tokens.push(EOT);
                Candidate {
                    logprobs: vec![0.0; tokens.len()],
                    tokens,
                    finished: true,
                }
            })
            .collect())
    }
    fn policy_version(&self) -> u64 {
        0
    }
}

pub fn answer(a: &str) -> String {
    format!("<answer>{a}</answer>")
}

pub fn settings(max_turns: usize) -> EpisodeSettings {
    EpisodeSettings {
        rules: TurnRules {
            max_actions_per_turn: 1,
            max_actions_per_episode: 10,
            format_penalty: -0.1,
        },
        max_turns,
        form: PromptForm::Compact,
        context_limit: 100_000,
        max_new_tokens: 32,
    }
}

/// Start top-left, goal two cells to the right; a hole below the start.
pub fn corridor(success_rate: f64) -> TaskEnv {
    TaskEnv::FrozenLake(FrozenLake::from_map("SFG/HFF/FFF", success_rate).expect("valid map"))
}

/// The horizon of an episode's first turn under `rules` and a limit of 5 turns.
pub fn first_turn(rules: &TurnRules) -> Horizon {
    Horizon {
        limits: TurnLimits {
            max_turns: 5,
            max_actions_per_turn: rules.max_actions_per_turn,
            max_actions_per_episode: rules.max_actions_per_episode,
        },
        turns_left: 5,
        actions_left: rules.max_actions_per_episode,
    }
}

pub fn spec() -> EpisodeSpec {
    EpisodeSpec {
        id: 1,
        group: 0,
        env_seed: 0,
        sample_seed: 7,
    }
}
