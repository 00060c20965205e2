//! TSR strategies on hand-built cases, with a scripted sampler and a character-level codec so
//! the best candidate is known in advance.

mod search_common;

use search_common::{CharCodec, Scripted, answer, corridor, first_turn, settings, spec};
use tsr::env::frozenlake::FrozenLake;
use tsr::env::{Env, ParsedReply, TaskEnv, TurnRules};
use tsr::search::beam::play_beam;
use tsr::search::play_episode;
use tsr::search::score::{NO_VALID_ACTION, Potential, Scorer, Stochastic};
use tsr::search::strategy::{BestOfN, Lookahead, argmax_first};

#[test]
fn best_of_n_commits_the_candidate_that_scores_best() {
    // The goal is right of the start, a hole below it.
    let mut env = TaskEnv::FrozenLake(FrozenLake::from_map("SGF/HFF/FFF", 1.0).expect("valid map"));
    // Left (no-op, 0), Down (hole, 0), Right (goal, 1), garbage (-1e6): Right is the known best.
    let mut sampler = Scripted {
        script: |_, _| {
            vec![
                answer("Left"),
                answer("Down"),
                answer("Right"),
                "???".into(),
            ]
        },
        calls: vec![],
    };
    let mut chooser = BestOfN {
        n: 4,
        explore: 0,
        scorer: Scorer::reward_only(),
    };
    let ep = play_episode(
        &mut env,
        spec(),
        &settings(5),
        &mut chooser,
        &mut sampler,
        &CharCodec,
    )
    .expect("episode");
    let played: Vec<&str> = ep.turns.iter().map(|t| t.reply.as_str()).collect();
    assert_eq!(played, vec![answer("Right").as_str()]);
    assert!(ep.success, "the committed reply reaches the goal");
    assert_eq!(ep.search.extra_candidates, 3);
    assert_eq!(ep.search.forks, 1 + 4, "one base fork, one per candidate");
    let all: usize = [
        answer("Left"),
        answer("Down"),
        answer("Right"),
        "???".into(),
    ]
    .iter()
    .map(|t| t.chars().count() + 1)
    .sum();
    assert_eq!(
        ep.generated_tokens, all,
        "every candidate's tokens count as generated"
    );
    assert_eq!(
        ep.search.discarded_tokens,
        all - (answer("Right").chars().count() + 1)
    );
}

#[test]
fn exploration_replies_find_the_move_the_policy_never_proposes() {
    // The goal is right of the start, a hole below it; the policy only ever answers Down.
    let play = |explore: usize| {
        let mut env =
            TaskEnv::FrozenLake(FrozenLake::from_map("SGF/HFF/FFF", 1.0).expect("valid map"));
        let mut sampler = Scripted {
            script: |_, _| vec![answer("Down"), answer("Down")],
            calls: vec![],
        };
        let mut chooser = BestOfN {
            n: 2,
            explore,
            scorer: Scorer::reward_only(),
        };
        play_episode(
            &mut env,
            spec(),
            &settings(5),
            &mut chooser,
            &mut sampler,
            &CharCodec,
        )
        .expect("episode")
    };
    let plain = play(0);
    assert_eq!(plain.turns[0].reply, answer("Down"));
    assert!(
        !plain.success,
        "without exploration the hole is the only candidate"
    );
    let explored = play(16);
    assert_eq!(
        explored.turns[0].reply,
        answer("Right"),
        "a random reply reaching the goal scores best (one action per turn here)"
    );
    assert!(explored.success);
    assert_eq!(explored.search.extra_candidates, 2 + 16 - 1);
    let sampled = 2 * (answer("Down").chars().count() + 1);
    assert_eq!(
        explored.generated_tokens, sampled,
        "random replies are candidates, not generated tokens"
    );
    assert_eq!(explored.search.discarded_tokens, sampled);
    assert_eq!(
        play(16).turns[0].reply,
        explored.turns[0].reply,
        "the random replies derive from the turn's seed"
    );
}

#[test]
fn heuristic_scorer_prefers_progress_over_a_tie() {
    let mut env = corridor(1.0);
    let mut sampler = Scripted {
        script: |k, _| match k {
            0 => vec![answer("Left"), answer("Right")],
            _ => vec![answer("Right"), answer("Right")],
        },
        calls: vec![],
    };
    let scorer = Scorer {
        heuristic_weight: 0.5,
        potential: Potential::Heuristic,
        stochastic: Stochastic::Shared,
    };
    let mut chooser = BestOfN {
        n: 2,
        explore: 0,
        scorer,
    };
    let ep = play_episode(
        &mut env,
        spec(),
        &settings(5),
        &mut chooser,
        &mut sampler,
        &CharCodec,
    )
    .expect("episode");
    assert_eq!(
        ep.turns[0].reply,
        answer("Right"),
        "moving toward the goal raises the potential"
    );
}

