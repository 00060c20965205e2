//! Searches over whole branches: beam search (B partial trajectories, each expanding M
//! candidates a turn, the B best by cumulative score kept) and best-of-N per trajectory (N whole
//! episodes on forks, the best by return kept). Both play on forks of the real environment and
//! then replay the chosen trajectory's replies on the real one, so the real environment only
//! ever sees committed turns.

use std::time::Instant;

use super::episode::{EpisodeState, SearchCounts, turn_seed};
use super::score::Scorer;
use super::strategy::argmax_first;
use super::{
    Codec, EnvHandle, Episode, EpisodeSettings, EpisodeSpec, PlainSampling, SampleError, Sampler,
    play_episode,
};
use crate::env::{TaskEnv, parse_reply};

/// One partial trajectory: its sequence, its environment fork and its cumulative score.
#[derive(Clone)]
struct Branch {
    state: EpisodeState,
    env: TaskEnv,
    score: f64,
}

/// Replay the chosen episode's replies on the real environment, turn by turn.
fn replay_on_real(
    env: &mut dyn EnvHandle,
    episode: &Episode,
    settings: &EpisodeSettings,
) -> Result<(), SampleError> {
    env.reset(episode.spec.env_seed)?;
    let mut used = 0;
    for turn in &episode.turns {
        let reply = parse_reply(
            &turn.reply,
            settings.rules.max_actions_per_turn,
            settings.form.requires_think(),
        );
        used += env.play(&reply, used, &settings.rules)?.actions.len();
    }
    Ok(())
}

/// Beam search with width B and branching M. B = 1 is greedy per-turn best-of-M.
#[allow(clippy::too_many_arguments)]
pub fn play_beam(
    env: &mut dyn EnvHandle,
    spec: EpisodeSpec,
    settings: &EpisodeSettings,
    width: usize,
    branch: usize,
    scorer: &Scorer,
    sampler: &mut dyn Sampler,
    codec: &dyn Codec,
) -> Result<Episode, SampleError> {
    let t0 = Instant::now();
    let start = EpisodeState::start(env, spec, settings, codec)?;
    let mut beams = vec![Branch {
        state: start,
        env: env.fork()?,
        score: 0.0,
    }];
    let (mut generated, mut forks, mut candidates, mut turns) = (0usize, 1usize, 0usize, 0usize);
    while beams.iter().any(|b| !b.state.is_over()) {
        let mut next: Vec<Branch> = Vec::with_capacity(width * branch);
        for (bi, mut b) in beams.into_iter().enumerate() {
            if b.state.is_over() || !b.state.open_turn(&b.env, settings, codec)? {
                next.push(b);
                continue;
            }
            let seed = turn_seed(spec.sample_seed ^ ((bi as u64) << 48), b.state.turn() + 1);
            let version = sampler.policy_version();
            for cand in sampler.sample(b.state.tokens(), branch, seed)? {
                let mut child = b.clone();
                forks += 1;
                candidates += 1;
                generated += cand.tokens.len();
                let before = child.env.clone();
                let horizon = child.state.horizon(settings);
                let result = child
                    .state
                    .commit(&mut child.env, &cand, version, settings, codec)?;
                child.score += scorer.turn_value(&before, &child.env, &result, horizon);
                next.push(child);
            }
        }
        turns += 1;
        // Keep the B best; a stable sort keeps the earliest of equal scores first.
        next.sort_by(|a, b| b.score.total_cmp(&a.score));
        next.truncate(width);
        beams = next;
    }
    let scores: Vec<f64> = beams.iter().map(|b| b.score).collect();
    let best = beams.swap_remove(argmax_first(&scores));
    let mut episode = best.state.finish();
    let kept = episode.assistant_mask.iter().filter(|&&m| m == 1).count();
    episode.generated_tokens = generated;
    episode.search = SearchCounts {
        extra_candidates: candidates.saturating_sub(turns.min(episode.turns.len())),
        forks,
        discarded_tokens: generated.saturating_sub(kept),
        seconds: t0.elapsed().as_secs_f64(),
    };
    replay_on_real(env, &episode, settings)?;
    Ok(episode)
}

/// Best-of-N per trajectory: N whole episodes on forks (different sampling seeds), the one with
/// the highest return is kept (ties: the earliest).
pub fn best_trajectory(
    env: &mut dyn EnvHandle,
    spec: EpisodeSpec,
    settings: &EpisodeSettings,
    n: usize,
    sampler: &mut dyn Sampler,
    codec: &dyn Codec,
) -> Result<Episode, SampleError> {
    let t0 = Instant::now();
    env.reset(spec.env_seed)?;
    let base = env.fork()?;
    let mut episodes = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let mut fork = base.clone();
        let spec_i = EpisodeSpec {
            sample_seed: turn_seed(spec.sample_seed, 1000 + i),
            ..spec
        };
        episodes.push(play_episode(
            &mut fork,
            spec_i,
            settings,
            &mut PlainSampling,
            sampler,
            codec,
        )?);
    }
    let returns: Vec<f64> = episodes.iter().map(|e| e.ret).collect();
    let generated: usize = episodes.iter().map(|e| e.generated_tokens).sum();
    let mut best = episodes.swap_remove(argmax_first(&returns));
    best.spec = spec;
    best.search = SearchCounts {
        extra_candidates: n.saturating_sub(1),
        forks: n,
        discarded_tokens: generated - best.generated_tokens,
        seconds: t0.elapsed().as_secs_f64(),
    };
    best.generated_tokens = generated;
    replay_on_real(env, &best, settings)?;
    Ok(best)
}
