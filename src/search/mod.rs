//! Rollouts and TSR search: prompts, the episode turn loop, and the strategies that choose each
//! turn's reply (plain sampling, best-of-N, beam, lookahead). Pure logic over environment forks
//! and a sampler; no channels.

pub mod episode;
pub mod prompt;

pub use episode::{
    Candidate, Codec, Episode, EpisodeSettings, EpisodeSpec, PlainSampling, SampleError, Sampler,
    TurnChooser, play_episode,
};