#[test]
fn ties_go_to_the_earliest_and_invalid_candidates_score_minus_1e6() {
    assert_eq!(argmax_first(&[1.0, 3.0, 3.0, 2.0]), 1);
    assert_eq!(argmax_first(&[0.0, 0.0]), 0);
    let env = corridor(1.0);
    let rules = TurnRules {
        max_actions_per_turn: 1,
        max_actions_per_episode: 10,
        format_penalty: -0.1,
    };
    let garbage = ParsedReply {
        parts: vec!["Jump".into()],
        matched: true,
    };
    let scored = Scorer::reward_only().score(&env, &garbage, first_turn(&rules), &rules, 1);
    assert_eq!(scored.score, NO_VALID_ACTION);
    let unparsed = ParsedReply::default();
    assert_eq!(
        Scorer::reward_only()
            .score(&env, &unparsed, first_turn(&rules), &rules, 1)
            .score,
        NO_VALID_ACTION
    );
    let valid = ParsedReply {
        parts: vec!["Right".into()],
        matched: true,
    };
    assert!(
        Scorer::reward_only()
            .score(&env, &valid, first_turn(&rules), &rules, 1)
            .score
            > NO_VALID_ACTION
    );
}

#[test]
fn best_of_n_commits_the_earliest_of_candidates_that_tie_for_best() {
    // Up and Left both leave the player on the start (score 0); the garbage reply before them
    // scores -1e6. The first of the tied best, Up, is committed, every turn.
    let mut env = TaskEnv::FrozenLake(FrozenLake::from_map("SGF/HFF/FFF", 1.0).expect("valid map"));
    let mut sampler = Scripted {
        script: |_, _| vec!["???".into(), answer("Up"), answer("Left")],
        calls: vec![],
    };
    let mut chooser = BestOfN {
        n: 3,
        explore: 0,
        scorer: Scorer::reward_only(),
    };
    let ep = play_episode(
        &mut env,
        spec(),
        &settings(3),
        &mut chooser,
        &mut sampler,
        &CharCodec,
    )
    .expect("episode");
    let played: Vec<&str> = ep.turns.iter().map(|t| t.reply.as_str()).collect();
    assert_eq!(played, vec![answer("Up").as_str(); 3]);
}

#[test]
fn lookahead_continues_each_candidate_exactly_depth_turns() {
    for depth in [0usize, 1, 2] {
        let mut env =
            TaskEnv::FrozenLake(FrozenLake::from_map("SFFFF/FFFFF/FFFFF/FFFFG", 1.0).expect("map"));
        // Moves that never end the episode early: Left/Up against the wall.
        let mut sampler = Scripted {
            script: |_, n| vec![answer("Left"); n],
            calls: vec![],
        };
        let mut chooser = Lookahead {
            m: 3,
            explore: 0,
            depth,
            scorer: Scorer::reward_only(),
        };
        let ep = play_episode(
            &mut env,
            spec(),
            &settings(4),
            &mut chooser,
            &mut sampler,
            &CharCodec,
        )
        .expect("episode");
        // Per committed turn: one call for the M candidates, then M*depth' single continuations,
        // where depth' is cut by the turns left in the episode.
        let mut expected = Vec::new();
        for turn in 1..=ep.turns.len() {
            expected.push(3);
            let room = 4 - turn;
            expected.extend(std::iter::repeat_n(1, 3 * depth.min(room)));
        }
        assert_eq!(sampler.calls, expected, "depth {depth}");
    }
}

#[test]
fn beam_keeps_exactly_width_branches() {
    let mut env =
        TaskEnv::FrozenLake(FrozenLake::from_map("SFFFF/FFFFF/FFFFF/FFFFG", 1.0).expect("map"));
    let mut sampler = Scripted {
        script: |_, n| vec![answer("Left"); n],
        calls: vec![],
    };
    let ep = play_beam(
        &mut env,
        spec(),
        &settings(4),
        2,
        3,
        &Scorer::reward_only(),
        &mut sampler,
        &CharCodec,
    )
    .expect("beam");
    // Turn 1 expands the single root; every later turn expands exactly B = 2 beams.
    assert_eq!(sampler.calls, vec![3, 3, 3, 3, 3, 3, 3]);
    assert_eq!(ep.turns.len(), 4);
    assert_eq!(ep.search.forks, 1 + 3 + 6 + 6 + 6);
}

