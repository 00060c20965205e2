//! Prompts, as the spec's "Prompt and training sequence" section describes: the full chat form for
//! pretrained chat models and a compact form for small models trained from scratch. Both use the
//! Qwen chat template `<|im_start|>role\n...<|im_end|>\n`; the compact form drops the system
//! text's prose and the think block so that sequences stay short for a ~1M-parameter model.

use serde::{Deserialize, Serialize};

use crate::env::{Env, TaskEnv, TaskKind};

pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";

/// Which prompt form to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptForm {
    /// System prompt with instructions and legend, `<think>` + `<answer>` replies.
    Chat,
    /// One short user line per turn, `<answer>` replies only.
    Compact,
    /// As compact, but with the whole observation (coordinate lines too), not just the grid.
    CompactFull,
    /// As compact, then the grid again read column by column: a causal model reading the grid
    /// row by row sees a cell's left and right neighbours next to it but the cells above and
    /// below a row's width plus one tokens away; the second reading puts those next to it too.
    CompactColumns,
}

impl PromptForm {
    pub fn parse(s: &str) -> Option<PromptForm> {
        match s {
            "chat" => Some(PromptForm::Chat),
            "compact" => Some(PromptForm::Compact),
            "compact_full" => Some(PromptForm::CompactFull),
            "compact_columns" => Some(PromptForm::CompactColumns),
            _ => None,
        }
    }
    /// Replies must carry a think block in this form.
    pub fn requires_think(self) -> bool {
        self == PromptForm::Chat
    }
}

/// What the agent is told about the last turn when it builds the next user message.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LastTurn {
    /// Reward of the previous turn; `None` on the first turn.
    pub reward: Option<f64>,
    /// The previous reply named no valid action, so nothing happened.
    pub no_valid_action: bool,
}

fn task_text(kind: TaskKind) -> (&'static str, &'static str) {
    match kind {
        TaskKind::Sokoban => (
            "You are solving the Sokoban puzzle. Push every box onto a target. You can push a box \
             but not pull it, and a box cannot be pushed into a wall or another box.",
            "Symbols: # wall, _ floor, O target, X box, √ box on target, P player, S player on target.",
        ),
        TaskKind::FrozenLake => (
            "You are walking on a frozen lake. Reach the goal without falling into a hole. The ice \
             is slippery: you may move sideways instead of where you intend.",
            "Symbols: _ frozen ice, O hole, G goal, P player, X player in a hole, √ player on the goal.",
        ),
        TaskKind::WebShop => (
            "You are shopping on a web shop. Find the product that matches the instruction, choose \
             its options and buy it. Use search[your query] to search and click[button] to click.",
            "Pages show their texts separated by [SEP]; the clickable buttons are listed as actions.",
        ),
    }
}

/// The system message (chat form only; the compact form has none).
pub fn system_text(kind: TaskKind, action_names: &[String], max_actions_per_turn: usize) -> String {
    let (task, legend) = task_text(kind);
    format!(
        "You're a helpful assistant. {task} {legend} Available actions: {}. You can make up to \
         {max_actions_per_turn} actions, separated by the action separator \" || \"",
        action_names.join(", ")
    )
}

/// The user message of one turn.
pub fn user_text(
    form: PromptForm,
    state: &str,
    turn: usize,
    actions_left: usize,
    last: LastTurn,
) -> String {
    match form {
        PromptForm::Chat => {
            let mut s = String::new();
            if let Some(r) = last.reward {
                s.push_str(&format!("Reward:\n{r}\n"));
            }
            s.push_str(&format!("Turn {turn}:\nState:\n{state}\n"));
            if last.no_valid_action {
                s.push_str("Your last response had no valid action, so nothing happened.\n");
            }
            s.push_str(&format!(
                "You have {actions_left} actions left. Always output: <think> [Your thoughts] </think> \
                 <answer> [your answer] </answer> with no extra text. Strictly follow this format. \
                 Max response length: 120 words (tokens)."
            ));
            s
        }
        PromptForm::Compact => {
            let warn = if last.no_valid_action {
                "invalid\n"
            } else {
                ""
            };
            format!("{warn}{}\nleft {actions_left}", compact_state(state))
        }
        PromptForm::CompactColumns => {
            let warn = if last.no_valid_action {
                "invalid\n"
            } else {
                ""
            };
            let grid = compact_state(state).trim_end();
            match columns(grid) {
                Some(cols) => format!("{warn}{grid}\n\n{cols}\nleft {actions_left}"),
                None => format!("{warn}{grid}\nleft {actions_left}"),
            }
        }
        PromptForm::CompactFull => {
            let warn = if last.no_valid_action {
                "invalid\n"
            } else {
                ""
            };
            format!("{warn}{state}\nleft {actions_left}")
        }
    }
}

