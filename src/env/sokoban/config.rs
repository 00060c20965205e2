//! `[sokoban]`: room size, generation constants (the gym-sokoban/RAGEN defaults), rewards,
//! level files and the solution-length filter.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::generator::{GenParams, Nudge};
use super::reverse::{MAX_GEN_BOXES, MAX_GEN_CELLS, ReverseLimits};
use crate::config::{Issues, Section};

/// `[sokoban]`: room generation, rewards and level files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct SokobanConfig {
    /// Room height in cells, outer wall included (4..=16; rows * cols <= 256).
    pub rows: usize,
    /// Room width in cells, outer wall included (4..=16; a 4 x 4 room cannot hold a movable box).
    pub cols: usize,
    /// Boxes (and targets) per generated room (1..=10, and fewer than interior cells - 1).
    pub boxes: usize,
    /// Level file in the standard text format; "" generates rooms. With a file, reset(seed)
    /// plays level seed % (number of levels) and rows/cols/boxes are not used.
    pub levels: String,
    /// Keep only generated rooms whose optimal solution has at most this many moves, retrying
    /// with derived seeds (after 10,000 failures the last room is kept); 0 = off (as in the
    /// original). Does not apply to level files.
    pub max_solution_len: usize,
    /// States the BFS solver may visit before giving up (solution length, filter).
    pub solver_max_states: usize,
    /// Steps of the topology random walk; 0 = int(1.7 * (rows + cols)).
    pub walk_steps: usize,
    /// Probability that the topology walk turns to a random direction at each step.
    pub p_change_direction: f64,
    /// Topologies tried per seed before retrying with a derived seed.
    pub topology_tries: usize,
    /// Depth limit (moves) of the reverse-play search.
    pub search_depth: usize,
    /// Distinct states the reverse-play search may visit.
    pub max_search_states: usize,
    /// Probability that the player takes random steps after generation when the boxes moved one
    /// cell in total.
    pub nudge_prob_one_cell: f64,
    /// Probability that the player takes random steps after generation otherwise.
    pub nudge_prob: f64,
    /// Probability of one more random step after each one.
    pub nudge_continue_prob: f64,
    /// Most random steps the player takes after generation.
    pub nudge_max_steps: usize,
    /// Reward of every step.
    pub step_penalty: f64,
    /// Reward when the number of boxes on targets goes up.
    pub reward_box_on_target: f64,
    /// Reward when the number of boxes on targets goes down.
    pub penalty_box_off_target: f64,
    /// Reward added when every box is on a target.
    pub reward_finished: f64,
}

impl Default for SokobanConfig {
    fn default() -> Self {
        Self {
            rows: 6,
            cols: 6,
            boxes: 1,
            levels: String::new(),
            max_solution_len: 0,
            solver_max_states: 1_000_000,
            walk_steps: 0,
            p_change_direction: 0.35,
            topology_tries: 4,
            search_depth: 300,
            max_search_states: 300_000,
            nudge_prob_one_cell: 0.8,
            nudge_prob: 0.5,
            nudge_continue_prob: 0.5,
            nudge_max_steps: 3,
            step_penalty: -0.1,
            reward_box_on_target: 1.0,
            penalty_box_off_target: -1.0,
            reward_finished: 10.0,
        }
    }
}

impl Section for SokobanConfig {
    fn validate(&self, p: &str, issues: &mut Issues) {
        let key = |field: &str| format!("{p}.{field}");
        issues.range(&key("rows"), self.rows, 4, 16);
        issues.range(&key("cols"), self.cols, 4, 16);
        if self.rows.saturating_mul(self.cols) > MAX_GEN_CELLS {
            issues.push(
                key("cols"),
                format!(
                    "rows * cols = {} exceeds the {MAX_GEN_CELLS} cells a generated room may have",
                    self.rows.saturating_mul(self.cols)
                ),
            );
        }
        if self.rows == 4 && self.cols == 4 {
            issues.push(
                key("cols"),
                "a 4 x 4 room has a 2 x 2 interior where no box can ever be moved; use 5 or more",
            );
        }
        issues.range(&key("boxes"), self.boxes, 1, MAX_GEN_BOXES);
        let interior = self
            .rows
            .saturating_sub(2)
            .saturating_mul(self.cols.saturating_sub(2));
        if self.boxes > 0 && self.boxes + 1 >= interior {
            issues.push(
                key("boxes"),
                format!(
                    "{} boxes do not fit a {} x {} room: the player and the boxes need more than \
                     the {interior} interior cells",
                    self.boxes, self.rows, self.cols
                ),
            );
        }
        issues.range(&key("max_solution_len"), self.max_solution_len, 0, 10_000);
        issues.range(
            &key("solver_max_states"),
            self.solver_max_states,
            1,
            100_000_000,
        );
        issues.range(&key("walk_steps"), self.walk_steps, 0, 100_000);
        issues.range(&key("topology_tries"), self.topology_tries, 1, 1000);
        issues.range(&key("search_depth"), self.search_depth, 2, 1_000_000);
        issues.range(
            &key("max_search_states"),
            self.max_search_states,
            1,
            100_000_000,
        );
        for (field, value) in [
            ("p_change_direction", self.p_change_direction),
            ("nudge_prob_one_cell", self.nudge_prob_one_cell),
            ("nudge_prob", self.nudge_prob),
            ("nudge_continue_prob", self.nudge_continue_prob),
        ] {
            issues.range(&key(field), value, 0.0, 1.0);
        }
        issues.range(&key("nudge_max_steps"), self.nudge_max_steps, 0, 1000);
        for (field, value) in [
            ("step_penalty", self.step_penalty),
            ("reward_box_on_target", self.reward_box_on_target),
            ("penalty_box_off_target", self.penalty_box_off_target),
            ("reward_finished", self.reward_finished),
        ] {
            issues.range(&key(field), value, -1000.0, 1000.0);
        }
    }
}

impl SokobanConfig {
    /// The generator's parameters (with `walk_steps` 0 resolved to int(1.7 * (rows + cols))).
    pub fn gen_params(&self) -> GenParams {
        let walk_steps = if self.walk_steps == 0 {
            // int(1.7 * (rows + cols)), in integers so that no rounding can differ.
            17 * (self.rows + self.cols) / 10
        } else {
            self.walk_steps
        };
        GenParams {
            rows: self.rows,
            cols: self.cols,
            boxes: self.boxes,
            walk_steps,
            p_change_direction: self.p_change_direction,
            topology_tries: self.topology_tries,
            limits: ReverseLimits {
                depth: self.search_depth,
                max_states: self.max_search_states,
            },
            nudge: Nudge {
                prob_one_cell: self.nudge_prob_one_cell,
                prob: self.nudge_prob,
                continue_prob: self.nudge_continue_prob,
                max_steps: self.nudge_max_steps,
            },
        }
    }
}
