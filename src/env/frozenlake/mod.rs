//! FrozenLake (gymnasium rules, RAGEN-style random maps; see ../shared/spec/environments.md).
//!
//! The map lives behind an `Arc` because it never changes within an episode: a fork costs one
//! reference-count increment plus a copy of the transition RNG, which is what makes search cheap.

mod ceiling;
mod map;
mod render;

use std::sync::Arc;

use documented::DocumentedFields;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use ceiling::{LakeValues, TurnLimits, table_too_large};
pub use map::{LakeMap, UNREACHABLE};

use super::{Env, EnvError, StepOutcome};
use crate::config::{Issues, Section};

/// Largest side accepted; bounds the worst-case generation time.
const MAX_SIDE: usize = 64;

/// `[frozenlake]`: map generation and slipperiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct FrozenLakeConfig {
    /// Map height in cells (ignored when `map` is set).
    pub rows: usize,
    /// Map width in cells (ignored when `map` is set).
    pub cols: usize,
    /// Chance that a generated cell is frozen (walkable); otherwise it is a hole.
    pub p_frozen: f64,
    /// Chance that a move goes the intended way; the rest splits evenly between the two
    /// perpendicular directions. 1.0 is the deterministic (non-slippery) variant.
    pub success_rate: f64,
    /// A fixed map in gymnasium letters (S start, F frozen, H hole, G goal), rows separated by
    /// "/" or newlines, e.g. "SFFF/FHFH/FFFH/HFFG". Empty means a new random map per seed.
    pub map: String,
}

impl Default for FrozenLakeConfig {
    fn default() -> Self {
        Self {
            rows: 4,
            cols: 4,
            p_frozen: 0.9,
            success_rate: 0.8,
            map: String::new(),
        }
    }
}

impl Section for FrozenLakeConfig {
    fn validate(&self, p: &str, issues: &mut Issues) {
        issues.range(&format!("{p}.rows"), self.rows, 1, MAX_SIDE);
        issues.range(&format!("{p}.cols"), self.cols, 1, MAX_SIDE);
        // Checked only when both sides are in range, so one bad value is reported once.
        issues.check(
            self.rows == 0 || self.cols == 0 || self.rows.saturating_mul(self.cols) >= 2,
            &format!("{p}.rows"),
            (self.rows, self.cols),
            "rows x cols of at least 2 cells (start and goal differ)",
        );
        issues.range(&format!("{p}.p_frozen"), self.p_frozen, 0.0, 1.0);
        issues.range(&format!("{p}.success_rate"), self.success_rate, 0.0, 1.0);
        if !self.map.trim().is_empty()
            && let Err(e) = LakeMap::parse(&self.map)
        {
            issues.push(format!("{p}.map"), e.to_string());
        }
    }
}

/// The four moves, in gymnasium's order (its action ids 0..=3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrozenLakeAction {
    Left = 0,
    Down = 1,
    Right = 2,
    Up = 3,
}

impl FrozenLakeAction {
    pub const ALL: [FrozenLakeAction; 4] = [Self::Left, Self::Down, Self::Right, Self::Up];

    /// The action `quarter_turns` steps further in the Left, Down, Right, Up cycle; one step
    /// either way is a perpendicular direction (gymnasium's `(a - 1) % 4` and `(a + 1) % 4`).
    pub fn turned(self, quarter_turns: i32) -> FrozenLakeAction {
        Self::ALL[(self as i32 + quarter_turns).rem_euclid(4) as usize]
    }

    /// Canonical name, as the prompt lists it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Left => "Left",
            Self::Down => "Down",
            Self::Right => "Right",
            Self::Up => "Up",
        }
    }
}

/// One FrozenLake episode. Cloning forks it, transition RNG included.
#[derive(Debug, Clone)]
pub struct FrozenLake {
    /// Map height and width for generated maps.
    size: (usize, usize),
    /// Chance of a frozen cell in generated maps.
    p_frozen: f64,
    /// Chance of moving as intended (reported to scorers; the thresholds below apply it).
    success_rate: f64,
    /// A fixed map was given, so `reset` keeps it and only restarts the episode.
    fixed_map: bool,
    /// The current lake, shared by forks.
    map: Arc<LakeMap>,
    /// Player row and column, kept apart so a step needs no division.
    row: usize,
    col: usize,
    /// A random u32 below this keeps the intended direction; `2^32` means never slip.
    straight_below: u64,
    /// A random u32 in `[straight_below, left_below)` turns counter-clockwise, above turns clockwise.
    left_below: u64,
    /// Decides slips; seeded by `reset` (or `reseed`) and copied by forks.
    rng: ChaCha8Rng,
    done: bool,
    success: bool,
}

/// The transition RNG uses its own ChaCha stream so that it is independent of the map draw.
fn transition_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    rng
}

impl FrozenLake {
    /// Build from a validated-or-not config (invalid values are an error), reset with seed 0.
    pub fn new(config: &FrozenLakeConfig) -> Result<FrozenLake, EnvError> {
        let mut issues = Issues::default();
        config.validate("frozenlake", &mut issues);
        if !issues.0.is_empty() {
            let all: Vec<String> = issues.0.iter().map(ToString::to_string).collect();
            return Err(EnvError::Invalid(all.join("; ")));
        }
        let fixed_map = !config.map.trim().is_empty();
        let map = if fixed_map {
            LakeMap::parse(&config.map)?
        } else {
            LakeMap::empty()
        };
        let straight_below = (config.success_rate * 4_294_967_296.0).round() as u64;
        let mut env = FrozenLake {
            size: (config.rows, config.cols),
            p_frozen: config.p_frozen,
            success_rate: config.success_rate,
            fixed_map,
            map: Arc::new(map),
            row: 0,
            col: 0,
            straight_below,
            left_below: straight_below + ((1u64 << 32) - straight_below) / 2,
            rng: transition_rng(0),
            done: false,
            success: false,
        };
        env.reset(0);
        Ok(env)
    }

