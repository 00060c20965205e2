//! One agent turn: a reply's action texts are matched against the task's actions and played in
//! order, under the per-episode action budget, with the spec's format-penalty rule.

use super::{Env, ParsedReply, StepOutcome};

/// Limits that bound an episode, shared by every task (the `[env]` section supplies them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnRules {
    pub max_actions_per_turn: usize,
    pub max_actions_per_episode: usize,
    /// Added to the episode return (not shown to the agent) when a reply has an invalid part
    /// or no parseable answer at all. Negative.
    pub format_penalty: f64,
}

/// What one turn did to the environment and the episode.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TurnResult {
    /// Names of the actions that were played, in order.
    pub actions: Vec<String>,
    /// Each played action's outcome.
    pub steps: Vec<StepOutcome>,
    /// Sum of the step rewards (the penalty is separate).
    pub reward: f64,
    /// `format_penalty` if the reply broke the format, else 0.
    pub penalty: f64,
    /// No part of the reply named a valid action, so the environment was not stepped; the next
    /// prompt says so.
    pub no_valid_action: bool,
    /// The environment ended the episode during this turn.
    pub done: bool,
    pub success: bool,
}

/// The valid actions `reply` names, within the per-turn limit, and whether any part of it broke
/// the format (which costs the penalty).
pub fn turn_actions<E: Env>(
    env: &E,
    reply: &ParsedReply,
    rules: &TurnRules,
) -> (Vec<E::Action>, bool) {
    // The parser already truncates, but a reply built elsewhere (the `play` command, tests) may
    // not have been, and the per-turn limit is a rule of the episode, not of the parser.
    let parts = reply.parts.iter().take(rules.max_actions_per_turn);
    let parsed: Vec<Option<E::Action>> = parts.map(|p| env.parse_action(p)).collect();
    let any_invalid = !reply.matched || parsed.is_empty() || parsed.iter().any(Option::is_none);
    (parsed.into_iter().flatten().collect(), any_invalid)
}

/// Play `reply` on `env`. `actions_used` is how many actions the episode has spent before this
/// turn; the turn stops early when the budget runs out or the environment ends the episode.
pub fn play_turn<E: Env>(
    env: &mut E,
    reply: &ParsedReply,
    actions_used: usize,
    rules: &TurnRules,
) -> TurnResult {
    let (valid, any_invalid) = turn_actions(env, reply, rules);
    let mut result = TurnResult {
        actions: Vec::new(),
        steps: Vec::new(),
        reward: 0.0,
        penalty: if any_invalid {
            rules.format_penalty
        } else {
            0.0
        },
        no_valid_action: valid.is_empty(),
        done: env.done(),
        success: env.success(),
    };
    let budget_left = rules.max_actions_per_episode.saturating_sub(actions_used);
    for action in valid.into_iter().take(budget_left) {
        if env.done() {
            break;
        }
        let out = env.step(action);
        result.actions.push(env.action_name(action));
        result.steps.push(out);
        result.reward += out.reward;
        result.done = out.done;
        result.success = out.success;
    }
    result
}
