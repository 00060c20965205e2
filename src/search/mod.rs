//! Rollouts and TSR search: prompts, the episode turn loop, and the strategies that choose each
//! turn's reply (plain sampling, best-of-N, beam, lookahead). Pure logic over environment forks
//! and a sampler; no channels.

pub mod beam;
pub mod config;
pub mod episode;
pub mod interface;
pub mod prompt;
pub mod score;
pub mod strategy;

pub use episode::{
    Candidate, Choice, Codec, EnvHandle, Episode, EpisodeSettings, EpisodeSpec, EpisodeState,
    PlainSampling, SampleError, Sampler, SearchCounts, TurnChooser, play_episode,
};

pub use config::SearchSection;
pub use prompt::answer_text;

/// The strategy's name for run folders and metric labels.
pub fn strategy_name(config: &crate::config::Config) -> String {
    config.search.kind.clone()
}
