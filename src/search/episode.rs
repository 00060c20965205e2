//! Playing one episode turn by turn: build the prompt, ask a sampler for a reply, parse it, step
//! the environment, record. Pure logic over an environment and a [`Sampler`]; the search actor is
//! a thin loop around it, and the serial (deterministic) mode calls it directly.
//!
//! The whole episode is one token sequence (system, user, assistant, user, ...): the generated
//! token ids are kept as sampled (never re-tokenized from text), so the learner trains on exactly
//! what the policy produced. `assistant_mask` marks the generated tokens, the only ones trained.

use serde::Serialize;

use super::prompt::{self, LastTurn, PromptForm};
use crate::env::{
    Env, ParsedReply, TaskEnv, TaskKind, TurnResult, TurnRules, parse_reply, play_turn,
};

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

/// Settings of the turn loop that do not change within a run.
#[derive(Debug, Clone)]
pub struct EpisodeSettings {
    pub rules: TurnRules,
    pub max_turns: usize,
    pub form: PromptForm,
    /// The episode stops (as a failure) before a turn whose prompt would not leave room for a
    /// full reply inside this many tokens.
    pub context_limit: usize,
    pub max_new_tokens: usize,
}

/// Which instance an episode plays and how its samples are seeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EpisodeSpec {
    /// Unique within a run; used in logs and to match replies, never as a metric label.
    pub id: u64,
    /// The group (instance) within its training step.
    pub group: usize,
    /// The environment seed: every episode of a group shares it.
    pub env_seed: u64,
    /// Root of this episode's sampling seeds.
    pub sample_seed: u64,
}

/// One turn as the agent saw and did it, for logs and readable sample files.
#[derive(Debug, Clone, Serialize)]
pub struct TurnLog {
    pub user: String,
    pub reply: String,
    pub actions: Vec<String>,
    pub reward: f64,
    pub penalty: f64,
    pub policy_version: u64,
}

/// A finished episode: the training sequence and what happened.
#[derive(Debug, Clone, Serialize)]
pub struct Episode {
    pub spec: EpisodeSpec,
    pub tokens: Vec<u32>,
    /// 1 where the token was generated by the policy (trained), 0 for environment text.
    pub assistant_mask: Vec<u8>,
    /// For each token, the policy version that generated it (0 on environment tokens).
    pub token_version: Vec<u64>,
    pub turns: Vec<TurnLog>,
    /// Sum of turn rewards plus format penalties.
    pub ret: f64,
    pub success: bool,
    /// Turns whose reply broke the format.
    pub format_errors: usize,
    /// Tokens generated for this episode, kept or not (search makes more than it keeps).
    pub generated_tokens: usize,
    /// What TSR search spent on this episode.
    pub search: SearchCounts,
    /// The episode hit the context limit and was cut short.
    pub truncated: bool,
    /// Wall time spent playing it (search included), seconds.
    pub seconds: f64,
    /// The optimal solution length of its instance, where the task knows it (Sokoban).
    pub optimal_len: Option<usize>,
}

/// The token sequence being built.
#[derive(Debug, Clone, Default)]
struct Sequence {
    tokens: Vec<u32>,
    mask: Vec<u8>,
    version: Vec<u64>,
}

impl Sequence {
    fn push_env(&mut self, ids: &[u32]) {
        self.tokens.extend_from_slice(ids);
        self.mask.extend(std::iter::repeat_n(0, ids.len()));
        self.version.extend(std::iter::repeat_n(0, ids.len()));
    }
    fn push_generated(&mut self, ids: &[u32], version: u64) {
        self.tokens.extend_from_slice(ids);
        self.mask.extend(std::iter::repeat_n(1, ids.len()));
        self.version.extend(std::iter::repeat_n(version, ids.len()));
    }
}