    /// A fixed map in gymnasium letters (see `FrozenLakeConfig::map`) with the given slip rule.
    pub fn from_map(map: &str, success_rate: f64) -> Result<FrozenLake, EnvError> {
        FrozenLake::new(&FrozenLakeConfig {
            map: map.to_owned(),
            success_rate,
            ..FrozenLakeConfig::default()
        })
    }

    /// Reseed only the transition RNG (the map and the player stay): the search's
    /// "independent" mode gives each fork its own slips this way.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = transition_rng(seed);
    }

    pub fn rows(&self) -> usize {
        self.map.rows
    }
    pub fn cols(&self) -> usize {
        self.map.cols
    }
    /// Player (row, col).
    pub fn player(&self) -> (usize, usize) {
        (self.row, self.col)
    }
    /// Start (row, col).
    pub fn start(&self) -> (usize, usize) {
        self.coords(self.map.start)
    }
    /// Goal (row, col).
    pub fn goal(&self) -> (usize, usize) {
        self.coords(self.map.goal)
    }
    /// All holes as (row, col), row-major.
    pub fn holes(&self) -> Vec<(usize, usize)> {
        let holes = self.map.holes.iter().enumerate().filter(|(_, h)| **h);
        holes.map(|(i, _)| self.coords(i)).collect()
    }
    /// Whether (row, col) is a hole; cells off the board are not.
    pub fn is_hole(&self, row: usize, col: usize) -> bool {
        row < self.map.rows && col < self.map.cols && self.map.holes[row * self.map.cols + col]
    }
    /// Fewest moves from (row, col) to the goal over safe cells, ignoring slips; `None` for a
    /// hole, a cell off the board, or a cell cut off from the goal.
    pub fn distance_from(&self, row: usize, col: usize) -> Option<u32> {
        if row >= self.map.rows || col >= self.map.cols {
            return None;
        }
        let d = self.map.dist[row * self.map.cols + col];
        (d != UNREACHABLE).then_some(d)
    }
    /// `distance_from` the player's cell.
    pub fn distance_to_goal(&self) -> Option<u32> {
        self.distance_from(self.row, self.col)
    }
    /// The player stands in a hole (the episode is over, failed).
    pub fn in_hole(&self) -> bool {
        self.is_hole(self.row, self.col)
    }
    /// The current map (for renderers and scorers that want everything at once).
    pub fn map(&self) -> &LakeMap {
        &self.map
    }
    pub fn success_rate(&self) -> f64 {
        self.success_rate
    }

    fn coords(&self, cell: usize) -> (usize, usize) {
        (cell / self.map.cols, cell % self.map.cols)
    }

    /// Where a move in `dir` from (row, col) lands; a move off the board stays put.
    #[inline]
    fn moved(&self, (r, c): (usize, usize), dir: FrozenLakeAction) -> (usize, usize) {
        match dir {
            FrozenLakeAction::Left => (r, c.saturating_sub(1)),
            FrozenLakeAction::Down => ((r + 1).min(self.map.rows - 1), c),
            FrozenLakeAction::Right => (r, (c + 1).min(self.map.cols - 1)),
            FrozenLakeAction::Up => (r.saturating_sub(1), c),
        }
    }

    /// The direction the ice actually sends the player.
    #[inline]
    fn slip(&mut self, intended: FrozenLakeAction) -> FrozenLakeAction {
        if self.straight_below > u64::from(u32::MAX) {
            return intended; // deterministic variant: no draw needed
        }
        let u = u64::from(self.rng.next_u32());
        if u < self.straight_below {
            intended
        } else if u < self.left_below {
            intended.turned(-1)
        } else {
            intended.turned(1)
        }
    }
}

impl Env for FrozenLake {
    type Action = FrozenLakeAction;

    fn reset(&mut self, seed: u64) {
        if !self.fixed_map {
            let mut map_rng = ChaCha8Rng::seed_from_u64(seed);
            let (rows, cols) = self.size;
            Arc::make_mut(&mut self.map).generate(&mut map_rng, rows, cols, self.p_frozen);
        }
        self.rng = transition_rng(seed);
        (self.row, self.col) = self.coords(self.map.start);
        self.done = false;
        self.success = false;
    }

    #[inline]
    fn step(&mut self, action: FrozenLakeAction) -> StepOutcome {
        if self.done {
            return StepOutcome {
                reward: 0.0,
                done: true,
                success: self.success,
                effective: false,
            };
        }
        let cols = self.map.cols;
        let (r, c) = (self.row, self.col);
        let dir = self.slip(action);
        let (nr, nc) = self.moved((r, c), dir);
        (self.row, self.col) = (nr, nc);
        let cell = nr * cols + nc;
        self.success = cell == self.map.goal;
        self.done = self.success || self.map.holes[cell];
        StepOutcome {
            reward: if self.success { 1.0 } else { 0.0 },
            done: self.done,
            success: self.success,
            effective: (nr, nc) != (r, c),
        }
    }

    fn observation(&self) -> String {
        render::render(&self.map, self.row * self.map.cols + self.col)
    }

    fn parse_action(&self, text: &str) -> Option<FrozenLakeAction> {
        let text = text.trim();
        Self::Action::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(text))
    }

    fn action_name(&self, action: FrozenLakeAction) -> String {
        action.name().to_owned()
    }

    fn action_names(&self) -> Vec<String> {
        Self::Action::ALL
            .iter()
            .map(|a| a.name().to_owned())
            .collect()
    }

    fn done(&self) -> bool {
        self.done
    }

    fn success(&self) -> bool {
        self.success
    }
}
