//! TSR strategies: how a training trajectory is built. Per-turn strategies (best-of-N,
//! lookahead) are [`TurnChooser`]s inside the ordinary turn loop; beam search and best-of-N per
//! trajectory search over whole branches (see `beam.rs`). Validation never searches.

use crate::env::TaskEnv;
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::beam::{best_trajectory, play_beam};
use super::episode::{Candidate, Choice, EpisodeState, SearchCounts, turn_seed};
use super::score::{NO_VALID_ACTION, Potential, Scorer, Stochastic};
use super::{
    Codec, EnvHandle, Episode, EpisodeSettings, EpisodeSpec, PlainSampling, SampleError, Sampler,
    TurnChooser, play_episode,
};
use crate::config::Config;
use crate::env::parse_reply;

/// The configured strategy.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Plain sampling (also what `select` uses: it only changes which episodes are trained).
    Plain,
    BestOfN {
        n: usize,
        explore: usize,
        scorer: Scorer,
    },
    BestOfNTrajectory {
        n: usize,
    },
    Beam {
        width: usize,
        branch: usize,
        scorer: Scorer,
    },
    Lookahead {
        m: usize,
        explore: usize,
        depth: usize,
        scorer: Scorer,
    },
}

impl Strategy {
    pub fn from_config(config: &Config) -> Strategy {
        let s = &config.search;
        let scorer = Scorer {
            heuristic_weight: if s.scorer == "reward" {
                0.0
            } else {
                s.heuristic_weight
            },
            potential: if s.scorer == "optimal" {
                Potential::Optimal
            } else {
                Potential::Heuristic
            },
            stochastic: if s.stochastic == "independent" {
                Stochastic::Independent {
                    simulations: s.simulations,
                }
            } else {
                Stochastic::Shared
            },
        };
        match s.kind.as_str() {
            "best_of_n" => Strategy::BestOfN {
                n: s.n,
                explore: s.explore,
                scorer,
            },
            "best_of_n_trajectory" => Strategy::BestOfNTrajectory { n: s.n },
            "beam" => Strategy::Beam {
                width: s.width,
                branch: s.branch,
                scorer,
            },
            "lookahead" => Strategy::Lookahead {
                m: s.n,
                explore: s.explore,
                depth: s.depth,
                scorer,
            },
            _ => Strategy::Plain,
        }
    }

    /// Play one episode. `train = false` (validation, eval) always samples plainly.
    pub fn play(
        &self,
        env: &mut dyn EnvHandle,
        spec: EpisodeSpec,
        settings: &EpisodeSettings,
        sampler: &mut dyn Sampler,
        codec: &dyn Codec,
        train: bool,
    ) -> Result<Episode, SampleError> {
        let t0 = Instant::now();
        let mut episode = self.play_inner(env, spec, settings, sampler, codec, train)?;
        episode.seconds = t0.elapsed().as_secs_f64();
        Ok(episode)
    }

    fn play_inner(
        &self,
        env: &mut dyn EnvHandle,
        spec: EpisodeSpec,
        settings: &EpisodeSettings,
        sampler: &mut dyn Sampler,
        codec: &dyn Codec,
        train: bool,
    ) -> Result<Episode, SampleError> {
        match (train, self) {
            (false, _) | (true, Strategy::Plain) => {
                play_episode(env, spec, settings, &mut PlainSampling, sampler, codec)
            }
            (true, Strategy::BestOfN { n, explore, scorer }) => play_episode(
                env,
                spec,
                settings,
                &mut BestOfN {
                    n: *n,
                    explore: *explore,
                    scorer: *scorer,
                },
                sampler,
                codec,
            ),
            (
                true,
                Strategy::Lookahead {
                    m,
                    explore,
                    depth,
                    scorer,
                },
            ) => play_episode(
                env,
                spec,
                settings,
                &mut Lookahead {
                    m: *m,
                    explore: *explore,
                    depth: *depth,
                    scorer: *scorer,
                },
                sampler,
                codec,
            ),
            (
                true,
                Strategy::Beam {
                    width,
                    branch,
                    scorer,
                },
            ) => play_beam(env, spec, settings, *width, *branch, scorer, sampler, codec),
            (true, Strategy::BestOfNTrajectory { n }) => {
                best_trajectory(env, spec, settings, *n, sampler, codec)
            }
        }
    }
}

