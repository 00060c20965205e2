//! FrozenLake. SKELETON, to be replaced.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::{Env, EnvError, StepOutcome};
use crate::config::{Issues, Section};

/// `[frozenlake]`: room generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct FrozenLakeConfig {
    /// Room height in cells, outer wall included.
    pub rows: usize,
    /// Room width in cells, outer wall included.
    pub cols: usize,
    /// Boxes (and targets) per room.
    pub boxes: usize,
}

impl Default for FrozenLakeConfig {
    fn default() -> Self {
        Self {
            rows: 6,
            cols: 6,
            boxes: 1,
        }
    }
}

impl Section for FrozenLakeConfig {
    fn validate(&self, _p: &str, _issues: &mut Issues) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrozenLakeAction {
    Up,
    Down,
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub struct FrozenLake {}

impl FrozenLake {
    pub fn new(_config: &FrozenLakeConfig) -> Result<FrozenLake, EnvError> {
        Ok(FrozenLake {})
    }
}

impl Env for FrozenLake {
    type Action = FrozenLakeAction;
    fn reset(&mut self, _seed: u64) {}
    fn step(&mut self, _action: FrozenLakeAction) -> StepOutcome {
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
    fn parse_action(&self, _text: &str) -> Option<FrozenLakeAction> {
        None
    }
    fn action_name(&self, action: FrozenLakeAction) -> String {
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
