//! Sokoban with the gym-sokoban rules as RAGEN uses them (see ../shared/spec/environments.md):
//! generated rooms (`generator`, `reverse`) or fixed levels from a file (`levels`), the text
//! observation (`render`), and a BFS solver (`solver`) for optimal solution lengths.
//!
//! Steps are deterministic, so the only randomness is inside `reset`, which seeds its own ChaCha
//! stream from the reset seed; a clone therefore replays exactly what the original would.

mod config;
pub mod generator;
pub mod levels;
pub mod render;
pub mod reverse;
pub mod room;
pub mod solver;
mod visited;

use std::sync::{Arc, OnceLock};

pub use config::SokobanConfig;
pub use room::{CellSet, Layout, MoveEffect, Room, RoomError, SokobanAction};
pub use solver::{SolveLimits, SolveResult, solve};

use super::{Env, EnvError, StepOutcome};
use crate::config::{Issues, Section};
use generator::GenParams;

/// Derived seeds the length filter tries before it settles for the last room (a bound only
/// reachable with a filter no room of this size can pass).
const MAX_FILTER_SEEDS: usize = 10_000;

/// What every clone of one environment shares: the configuration and the loaded levels.
#[derive(Debug)]
struct Shared {
    config: SokobanConfig,
    gen_params: GenParams,
    /// Loaded level file; empty when rooms are generated.
    levels: Vec<Room>,
}

/// A Sokoban episode. Cloning forks it (the clone shares only immutable parts).
#[derive(Debug, Clone)]
pub struct Sokoban {
    shared: Arc<Shared>,
    /// The room as it is now.
    room: Room,
    /// The room as `reset` made it, for its optimal solution length.
    start: Room,
    /// Boxes on targets now, to reward changes without recounting.
    on_target: usize,
    done: bool,
    /// Optimal solution length of `start`, solved on first request (or by the length filter)
    /// since most callers never ask; `None` inside means "not solved within the state limit".
    solution_len: OnceLock<Option<usize>>,
}

impl Sokoban {
    /// Check the config and load the level file if one is named. The instance is `reset(0)`.
    pub fn new(config: &SokobanConfig) -> Result<Sokoban, EnvError> {
        let mut issues = Issues::default();
        config.validate("sokoban", &mut issues);
        if !issues.0.is_empty() {
            let problems: Vec<String> = issues.0.iter().map(ToString::to_string).collect();
            return Err(EnvError::Invalid(problems.join("; ")));
        }
        let levels = if config.levels.is_empty() {
            Vec::new()
        } else {
            levels::load_levels(&config.levels)?
        };
        let first = match levels.first() {
            Some(room) => room.clone(),
            None => generator::generate(&config.gen_params(), 0),
        };
        let mut env = Sokoban {
            shared: Arc::new(Shared {
                config: config.clone(),
                gen_params: config.gen_params(),
                levels,
            }),
            room: first.clone(),
            start: first,
            on_target: 0,
            done: false,
            solution_len: OnceLock::new(),
        };
        env.reset(0);
        Ok(env)
    }

    /// The room as it is now.
    pub fn room(&self) -> &Room {
        &self.room
    }

    /// Number of fixed levels (0 when rooms are generated).
    pub fn level_count(&self) -> usize {
        self.shared.levels.len()
    }

    /// Start from `room` instead of a generated or loaded one (hand-built rooms, tests).
    pub fn set_room(&mut self, room: Room) {
        self.on_target = room.boxes_on_targets();
        self.done = room.solved();
        self.start = room.clone();
        self.room = room;
        self.solution_len = OnceLock::new();
    }

    /// Fewest moves that solve the room as `reset` (or `set_room`) left it, or `None` when the
    /// solver's state limit (`solver_max_states`) ran out first. Solved once, then cached.
    pub fn optimal_solution_len(&self) -> Option<usize> {
        *self.solution_len.get_or_init(|| {
            solve(&self.start, self.shared.config.solver_max_states).map(|p| p.len())
        })
    }

    /// A generated room for `seed`, passed through the optional length filter.
    fn generate(&self, seed: u64) -> (Room, Option<Option<usize>>) {
        let config = &self.shared.config;
        let mut seed = seed;
        let mut tries = 0;
        loop {
            let room = generator::generate(&self.shared.gen_params, seed);
            tries += 1;
            if config.max_solution_len == 0 || tries > MAX_FILTER_SEEDS {
                return (room, None);
            }
            let limits = SolveLimits {
                max_moves: config.max_solution_len,
                max_states: config.solver_max_states,
            };
            if let SolveResult::Solved(path) = solver::search(&room, limits) {
                return (room, Some(Some(path.len())));
            }
            seed = generator::derive_seed(seed);
        }
    }
}

impl Env for Sokoban {
    type Action = SokobanAction;

    fn reset(&mut self, seed: u64) {
        let levels = &self.shared.levels;
        let (room, known_len) = if levels.is_empty() {
            self.generate(seed)
        } else {
            (levels[(seed % levels.len() as u64) as usize].clone(), None)
        };
        self.set_room(room);
        if let Some(len) = known_len {
            self.solution_len = OnceLock::from(len);
        }
    }

    fn step(&mut self, action: SokobanAction) -> StepOutcome {
        if self.done {
            return StepOutcome {
                reward: 0.0,
                done: true,
                success: true,
                effective: false,
            };
        }
        let config = &self.shared.config;
        let effect = self.room.apply(action);
        // Summed in gym-sokoban's order so that rewards match it to the last bit (e.g. 10.9).
        let mut reward = config.step_penalty;
        if effect.on_target_change > 0 {
            reward += config.reward_box_on_target;
        } else if effect.on_target_change < 0 {
            reward += config.penalty_box_off_target;
        }
        self.on_target = self
            .on_target
            .wrapping_add_signed(effect.on_target_change as isize);
        self.done = self.on_target == self.room.boxes().len();
        if self.done {
            reward += config.reward_finished;
        }
        StepOutcome {
            reward,
            done: self.done,
            success: self.done,
            effective: effect.moved,
        }
    }

    fn observation(&self) -> String {
        render::observation(&self.room)
    }

    fn parse_action(&self, text: &str) -> Option<SokobanAction> {
        SokobanAction::parse(text)
    }

    fn action_name(&self, action: SokobanAction) -> String {
        action.name().to_owned()
    }

    fn action_names(&self) -> Vec<String> {
        SokobanAction::ALL
            .iter()
            .map(|a| a.name().to_owned())
            .collect()
    }

    fn done(&self) -> bool {
        self.done
    }

    /// The only way the environment ends an episode is by solving it.
    fn success(&self) -> bool {
        self.done
    }
}