/// Index of the best score; ties go to the earliest.
pub fn argmax_first(scores: &[f64]) -> usize {
    let mut best = 0;
    for (i, s) in scores.iter().enumerate() {
        if *s > scores[best] {
            best = i;
        }
    }
    best
}

/// A well-formed reply with 1 to `max_actions` uniformly random valid actions, token for
/// token what the constrained decoder writes for it (end-of-turn included). Its log-probs are
/// 0: nothing sampled it, and the learner recomputes every trained token's log-prob.
/// Like a sampled reply it holds at most `max_tokens` tokens: actions are dropped from the end
/// until it fits, and a single action that does not fit is cut there (unfinished, as the
/// sampler would leave it).
pub fn random_reply(
    rng: &mut ChaCha8Rng,
    actions: &[String],
    max_actions: usize,
    max_tokens: usize,
    codec: &dyn Codec,
) -> Result<Candidate, SampleError> {
    let k = rng.random_range(1..=max_actions.max(1));
    let mut parts: Vec<&str> = (0..k)
        .map(|_| actions[rng.random_range(0..actions.len())].as_str())
        .collect();
    let encode = |parts: &[&str]| -> Result<Vec<u32>, SampleError> {
        let mut tokens = codec.encode(&super::answer_text(parts))?;
        tokens.push(codec.end_of_turn());
        Ok(tokens)
    };
    let mut tokens = encode(&parts)?;
    while tokens.len() > max_tokens && parts.len() > 1 {
        parts.pop();
        tokens = encode(&parts)?;
    }
    let finished = tokens.len() <= max_tokens;
    tokens.truncate(max_tokens.max(1));
    Ok(Candidate {
        logprobs: vec![0.0; tokens.len()],
        tokens,
        finished,
    })
}

/// A turn's candidates (sharing the prompt): the policy's `n` samples, then `explore` random
/// replies (see `search.explore`); how many of them the policy sampled; one fork of the real
/// environment that every candidate is tried from; and the turn's seed.
fn candidates_and_base(
    env: &dyn EnvHandle,
    state: &EpisodeState,
    settings: &EpisodeSettings,
    (n, explore): (usize, usize),
    sampler: &mut dyn Sampler,
    codec: &dyn Codec,
) -> Result<(u64, Vec<Candidate>, usize, crate::env::TaskEnv), SampleError> {
    let seed = turn_seed(state.spec().sample_seed, state.turn() + 1);
    let mut cands = sampler.sample(state.tokens(), n, seed)?;
    let sampled = cands.len();
    if explore > 0 {
        let actions = env.action_names();
        if !actions.is_empty() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ EXPLORE_STREAM);
            let max_actions = settings.rules.max_actions_per_turn;
            let max_tokens = settings.max_new_tokens;
            for _ in 0..explore {
                cands.push(random_reply(
                    &mut rng,
                    &actions,
                    max_actions,
                    max_tokens,
                    codec,
                )?);
            }
        }
    }
    Ok((seed, cands, sampled, env.fork()?))
}

/// Separates the exploration replies' draws from the turn's sampling seed.
const EXPLORE_STREAM: u64 = 0xE8_91_03_E5;

fn no_candidate() -> SampleError {
    SampleError::Failed("sampler returned no candidate".into())
}

/// Best-of-N per turn: N candidates share the prompt, each is scored on a fork, the best is
/// committed.
pub struct BestOfN {
    pub n: usize,
    /// Random replies added to the `n` samples (`search.explore`).
    pub explore: usize,
    pub scorer: Scorer,
}

impl TurnChooser for BestOfN {
    fn choose(
        &mut self,
        env: &dyn EnvHandle,
        state: &EpisodeState,
        settings: &EpisodeSettings,
        sampler: &mut dyn Sampler,
        codec: &dyn Codec,
    ) -> Result<Choice, SampleError> {
        let t0 = Instant::now();
        let (seed, cands, sampled, base) =
            candidates_and_base(env, state, settings, (self.n, self.explore), sampler, codec)?;
        let mut forks = 1;
        let scores: Vec<f64> = cands
            .iter()
            .map(|c| {
                let reply = parse_reply(
                    &codec.decode(&c.tokens),
                    settings.rules.max_actions_per_turn,
                    settings.form.requires_think(),
                );
                let horizon = state.horizon(settings);
                let scored = self
                    .scorer
                    .score(&base, &reply, horizon, &settings.rules, seed);
                forks += scored.forks;
                scored.score
            })
            .collect();
        finish_choice(cands, sampled, &scores, forks, t0)
    }
}

