//! `TaskEnv`: one type for "whichever task this run trains on", so the trainer, the search and the
//! CLI need no generics. Its action type wraps the task's own.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::frozenlake::{FrozenLake, FrozenLakeAction};
use super::sokoban::{Sokoban, SokobanAction};
use super::webshop::{WebShop, WebShopAction};
use super::{Env, EnvError, StepOutcome, TurnRules};
use crate::config::{Config, Issues, Section};

/// The tasks tsr knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Sokoban,
    FrozenLake,
    WebShop,
}

impl TaskKind {
    pub const NAMES: &'static [&'static str] = &["sokoban", "frozenlake", "webshop"];

    pub fn parse(name: &str) -> Result<TaskKind, EnvError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sokoban" => Ok(TaskKind::Sokoban),
            "frozenlake" | "frozen_lake" => Ok(TaskKind::FrozenLake),
            "webshop" => Ok(TaskKind::WebShop),
            _ => Err(EnvError::UnknownTask(name.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Sokoban => "sokoban",
            TaskKind::FrozenLake => "frozenlake",
            TaskKind::WebShop => "webshop",
        }
    }
}

/// `[env]`: the task and the limits of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct EnvSection {
    /// Task to train on: "sokoban", "frozenlake" or "webshop".
    pub task: String,
    /// Turns (model replies) per episode at most.
    pub max_turns: usize,
    /// Actions one reply may take; extra parts are dropped.
    pub max_actions_per_turn: usize,
    /// Actions per episode at most; running out ends the episode as a failure.
    pub max_actions_per_episode: usize,
    /// Added to the episode return for a turn whose reply has an invalid or missing action.
    pub format_penalty: f64,
}

impl Default for EnvSection {
    fn default() -> Self {
        Self {
            task: "sokoban".into(),
            max_turns: 5,
            max_actions_per_turn: 2,
            max_actions_per_episode: 10,
            format_penalty: -0.1,
        }
    }
}

impl Section for EnvSection {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.check(
            TaskKind::parse(&self.task).is_ok(),
            &format!("{p}.task"),
            &self.task,
            "one of sokoban, frozenlake, webshop",
        );
        issues.range(&format!("{p}.max_turns"), self.max_turns, 1, 1000);
        issues.range(
            &format!("{p}.max_actions_per_turn"),
            self.max_actions_per_turn,
            1,
            100,
        );
        issues.range(
            &format!("{p}.max_actions_per_episode"),
            self.max_actions_per_episode,
            1,
            10_000,
        );
        issues.range(
            &format!("{p}.format_penalty"),
            self.format_penalty,
            -100.0,
            0.0,
        );
    }
}

impl EnvSection {
    pub fn rules(&self) -> TurnRules {
        TurnRules {
            max_actions_per_turn: self.max_actions_per_turn,
            max_actions_per_episode: self.max_actions_per_episode,
            format_penalty: self.format_penalty,
        }
    }

    /// The turn rules the FrozenLake value table (ceiling, exact scorer) is computed under.
    pub fn turn_limits(&self) -> super::frozenlake::TurnLimits {
        super::frozenlake::TurnLimits {
            max_turns: self.max_turns,
            max_actions_per_turn: self.max_actions_per_turn,
            max_actions_per_episode: self.max_actions_per_episode,
        }
    }
}

/// An environment of whichever task the config names. Cloning forks it.
#[derive(Debug, Clone)]
pub enum TaskEnv {
    Sokoban(Sokoban),
    FrozenLake(FrozenLake),
    WebShop(WebShop),
}

/// An action of whichever task.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TaskAction {
    Sokoban(SokobanAction),
    FrozenLake(FrozenLakeAction),
    WebShop(WebShopAction),
}

impl TaskEnv {
    /// Build the environment `kind` from its config section (levels files are read here).
    pub fn new(kind: TaskKind, config: &Config) -> Result<TaskEnv, EnvError> {
        Ok(match kind {
            TaskKind::Sokoban => TaskEnv::Sokoban(Sokoban::new(&config.sokoban)?),
            TaskKind::FrozenLake => TaskEnv::FrozenLake(FrozenLake::new(&config.frozenlake)?),
            TaskKind::WebShop => TaskEnv::WebShop(WebShop::new(&config.webshop)?),
        })
    }

