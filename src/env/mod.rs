//! Environments: the `Env` trait every task implements, the reply parser that turns a model's
//! text into actions, and `TaskEnv`, the enum the trainer holds so one code path serves every task.
//!
//! Cloning an environment forks it: the clone carries its own copy of the RNG, so a fork replays
//! exactly the stochastic outcome the original would see (the "shared" search mode relies on it).

pub mod bench;
pub mod frozenlake;
pub mod reply;
pub mod sokoban;
pub mod task;
pub mod turn;
pub mod webshop;

pub use reply::{ParsedReply, parse_reply};
pub use task::{TaskEnv, TaskKind};
pub use turn::{TurnResult, TurnRules, play_turn, turn_actions};

use serde::Serialize;

/// What one primitive action did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepOutcome {
    /// Reward of this step alone (the task's reward rule).
    pub reward: f64,
    /// The episode ended (goal reached, hole, box solved, budget spent inside the env).
    pub done: bool,
    /// The episode ended in success (only meaningful with `done`).
    pub success: bool,
    /// The action changed the state (a push into a wall does not).
    pub effective: bool,
}

/// Errors an environment can report. Actions that are merely illegal are not errors: they are
/// no-ops (`effective = false`) or unparseable names (`parse_action` returns `None`).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{file}:{line}: {problem}")]
    LevelFile {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("cannot read {file}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("unknown environment {0:?} (known: sokoban, frozenlake, webshop)")]
    UnknownTask(String),
    #[error("{0}")]
    Invalid(String),
}

/// One task. Implementations are cheap to clone; a clone is an independent fork.
pub trait Env: Clone + Send + 'static {
    /// The task's primitive action.
    type Action: Copy + std::fmt::Debug + PartialEq + Send;

    /// Start a new instance; a pure function of the seed (and the env's fixed configuration).
    fn reset(&mut self, seed: u64);
    /// Apply one action. Stepping after `done` is a no-op with zero reward.
    fn step(&mut self, action: Self::Action) -> StepOutcome;
    /// The text the agent sees.
    fn observation(&self) -> String;
    /// Parse one action name (already trimmed), case-insensitively. `None` if no such action.
    fn parse_action(&self, text: &str) -> Option<Self::Action>;
    /// Canonical name of an action, as the prompt lists it.
    fn action_name(&self, action: Self::Action) -> String;
    /// The names of all actions, for the prompt.
    fn action_names(&self) -> Vec<String>;
    /// The episode has ended (by the environment, not by the budget).
    fn done(&self) -> bool;
    /// The episode ended in success.
    fn success(&self) -> bool;
}