/// Commit the best-scoring of `cands`, of which the first `sampled` came from the policy (the
/// rest are random exploration replies, which cost no generated tokens).
fn finish_choice(
    cands: Vec<Candidate>,
    sampled: usize,
    scores: &[f64],
    forks: usize,
    t0: Instant,
) -> Result<Choice, SampleError> {
    let best = argmax_first(scores);
    let generated: usize = cands.iter().take(sampled).map(|c| c.tokens.len()).sum();
    let candidate = cands.into_iter().nth(best).ok_or_else(no_candidate)?;
    let kept = if best < sampled {
        candidate.tokens.len()
    } else {
        0
    };
    let counts = SearchCounts {
        extra_candidates: scores.len().saturating_sub(1),
        forks,
        discarded_tokens: generated - kept,
        seconds: t0.elapsed().as_secs_f64(),
    };
    Ok(Choice {
        candidate,
        generated,
        counts,
    })
}

/// One lookahead candidate being continued on its own fork.
struct Branch {
    state: EpisodeState,
    fork: TaskEnv,
    score: f64,
    /// Still continuing: its episode has not ended and its candidate was valid.
    open: bool,
}

/// Lookahead (M, D): each of M candidates is committed on a fork and continued D more turns
/// with the current policy (one sample a turn); its score is its own value plus the
/// continuation's. The best candidate is committed; the continuations are thrown away.
pub struct Lookahead {
    pub m: usize,
    /// Random replies added to the `m` samples (`search.explore`).
    pub explore: usize,
    pub depth: usize,
    pub scorer: Scorer,
}

impl TurnChooser for Lookahead {
    fn choose(
        &mut self,
        env: &dyn EnvHandle,
        state: &EpisodeState,
        settings: &EpisodeSettings,
        sampler: &mut dyn Sampler,
        codec: &dyn Codec,
    ) -> Result<Choice, SampleError> {
        let t0 = Instant::now();
        let (seed, cands, sampled, base) =
            candidates_and_base(env, state, settings, (self.m, self.explore), sampler, codec)?;
        let (mut forks, mut extra_tokens) = (1usize, 0usize);
        let mut branches = Vec::with_capacity(cands.len());
        for cand in &cands {
            let mut state = state.clone();
            let mut fork = base.clone();
            forks += 1;
            let before = fork.clone();
            let horizon = state.horizon(settings);
            let result = state.commit(&mut fork, cand, 0, settings, codec)?;
            let score = self.scorer.turn_value(&before, &fork, &result, horizon);
            branches.push(Branch {
                open: score > NO_VALID_ACTION,
                state,
                fork,
                score,
            });
        }
        // The continuations run level by level, all branches of a level in one request batch.
        for d in 0..self.depth {
            let mut open = Vec::new();
            for (i, b) in branches.iter_mut().enumerate() {
                b.open = b.open && b.state.open_turn(&b.fork, settings, codec)?;
                if b.open {
                    open.push(i);
                }
            }
            if open.is_empty() {
                break;
            }
            let answers = {
                let requests: Vec<(&[u32], usize, u64)> = open
                    .iter()
                    .map(|&i| {
                        let seed = turn_seed(seed ^ (i as u64 + 1), d + 1);
                        (branches[i].state.tokens(), 1, seed)
                    })
                    .collect();
                sampler.sample_each(&requests)?
            };
            for (&i, mut answer) in open.iter().zip(answers) {
                let cont = answer.pop().ok_or_else(no_candidate)?;
                extra_tokens += cont.tokens.len();
                let b = &mut branches[i];
                let before = b.fork.clone();
                let horizon = b.state.horizon(settings);
                let r = b.state.commit(&mut b.fork, &cont, 0, settings, codec)?;
                // A continuation's invalid reply is the policy's later mistake, not the
                // candidate's: it costs the format penalty, not the -1e6 of an invalid candidate.
                b.score += if r.no_valid_action {
                    r.penalty
                } else {
                    self.scorer.turn_value(&before, &b.fork, &r, horizon)
                };
            }
        }
        let scores: Vec<f64> = branches.iter().map(|b| b.score).collect();
        let mut choice = finish_choice(cands, sampled, &scores, forks, t0)?;
        choice.generated += extra_tokens;
        choice.counts.discarded_tokens += extra_tokens;
        Ok(choice)
    }
}