/// The compact form shows only the grid of a grid task's observation (the coordinate lines
/// repeat what the grid shows); other observations are shown whole.
pub fn compact_state(state: &str) -> &str {
    state
        .split_once("Grid Map: \n")
        .map_or(state, |(_, grid)| grid)
}

/// A rectangular grid's columns, each as one line (top to bottom), left to right; `None` when
/// the text is not a rectangular grid of at least two rows.
pub fn columns(grid: &str) -> Option<String> {
    let rows: Vec<Vec<char>> = grid.lines().map(|l| l.chars().collect()).collect();
    let width = rows.first()?.len();
    if rows.len() < 2 || width == 0 || rows.iter().any(|r| r.len() != width) {
        return None;
    }
    let cols: Vec<String> = (0..width)
        .map(|c| rows.iter().map(|r| r[c]).collect())
        .collect();
    Some(cols.join("\n"))
}

/// `<|im_start|>{role}\n{text}<|im_end|>\n`
pub fn message(role: &str, text: &str) -> String {
    format!("{IM_START}{role}\n{text}{IM_END}\n")
}

/// What opens the assistant's reply; the model continues from here.
pub fn assistant_header() -> String {
    format!("{IM_START}assistant\n")
}

/// A compact-form reply carrying `actions`, e.g. `<answer>Up || Left</answer>`.
pub fn answer_text(actions: &[&str]) -> String {
    format!("<answer>{}</answer>", actions.join(" || "))
}

/// Text for building a from-scratch tokenizer: every prompt piece and every action the task can
/// produce, over a range of seeds, so the vocabulary covers them.
pub fn tokenizer_corpus(
    env: &TaskEnv,
    form: PromptForm,
    max_actions_per_turn: usize,
    seeds: u64,
) -> Vec<String> {
    let mut env = env.clone();
    let mut corpus = vec![
        system_text(env.kind(), &env.action_names(), max_actions_per_turn),
        assistant_header(),
    ];
    for name in env.action_names() {
        corpus.push(format!(
            "<think>...</think><answer>{name} || {name}</answer>"
        ));
        corpus.push(format!("<answer>{name}</answer>{IM_END}"));
    }
    for seed in 0..seeds {
        env.reset(seed);
        let last = LastTurn {
            reward: Some(-0.1),
            no_valid_action: seed % 2 == 0,
        };
        corpus.push(message(
            "user",
            &user_text(
                form,
                &env.observation(),
                1 + seed as usize % 5,
                seed as usize % 11,
                last,
            ),
        ));
    }
    corpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_columns_form_shows_the_grid_then_its_columns() {
        let state = "Coordinates: \nPlayer: (1, 0)\nGrid Map: \n__G\nPO_\n";
        let text = user_text(
            PromptForm::CompactColumns,
            state,
            1,
            10,
            LastTurn::default(),
        );
        assert_eq!(text, "__G\nPO_\n\n_P\n_O\nG_\nleft 10");
        // A cell's lower neighbour follows it directly in the column reading.
        assert_eq!(columns("ab\ncd"), Some("ac\nbd".into()));
        assert_eq!(columns("√X\n_P"), Some("√_\nXP".into()));
        assert_eq!(columns("ab\nc"), None, "ragged rows are not a grid");
        assert_eq!(columns("one line"), None);
        assert_eq!(
            PromptForm::parse("compact_columns"),
            Some(PromptForm::CompactColumns)
        );
    }
}
