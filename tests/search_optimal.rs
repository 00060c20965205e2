//! The "optimal" scorer: the task's exact value tells best-of-N what the heuristics only
//! approximate. Checked against the task's own ceiling and against a tie the heuristic cannot
//! break.

mod search_common;

use search_common::{CharCodec, Scripted, answer, settings};
use tsr::config::Config;
use tsr::env::frozenlake::{FrozenLake, TurnLimits};
use tsr::env::sokoban::{Sokoban, SokobanConfig};
use tsr::env::{Env, TaskEnv};
use tsr::search::score::{Potential, Scorer, Stochastic};
use tsr::search::strategy::BestOfN;
use tsr::search::{EpisodeSpec, play_episode};

fn scorer(potential: Potential) -> Scorer {
    Scorer {
        heuristic_weight: 1.0,
        potential,
        stochastic: Stochastic::Independent { simulations: 4 },
    }
}

/// Success rate of best-of-4 over every single-move reply, on `episodes` slip seeds.
fn success_with_every_reply(lake: &FrozenLake, potential: Potential, episodes: u64) -> f64 {
    let mut wins = 0;
    for seed in 0..episodes {
        let mut env = TaskEnv::FrozenLake(lake.clone());
        let mut sampler = Scripted {
            script: |_, _| ["Left", "Down", "Right", "Up"].map(answer).to_vec(),
            calls: vec![],
        };
        let mut chooser = BestOfN {
            n: 4,
            explore: 0,
            scorer: scorer(potential),
        };
        let spec = EpisodeSpec {
            id: seed,
            group: 0,
            env_seed: seed,
            sample_seed: seed ^ 0x5eed,
        };
        let ep = play_episode(
            &mut env,
            spec,
            &settings(6),
            &mut chooser,
            &mut sampler,
            &CharCodec,
        )
        .expect("episode");
        wins += usize::from(ep.success);
    }
    wins as f64 / episodes as f64
}

#[test]
fn best_of_n_over_every_reply_with_the_optimal_scorer_reaches_the_lakes_ceiling() {
    // With every move offered each turn and the exact value as the score, search is the optimal
    // policy, so its success rate is the ceiling computed by dynamic programming.
    let lake = FrozenLake::from_map("SFFH/FHFF/FFFH/HFFG", 0.8).expect("valid map");
    let limits = TurnLimits {
        max_turns: 6,
        max_actions_per_turn: 1,
        max_actions_per_episode: 10,
    };
    let ceiling = lake.success_ceiling(limits);
    let episodes = 3000;
    let optimal = success_with_every_reply(&lake, Potential::Optimal, episodes);
    // Binomial standard error at p ~ 0.5 over 3000 episodes is 0.009.
    assert!(
        (optimal - ceiling).abs() < 0.035,
        "optimal search {optimal} vs ceiling {ceiling}"
    );
    // The ceiling is an upper bound for any scorer, the heuristic included.
    let heuristic = success_with_every_reply(&lake, Potential::Heuristic, episodes);
    eprintln!("ceiling {ceiling:.3}, optimal search {optimal:.3}, heuristic search {heuristic:.3}");
    assert!(heuristic < ceiling + 0.035, "{heuristic} vs {ceiling}");
}

#[test]
fn the_optimal_scorer_breaks_a_tie_the_box_heuristic_cannot() {
    // The player must walk round to below the box before pushing it up onto the target. A step
    // away or toward leaves every box where it is, so box progress ties (the earliest
    // candidate wins); the moves left on a shortest solution do not.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("walk.txt");
    std::fs::write(&path, "######\n#  . #\n#  $ #\n#    #\n#@   #\n######\n").expect("write");
    let config = SokobanConfig {
        levels: path.to_str().expect("utf-8").to_owned(),
        ..SokobanConfig::default()
    };
    let first_reply = |potential: Potential| {
        let mut env = TaskEnv::Sokoban(Sokoban::new(&config).expect("level loads"));
        let mut sampler = Scripted {
            script: |_, _| vec![answer("Left"), answer("Right")],
            calls: vec![],
        };
        let mut chooser = BestOfN {
            n: 2,
            explore: 0,
            scorer: scorer(potential),
        };
        let spec = EpisodeSpec {
            id: 0,
            group: 0,
            env_seed: 0,
            sample_seed: 1,
        };
        let ep = play_episode(
            &mut env,
            spec,
            &settings(1),
            &mut chooser,
            &mut sampler,
            &CharCodec,
        )
        .expect("episode");
        ep.turns[0].reply.clone()
    };
    assert_eq!(first_reply(Potential::Heuristic), answer("Left"));
    assert_eq!(first_reply(Potential::Optimal), answer("Right"));
}

#[test]
fn the_optimal_scorer_is_refused_for_a_task_without_an_exact_value() {
    let overrides = ["env.task=\"webshop\"", "search.scorer=\"optimal\""].map(String::from);
    let err = Config::load(None, &overrides).expect_err("webshop has no exact value");
    assert!(err.to_string().contains("search.scorer"), "{err}");
    let sokoban = ["env.task=\"sokoban\"", "search.scorer=\"optimal\""].map(String::from);
    Config::load(None, &sokoban).expect("sokoban has one");
}

#[test]
fn exploration_is_refused_outside_the_per_turn_searches() {
    for kind in ["none", "beam", "best_of_n_trajectory", "select"] {
        let overrides = [format!("search.kind=\"{kind}\""), "search.explore=2".into()];
        let err = Config::load(None, &overrides).expect_err("no per-turn candidates to add to");
        assert!(err.to_string().contains("search.explore"), "{kind}: {err}");
    }
    for kind in ["best_of_n", "lookahead"] {
        let overrides = [format!("search.kind=\"{kind}\""), "search.explore=2".into()];
        Config::load(None, &overrides).expect("a per-turn search takes random replies");
    }
}

#[test]
fn the_optimal_potential_of_a_sokoban_room_is_minus_its_shortest_solution() {
    let mut env = TaskEnv::Sokoban(Sokoban::new(&SokobanConfig::default()).expect("default"));
    env.reset(3);
    let TaskEnv::Sokoban(room) = &env else {
        unreachable!()
    };
    let shortest = tsr::env::sokoban::solve(room.room(), 1_000_000).expect("solvable");
    let horizon = tsr::search::score::Horizon {
        limits: TurnLimits {
            max_turns: 5,
            max_actions_per_turn: 2,
            max_actions_per_episode: 10,
        },
        turns_left: 5,
        actions_left: 10,
    };
    let value = tsr::search::score::optimal_potential(&env, horizon);
    assert_eq!(value, -(shortest.len() as f64));
}