#[test]
fn beam_with_width_one_is_greedy_best_of_m() {
    let mut env = corridor(1.0);
    let mut sampler = Scripted {
        script: |_, _| vec![answer("Down"), answer("Right")],
        calls: vec![],
    };
    let scorer = Scorer {
        heuristic_weight: 1.0,
        potential: Potential::Heuristic,
        stochastic: Stochastic::Shared,
    };
    let ep = play_beam(
        &mut env,
        spec(),
        &settings(5),
        1,
        2,
        &scorer,
        &mut sampler,
        &CharCodec,
    )
    .expect("beam");
    assert!(ep.success);
    assert!(ep.turns.iter().all(|t| t.reply == answer("Right")));
    assert_eq!(
        env.observation(),
        {
            let mut real = corridor(1.0);
            real.reset(0);
            real.step(real.parse_action("Right").expect("action"));
            real.step(real.parse_action("Right").expect("action"));
            real.observation()
        },
        "the real environment ends where the chosen trajectory does"
    );
}

#[test]
fn shared_forks_preview_the_real_outcome_and_independent_ones_do_not() {
    let rules = TurnRules {
        max_actions_per_turn: 1,
        max_actions_per_episode: 10,
        format_penalty: -0.1,
    };
    let right = ParsedReply {
        parts: vec!["Right".into()],
        matched: true,
    };
    let shared = Scorer {
        heuristic_weight: 1.0,
        potential: Potential::Heuristic,
        stochastic: Stochastic::Shared,
    };
    let independent = Scorer {
        heuristic_weight: 1.0,
        potential: Potential::Heuristic,
        stochastic: Stochastic::Independent { simulations: 1 },
    };
    let (mut shared_mismatch, mut independent_mismatch) = (0, 0);
    for seed in 0..200u64 {
        let mut real = corridor(0.8);
        real.reset(0);
        real.reseed(seed);
        let before = real.clone();
        let horizon = first_turn(&rules);
        let s = shared.score(&real, &right, horizon, &rules, seed ^ 99);
        let i = independent.score(&real, &right, horizon, &rules, seed ^ 99);
        let result = tsr::env::play_turn(&mut real, &right, 0, &rules);
        let actual = shared.turn_value(&before, &real, &result, horizon);
        shared_mismatch += usize::from(s.score != actual);
        independent_mismatch += usize::from(i.score != actual);
    }
    assert_eq!(
        shared_mismatch, 0,
        "a shared fork sees exactly the real slip"
    );
    assert!(
        independent_mismatch > 10,
        "independent forks draw their own slips ({independent_mismatch} of 200 differ)"
    );
}

#[test]
fn validation_never_searches() {
    use tsr::search::strategy::Strategy;
    for strategy in [
        Strategy::BestOfN {
            n: 4,
            explore: 0,
            scorer: Scorer::reward_only(),
        },
        Strategy::Beam {
            width: 2,
            branch: 3,
            scorer: Scorer::reward_only(),
        },
        Strategy::Lookahead {
            m: 3,
            explore: 0,
            depth: 1,
            scorer: Scorer::reward_only(),
        },
        Strategy::BestOfNTrajectory { n: 3 },
    ] {
        let mut env = corridor(1.0);
        let mut sampler = Scripted {
            script: |_, n| vec![answer("Left"); n],
            calls: vec![],
        };
        let ep = strategy
            .play(
                &mut env,
                spec(),
                &settings(3),
                &mut sampler,
                &CharCodec,
                false,
            )
            .expect("episode");
        assert!(
            sampler.calls.iter().all(|&n| n == 1),
            "{strategy:?}: one sample per turn, got {:?}",
            sampler.calls
        );
        assert_eq!(ep.search.forks, 0);
        let mut sampler = Scripted {
            script: |_, n| vec![answer("Left"); n],
            calls: vec![],
        };
        let mut env = corridor(1.0);
        strategy
            .play(
                &mut env,
                spec(),
                &settings(3),
                &mut sampler,
                &CharCodec,
                true,
            )
            .expect("episode");
        assert!(
            sampler.calls.iter().any(|&n| n > 1) || sampler.calls.len() > 3,
            "{strategy:?} searches in training"
        );
    }
}

#[test]
fn compact_prompts_show_the_grid_or_the_whole_observation() {
    use tsr::search::prompt::{LastTurn, PromptForm, user_text};
    let mut env = corridor(1.0);
    env.reset(0);
    let obs = env.observation();
    let grid_only = user_text(PromptForm::Compact, &obs, 1, 10, LastTurn::default());
    let full = user_text(PromptForm::CompactFull, &obs, 1, 10, LastTurn::default());
    assert!(!grid_only.contains("Coordinates"), "{grid_only}");
    assert!(grid_only.starts_with(obs.split_once("Grid Map: \n").expect("grid").1));
    assert!(
        full.starts_with(&obs) && full.ends_with("left 10"),
        "{full}"
    );
    let warned = user_text(
        PromptForm::CompactFull,
        &obs,
        2,
        9,
        LastTurn {
            reward: Some(0.0),
            no_valid_action: true,
        },
    );
    assert!(warned.starts_with("invalid\n"));
    assert_eq!(
        PromptForm::parse("compact_full"),
        Some(PromptForm::CompactFull)
    );
}
