//! Sokoban (the gym-sokoban rules; see ../shared/spec/environments.md). SKELETON: the sokoban
//! helper replaces this file's contents and adds sibling files (generator, solver, levels).

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::{Env, EnvError, StepOutcome};
use crate::config::{Issues, Section};

/// `[sokoban]`: room generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct SokobanConfig {
    /// Room height in cells, outer wall included.
    pub rows: usize,
    /// Room width in cells, outer wall included.
    pub cols: usize,
    /// Boxes (and targets) per room.
    pub boxes: usize,
}

impl Default for SokobanConfig {
    fn default() -> Self {
        Self {
            rows: 6,
            cols: 6,
            boxes: 1,
        }
    }
}

impl Section for SokobanConfig {
    fn validate(&self, _p: &str, _issues: &mut Issues) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SokobanAction {
    Up,
    Down,
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub struct Sokoban {}

impl Sokoban {
    pub fn new(_config: &SokobanConfig) -> Result<Sokoban, EnvError> {
        Ok(Sokoban {})
    }
}

impl Env for Sokoban {
    type Action = SokobanAction;
    fn reset(&mut self, _seed: u64) {}
    fn step(&mut self, _action: SokobanAction) -> StepOutcome {
        StepOutcome {
            reward: 0.0,
            done: false,
            success: false,
            effective: false,
        }
    }
    fn observation(&self) -> String {
        String::new()
    }
    fn parse_action(&self, _text: &str) -> Option<SokobanAction> {
        None
    }
    fn action_name(&self, action: SokobanAction) -> String {
        format!("{action:?}")
    }
    fn action_names(&self) -> Vec<String> {
        vec![]
    }
    fn done(&self) -> bool {
        false
    }
    fn success(&self) -> bool {
        false
    }
}