    /// Reseed only the transition RNG (the search's "independent" mode); Sokoban is
    /// deterministic and has none.
    pub fn reseed(&mut self, seed: u64) {
        if let TaskEnv::FrozenLake(e) = self {
            e.reseed(seed);
        }
    }

    /// A potential of the state for search heuristics (higher is better; differences reward
    /// progress). FrozenLake: minus the safe-path distance to the goal, minus 1 next to a hole,
    /// -10 in a hole. Sokoban: minus the summed distance of boxes to their nearest targets.
    /// WebShop: page progress plus the match of the item in view.
    pub fn potential(&self) -> f64 {
        match self {
            TaskEnv::FrozenLake(e) => {
                if e.in_hole() {
                    return -10.0;
                }
                let (r, c) = e.player();
                let near = [(0i64, 1i64), (0, -1), (1, 0), (-1, 0)]
                    .iter()
                    .any(|(dr, dc)| {
                        let (nr, nc) = (r as i64 + dr, c as i64 + dc);
                        nr >= 0
                            && nc >= 0
                            && (nr as usize) < e.rows()
                            && (nc as usize) < e.cols()
                            && e.is_hole(nr as usize, nc as usize)
                    });
                let dist = e
                    .distance_to_goal()
                    .map_or((e.rows() + e.cols()) as f64, f64::from);
                -dist - if near { 1.0 } else { 0.0 }
            }
            TaskEnv::Sokoban(e) => -(e.room().box_target_distance() as f64),
            // Page progress (search -> results -> item -> bought) plus how well the item in view
            // matches the instruction.
            TaskEnv::WebShop(e) => e.progress_score() + e.match_score(),
        }
    }

    pub fn kind(&self) -> TaskKind {
        match self {
            TaskEnv::Sokoban(_) => TaskKind::Sokoban,
            TaskEnv::FrozenLake(_) => TaskKind::FrozenLake,
            TaskEnv::WebShop(_) => TaskKind::WebShop,
        }
    }
}

macro_rules! dispatch {
    ($self:expr, $e:ident => $body:expr) => {
        match $self {
            TaskEnv::Sokoban($e) => $body,
            TaskEnv::FrozenLake($e) => $body,
            TaskEnv::WebShop($e) => $body,
        }
    };
}

impl Env for TaskEnv {
    type Action = TaskAction;

    fn reset(&mut self, seed: u64) {
        dispatch!(self, e => e.reset(seed))
    }
    fn step(&mut self, action: TaskAction) -> StepOutcome {
        match (self, action) {
            (TaskEnv::Sokoban(e), TaskAction::Sokoban(a)) => e.step(a),
            (TaskEnv::FrozenLake(e), TaskAction::FrozenLake(a)) => e.step(a),
            (TaskEnv::WebShop(e), TaskAction::WebShop(a)) => e.step(a),
            // An action of another task cannot be built through `parse_action`; treat it as a no-op.
            _ => StepOutcome {
                reward: 0.0,
                done: false,
                success: false,
                effective: false,
            },
        }
    }
    fn observation(&self) -> String {
        dispatch!(self, e => e.observation())
    }
    fn parse_action(&self, text: &str) -> Option<TaskAction> {
        match self {
            TaskEnv::Sokoban(e) => e.parse_action(text).map(TaskAction::Sokoban),
            TaskEnv::FrozenLake(e) => e.parse_action(text).map(TaskAction::FrozenLake),
            TaskEnv::WebShop(e) => e.parse_action(text).map(TaskAction::WebShop),
        }
    }
    fn action_name(&self, action: TaskAction) -> String {
        match (self, action) {
            (TaskEnv::Sokoban(e), TaskAction::Sokoban(a)) => e.action_name(a),
            (TaskEnv::FrozenLake(e), TaskAction::FrozenLake(a)) => e.action_name(a),
            (TaskEnv::WebShop(e), TaskAction::WebShop(a)) => e.action_name(a),
            (_, a) => format!("{a:?}"),
        }
    }
    fn action_names(&self) -> Vec<String> {
        dispatch!(self, e => e.action_names())
    }
    fn done(&self) -> bool {
        dispatch!(self, e => e.done())
    }
    fn success(&self) -> bool {
        dispatch!(self, e => e.success())
    }
}
