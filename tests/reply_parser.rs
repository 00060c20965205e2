//! The agent's turn (spec "The agent's turn"): reply parsing and playing parsed actions under
//! the episode rules. FrozenLake with `success_rate = 1.0` makes every step predictable.

use tsr::env::frozenlake::FrozenLake;
use tsr::env::{ParsedReply, TurnRules, parse_reply, play_turn};

const RULES: TurnRules = TurnRules {
    max_actions_per_turn: 2,
    max_actions_per_episode: 10,
    format_penalty: -0.1,
};

/// Start (0,0), goal (2,2), no holes: Right and Down both move the player.
fn open_lake() -> FrozenLake {
    FrozenLake::from_map("SFF/FFF/FFG", 1.0).expect("valid map")
}

fn parts(reply: &ParsedReply) -> Vec<&str> {
    reply.parts.iter().map(String::as_str).collect()
}

#[test]
fn valid_reply_parses_and_plays_in_order() {
    let reply = parse_reply("<think>go</think><answer>Right || Down</answer>", 2, true);
    assert!(reply.matched);
    assert_eq!(parts(&reply), ["Right", "Down"]);
    let mut env = open_lake();
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    assert_eq!(turn.actions, ["Right", "Down"]);
    assert_eq!(turn.penalty, 0.0);
    assert!(!turn.no_valid_action && !turn.done);
    assert_eq!(env.player(), (1, 1));
}

#[test]
fn invalid_parts_are_penalised_but_valid_ones_still_run() {
    let reply = parse_reply("<think></think><answer>Jump || Right</answer>", 2, true);
    assert_eq!(parts(&reply), ["Jump", "Right"]);
    let mut env = open_lake();
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    assert_eq!(turn.actions, ["Right"]);
    assert_eq!(turn.penalty, RULES.format_penalty);
    assert!(!turn.no_valid_action);
    assert_eq!(env.player(), (0, 1));
}

#[test]
fn missing_tags_penalise_and_do_not_step() {
    for text in [
        "Right || Down",
        "<think>hmm</think> Right",
        "<answer>Right",
        "<think>x</think><answer>Right</answr>",
    ] {
        let reply = parse_reply(text, 2, true);
        assert!(!reply.matched && reply.parts.is_empty(), "{text:?}");
        let mut env = open_lake();
        let turn = play_turn(&mut env, &reply, 0, &RULES);
        assert!(turn.no_valid_action && turn.actions.is_empty(), "{text:?}");
        assert_eq!(turn.penalty, RULES.format_penalty);
        assert_eq!(
            env.player(),
            (0, 0),
            "{text:?}: the env must not be stepped"
        );
    }
}

#[test]
fn think_block_is_required_only_in_the_full_form() {
    let text = "<answer>Right</answer>";
    assert!(!parse_reply(text, 2, true).matched);
    let compact = parse_reply(text, 2, false);
    assert!(compact.matched);
    assert_eq!(parts(&compact), ["Right"]);
    // Text between the think and answer blocks breaks the full pattern (only whitespace may).
    assert!(!parse_reply("<think>a</think> so: <answer>Up</answer>", 2, true).matched);
}

#[test]
fn extra_actions_are_truncated_to_the_limit() {
    let reply = parse_reply(
        "<think>t</think><answer>Right||Right||Down||Down</answer>",
        2,
        true,
    );
    assert_eq!(parts(&reply), ["Right", "Right"]);
    let mut env = open_lake();
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    assert_eq!(turn.actions.len(), 2);
    assert_eq!(turn.penalty, 0.0, "dropped extras are not a format error");
    // A reply built without the parser is held to the same per-turn limit.
    let built = ParsedReply {
        parts: vec!["Down".into(), "Down".into(), "Right".into()],
        matched: true,
    };
    let mut env = open_lake();
    let turn = play_turn(&mut env, &built, 0, &RULES);
    assert_eq!(turn.actions, ["Down", "Down"]);
    assert_eq!(env.player(), (2, 0));
}

#[test]
fn action_names_match_case_insensitively() {
    let reply = parse_reply("<think>t</think><answer>rIGHT || down</answer>", 2, true);
    let mut env = open_lake();
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    assert_eq!(
        turn.actions,
        ["Right", "Down"],
        "canonical names are reported"
    );
    assert_eq!(turn.penalty, 0.0);
}

#[test]
fn whitespace_and_newlines_inside_tags_are_trimmed() {
    let text =
        "<think>\nfirst right,\nthen down\n</think>\n\n  <answer>\n  Right \n||\n\tDown\n</answer>";
    let reply = parse_reply(text, 2, true);
    assert!(reply.matched);
    assert_eq!(parts(&reply), ["Right", "Down"]);
    // Empty parts between separators are dropped, not counted.
    let sparse = parse_reply(
        "<think></think><answer>|| Right ||  || Down ||</answer>",
        2,
        true,
    );
    assert_eq!(parts(&sparse), ["Right", "Down"]);
}

#[test]
fn empty_answer_is_a_format_error_with_no_step() {
    for text in [
        "<think>t</think><answer></answer>",
        "<think>t</think><answer>  \n </answer>",
        "<think>t</think><answer>||</answer>",
    ] {
        let reply = parse_reply(text, 2, true);
        assert!(reply.matched && reply.parts.is_empty(), "{text:?}");
        let mut env = open_lake();
        let turn = play_turn(&mut env, &reply, 0, &RULES);
        assert!(turn.no_valid_action, "{text:?}");
        assert_eq!(turn.penalty, RULES.format_penalty, "{text:?}");
        assert_eq!(env.player(), (0, 0));
    }
}

#[test]
fn budget_exhaustion_stops_mid_turn() {
    let reply = parse_reply("<think>t</think><answer>Right || Down</answer>", 2, true);
    let mut env = open_lake();
    let used = RULES.max_actions_per_episode - 1;
    let turn = play_turn(&mut env, &reply, used, &RULES);
    assert_eq!(
        turn.actions,
        ["Right"],
        "only one action was left in the budget"
    );
    assert_eq!(env.player(), (0, 1));
    assert!(
        !turn.done && !turn.success,
        "running out is not the env ending the episode"
    );
    let mut env = open_lake();
    let spent = play_turn(&mut env, &reply, RULES.max_actions_per_episode, &RULES);
    assert!(spent.actions.is_empty());
    assert_eq!(env.player(), (0, 0));
}

#[test]
fn stepping_stops_when_the_episode_ends() {
    let reply = parse_reply("<think>t</think><answer>Right || Down</answer>", 2, true);
    let mut env = FrozenLake::from_map("SG/FF", 1.0).expect("valid map");
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    assert_eq!(turn.actions, ["Right"], "the goal ends the turn");
    assert!(turn.done && turn.success);
    assert_eq!(turn.reward, 1.0);
    assert_eq!(env.player(), (0, 1));

    let mut env = FrozenLake::from_map("SH/FG", 1.0).expect("valid map");
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    assert_eq!(turn.actions, ["Right"], "a hole ends the turn");
    assert!(turn.done && !turn.success);
    assert_eq!(turn.reward, 0.0);
}

#[test]
fn turn_reward_is_the_sum_of_step_rewards() {
    let reply = parse_reply("<think>t</think><answer>Down || Right</answer>", 2, true);
    let mut env = FrozenLake::from_map("SF/FG", 1.0).expect("valid map");
    let turn = play_turn(&mut env, &reply, 0, &RULES);
    let sum: f64 = turn.steps.iter().map(|s| s.reward).sum();
    assert_eq!(turn.reward, sum);
    assert_eq!(turn.reward, 1.0);
    assert!(turn.success);
}