/// Seed of turn `turn` of an episode whose sampling root is `root` (SplitMix64 finaliser, so
/// neighbouring roots and turns give unrelated streams).
pub fn turn_seed(root: u64, turn: usize) -> u64 {
    let mut z = root ^ (turn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An episode in progress: its token sequence so far and its bookkeeping. Cloning it together
/// with a fork of its environment gives an independent branch (beam search, lookahead).
#[derive(Debug, Clone)]
pub struct EpisodeState {
    seq: Sequence,
    ep: Episode,
    /// Actions spent so far (the episode budget counts them).
    used: usize,
    /// What the next user message reports about the previous turn.
    last: LastTurn,
    /// Turns committed so far.
    turn: usize,
    /// The user text of the open turn, kept for the turn log.
    open_user: Option<String>,
    /// The episode has ended (environment, budget, turn limit or context).
    over: bool,
}

impl EpisodeState {
    /// Reset `env` to the spec's instance and start the sequence (system message in chat form).
    pub fn start(
        env: &mut dyn EnvHandle,
        spec: EpisodeSpec,
        settings: &EpisodeSettings,
        codec: &dyn Codec,
    ) -> Result<Self, SampleError> {
        env.reset(spec.env_seed)?;
        let mut seq = Sequence::default();
        if settings.form == PromptForm::Chat {
            let system = prompt::system_text(
                env.kind(),
                &env.action_names(),
                settings.rules.max_actions_per_turn,
            );
            seq.push_env(&codec.encode(&prompt::message("system", &system))?);
        }
        let ep = Episode {
            spec,
            tokens: Vec::new(),
            assistant_mask: Vec::new(),
            token_version: Vec::new(),
            turns: Vec::new(),
            ret: 0.0,
            success: false,
            format_errors: 0,
            generated_tokens: 0,
            search: SearchCounts::default(),
            truncated: false,
            seconds: 0.0,
            optimal_len: None,
        };
        Ok(Self {
            seq,
            ep,
            used: 0,
            last: LastTurn::default(),
            turn: 0,
            open_user: None,
            over: false,
        })
    }

    pub fn spec(&self) -> EpisodeSpec {
        self.ep.spec
    }
    /// The sequence so far: after `open_turn`, the prompt the model continues.
    pub fn tokens(&self) -> &[u32] {
        &self.seq.tokens
    }
    pub fn actions_used(&self) -> usize {
        self.used
    }
    pub fn turn(&self) -> usize {
        self.turn
    }
    pub fn is_over(&self) -> bool {
        self.over
    }
    /// Return so far (rewards plus format penalties).
    pub fn ret(&self) -> f64 {
        self.ep.ret
    }

    /// Open the next turn: append its user message and the assistant header. Returns false (and
    /// marks the episode over) when there is no next turn.
    pub fn open_turn(
        &mut self,
        env: &dyn EnvHandle,
        settings: &EpisodeSettings,
        codec: &dyn Codec,
    ) -> Result<bool, SampleError> {
        if self.over
            || self.turn >= settings.max_turns
            || self.used >= settings.rules.max_actions_per_episode
        {
            self.over = true;
            return Ok(false);
        }
        let left = settings.rules.max_actions_per_episode - self.used;
        let mut state = env.observation()?;
        if env.kind() == TaskKind::WebShop {
            // WebShop's actions change with the page, so every turn lists them.
            state.push_str(&format!(
                "\nAvailable actions: {}",
                env.action_names().join(", ")
            ));
        }
        let user = prompt::user_text(settings.form, &state, self.turn + 1, left, self.last);
        let head = format!(
            "{}{}",
            prompt::message("user", &user),
            prompt::assistant_header()
        );
        let head_ids = codec.encode(&head)?;
        if self.seq.tokens.len() + head_ids.len() + settings.max_new_tokens > settings.context_limit
        {
            self.ep.truncated = true;
            self.over = true;
            return Ok(false);
        }
        self.seq.push_env(&head_ids);
        self.open_user = Some(user);
        Ok(true)
    }

    /// Commit a reply to the open turn: append it, play it on `env`, record the outcome.
    pub fn commit(
        &mut self,
        env: &mut dyn EnvHandle,
        cand: &Candidate,
        version: u64,
        settings: &EpisodeSettings,
        codec: &dyn Codec,
    ) -> Result<TurnResult, SampleError> {
        let eot = codec.end_of_turn();
        let body: &[u32] = match cand.tokens.last() {
            Some(&t) if t == eot => &cand.tokens[..cand.tokens.len() - 1],
            _ => &cand.tokens,
        };
        let reply = codec.decode(body);
        self.seq.push_generated(&cand.tokens, version);
        if cand.tokens.last() != Some(&eot) {
            // The reply was cut at the length limit: close the turn as the template requires,
            // as environment text the policy is not trained on.
            self.seq.push_env(&[eot]);
        }
        self.seq.push_env(&codec.encode("\n")?);
        let parsed = parse_reply(
            &reply,
            settings.rules.max_actions_per_turn,
            settings.form.requires_think(),
        );
        let result = env.play(&parsed, self.used, &settings.rules)?;
        self.used += result.actions.len();
        self.turn += 1;
        self.ep.ret += result.reward + result.penalty;
        self.ep.format_errors += usize::from(result.penalty != 0.0);
        self.ep.success = result.success;
        self.ep.turns.push(TurnLog {
            user: self.open_user.take().unwrap_or_default(),
            reply,
            actions: result.actions.clone(),
            reward: result.reward,
            penalty: result.penalty,
            policy_version: version,
        });
        self.last = LastTurn {
            reward: Some(result.reward),
            no_valid_action: result.no_valid_action,
        };
        if result.done
            || self.used >= settings.rules.max_actions_per_episode
            || self.turn >= settings.max_turns
        {
            self.over = true;
        }
        Ok(result)
    }

    /// Add what finding this turn's reply cost.
    pub fn account(&mut self, generated: usize, counts: SearchCounts) {
        self.ep.generated_tokens += generated;
        self.ep.search.add(&counts);
    }

    /// The finished episode.
    pub fn finish(mut self) -> Episode {
        self.ep.tokens = self.seq.tokens;
        self.ep.assistant_mask = self.seq.mask;
        self.ep.token_version = self.seq.version;
        self.ep
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

/// Play one episode of `env` (which is reset to `spec.env_seed` first), one chooser call a turn.
pub fn play_episode(
    env: &mut dyn EnvHandle,
    spec: EpisodeSpec,
    settings: &EpisodeSettings,
    chooser: &mut dyn TurnChooser,
    sampler: &mut dyn Sampler,
    codec: &dyn Codec,
) -> Result<Episode, SampleError> {
    let mut state = EpisodeState::start(env, spec, settings, codec)?;
    while state.open_turn(env, settings, codec)? {
        let choice = chooser.choose(env, &state, settings, sampler, codec)?;
        // Asked after sampling: the version that actually produced this reply.
        let version = sampler.policy_version();
        state.commit(env, &choice.candidate, version, settings, codec)?;
        state.account(choice.generated, choice.counts);
    }
    Ok(state.finish())
}
