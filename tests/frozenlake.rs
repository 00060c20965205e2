//! FrozenLake semantics (../shared/spec/environments.md, "FrozenLake").

use proptest::prelude::*;
use tsr::env::Env;
use tsr::env::frozenlake::{FrozenLake, FrozenLakeAction, FrozenLakeConfig};

use FrozenLakeAction::{Down, Left, Right, Up};

/// The spec's example observation, verbatim.
const SPEC_EXAMPLE: &str = "Coordinates: \n\
Board size: 4 rows x 4 cols (zero-indexed).\n\
Start: (0, 0)\n\
Goal: (3, 2)\n\
Player: (1, 0)\n\
Holes: (1, 1), (2, 3)\n\
Grid Map: \n\
____\n\
PO__\n\
___O\n\
__G_";

/// The spec example's lake in gymnasium letters.
const SPEC_MAP: &str = "SFFF/FHFF/FFFH/FFGF";

fn deterministic(map: &str) -> FrozenLake {
    FrozenLake::from_map(map, 1.0).expect("valid map")
}

#[test]
fn golden_spec_example_observation() {
    let mut env = deterministic(SPEC_MAP);
    let out = env.step(Down);
    assert!(out.effective && !out.done);
    assert_eq!(env.observation(), SPEC_EXAMPLE);
}

#[test]
fn start_is_drawn_as_frozen_and_player_shown_on_it() {
    let env = deterministic(SPEC_MAP);
    let obs = env.observation();
    assert!(obs.contains("Start: (0, 0)\n") && obs.contains("Player: (0, 0)\n"));
    assert!(obs.ends_with("Grid Map: \nP___\n_O__\n___O\n__G_"), "{obs}");
}

#[test]
fn scorer_helpers_describe_the_map() {
    let env = deterministic(SPEC_MAP);
    assert_eq!((env.rows(), env.cols()), (4, 4));
    assert_eq!(env.start(), (0, 0));
    assert_eq!(env.goal(), (3, 2));
    assert_eq!(env.holes(), vec![(1, 1), (2, 3)]);
    assert!(env.is_hole(1, 1) && env.is_hole(2, 3) && !env.is_hole(0, 0) && !env.is_hole(9, 9));
    // Manhattan distance (3 + 2) is achievable around the holes.
    assert_eq!(env.distance_to_goal(), Some(5));
    assert_eq!(env.distance_from(3, 2), Some(0));
    assert_eq!(env.distance_from(1, 1), None, "a hole has no distance");
    assert_eq!(env.distance_from(4, 0), None, "off the board");
    // A wall of holes detours the path: from (0,0) around column 1 of "SHG/FHF/FFF".
    let detour = deterministic("SHG/FHF/FFF");
    assert_eq!(detour.distance_to_goal(), Some(6));
}

#[test]
fn deterministic_variant_always_moves_as_intended() {
    for seed in 0..200 {
        for (action, want) in [
            (Left, (1, 0)),
            (Down, (2, 1)),
            (Right, (1, 2)),
            (Up, (0, 1)),
        ] {
            let mut env = deterministic("FFF/FSF/FFG");
            env.reset(seed);
            let out = env.step(action);
            assert_eq!(env.player(), want, "seed {seed} {action:?}");
            assert!(out.effective);
        }
    }
}

#[test]
fn move_off_the_board_stays_in_place() {
    let mut env = deterministic("SF/FG");
    for action in [Left, Up] {
        let out = env.step(action);
        assert_eq!(env.player(), (0, 0));
        assert!(!out.effective && !out.done && out.reward == 0.0);
    }
}

#[test]
fn hole_ends_the_episode_with_zero_reward() {
    let mut env = deterministic("SH/FG");
    let out = env.step(Right);
    assert!(out.done && !out.success && out.effective);
    assert_eq!(out.reward, 0.0);
    assert!(env.done() && !env.success() && env.in_hole());
    let obs = env.observation();
    assert!(obs.contains("Player in hole: (0, 1)\n"), "{obs}");
    assert!(obs.contains("Holes: (0, 1)\n"), "{obs}");
    assert!(obs.ends_with("Grid Map: \n_X\n_G"), "{obs}");
    // Stepping after the end is a no-op with zero reward.
    let after = env.step(Down);
    assert!(after.done && !after.effective && after.reward == 0.0);
    assert_eq!(env.player(), (0, 1));
}

#[test]
fn goal_pays_one_and_ends_in_success() {
    let mut env = deterministic("SG");
    let out = env.step(Right);
    assert!(out.done && out.success && out.effective);
    assert_eq!(out.reward, 1.0);
    assert!(env.done() && env.success());
    let obs = env.observation();
    assert!(obs.contains("Player on goal: (0, 1)\n"), "{obs}");
    assert!(!obs.contains("Holes"), "no holes, no line: {obs}");
    assert!(obs.ends_with("Grid Map: \n_√"), "{obs}");
}

/// Counts of (intended, counter-clockwise, clockwise) outcomes over `n` trials from the centre
/// of "FFF/FSF/FFG", each trial getting its transition RNG from `prepare(env, trial)`.
fn slip_counts(
    action: FrozenLakeAction,
    n: u64,
    prepare: impl Fn(&mut FrozenLake, u64),
) -> [u64; 3] {
    let base = FrozenLake::from_map("FFF/FSF/FFG", 0.8).expect("valid map");
    let target = |a: FrozenLakeAction| match a {
        Left => (1, 0),
        Down => (2, 1),
        Right => (1, 2),
        Up => (0, 1),
    };
    let mut counts = [0u64; 3];
    for trial in 0..n {
        let mut env = base.clone();
        prepare(&mut env, trial);
        env.step(action);
        let pos = env.player();
        let which = [action, action.turned(-1), action.turned(1)]
            .iter()
            .position(|a| target(*a) == pos)
            .expect("every outcome is one of the three directions");
        counts[which] += 1;
    }
    counts
}

fn assert_frequencies(counts: [u64; 3], what: &str) {
    let n: u64 = counts.iter().sum();
    for (count, p) in counts.iter().zip([0.8, 0.1, 0.1]) {
        let expected = n as f64 * p;
        let sigma = (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (*count as f64 - expected).abs() < 5.0 * sigma,
            "{what}: counts {counts:?}, expected share {p}"
        );
    }
}

#[test]
fn slip_frequencies_match_success_rate_over_reset_seeds() {
    for action in FrozenLakeAction::ALL {
        let counts = slip_counts(action, 20_000, |env, trial| env.reset(trial));
        assert_frequencies(counts, &format!("reset seeds, {action:?}"));
    }
}

#[test]
fn slip_frequencies_match_success_rate_over_reseeded_forks() {
    let counts = slip_counts(Up, 20_000, |env, trial| env.reseed(trial ^ 0xDEAD_BEEF));
    assert_frequencies(counts, "reseeded forks");
}

#[test]
fn slip_frequencies_match_within_one_long_episode() {
    // A hole-free 21x21 lake; the player keeps heading back to the centre so it stays inside,
    // and only moves that start away from the border are counted.
    let size = 21;
    let mut rows: Vec<String> = (0..size).map(|_| "F".repeat(size)).collect();
    rows[0].replace_range(0..1, "G");
    rows[size / 2].replace_range(size / 2..size / 2 + 1, "S");
    let mut env = FrozenLake::from_map(&rows.join("/"), 0.8).expect("valid map");
    env.reset(11);
    let mut counts = [0u64; 3];
    for step in 0..20_000usize {
        let (r, c) = env.player();
        let mid = size / 2;
        let action = match (r.cmp(&mid), c.cmp(&mid)) {
            (std::cmp::Ordering::Less, _) => Down,
            (std::cmp::Ordering::Greater, _) => Up,
            (_, std::cmp::Ordering::Less) => Right,
            (_, std::cmp::Ordering::Greater) => Left,
            _ => FrozenLakeAction::ALL[step % 4],
        };
        assert!(
            r > 0 && c > 0 && r + 1 < size && c + 1 < size,
            "left the interior"
        );
        env.step(action);
        let delta = |a: FrozenLakeAction| match a {
            Left => (r, c - 1),
            Down => (r + 1, c),
            Right => (r, c + 1),
            Up => (r - 1, c),
        };
        let pos = env.player();
        let which = [action, action.turned(-1), action.turned(1)]
            .iter()
            .position(|a| delta(*a) == pos)
            .expect("one of the three directions");
        counts[which] += 1;
    }
    assert_frequencies(counts, "one episode");
}

#[test]
fn fork_replays_the_same_slips() {
    let mut differs = 0;
    for seed in 0..300 {
        let mut env = FrozenLake::new(&FrozenLakeConfig::default()).expect("defaults");
        env.reset(seed);
        env.step(Right);
        let mut fork = env.clone();
        let mut reseeded = env.clone();
        reseeded.reseed(seed + 1_000_000);
        let actions = [Down, Down, Right, Up, Left, Down];
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for action in actions {
            a.push((env.step(action), env.player()));
            b.push((fork.step(action), fork.player()));
            c.push((reseeded.step(action), reseeded.player()));
        }
        assert_eq!(a, b, "seed {seed}: the fork must see the same slips");
        assert_eq!(env.observation(), fork.observation());
        differs += usize::from(a != c);
    }
    assert!(
        differs > 0,
        "reseeding a fork must change its slips for some seeds"
    );
}

#[test]
fn reset_is_a_pure_function_of_the_seed() {
    let config = FrozenLakeConfig::default();
    let mut a = FrozenLake::new(&config).expect("defaults");
    let mut b = FrozenLake::new(&config).expect("defaults");
    let mut distinct = std::collections::HashSet::new();
    for seed in [0u64, 1, 7, 42, u64::MAX] {
        a.reset(seed);
        for action in [Down, Right, Right, Down] {
            a.step(action);
        }
        a.reset(seed);
        b.reset(seed);
        assert_eq!(a.observation(), b.observation(), "seed {seed}");
        let (sa, sb): (Vec<_>, Vec<_>) = [Right, Down, Down, Right, Up]
            .iter()
            .map(|x| (a.step(*x), b.step(*x)))
            .unzip();
        assert_eq!(sa, sb, "seed {seed}: same slips after reset");
        a.reset(seed);
        distinct.insert(a.observation());
    }
    assert!(distinct.len() > 1, "different seeds give different maps");
}

#[test]
fn action_names_parse_case_insensitively_in_gym_order() {
    let env = FrozenLake::new(&FrozenLakeConfig::default()).expect("defaults");
    assert_eq!(env.action_names(), ["Left", "Down", "Right", "Up"]);
    assert_eq!(env.parse_action("lEfT"), Some(Left));
    assert_eq!(env.parse_action(" UP "), Some(Up));
    assert_eq!(env.parse_action("Jump"), None);
    assert_eq!(env.parse_action(""), None);
}

#[test]
fn bad_configs_and_maps_are_errors_not_panics() {
    for (map, why) in [
        ("SFX/FFG", "unknown letter"),
        ("SF/FFG", "ragged rows"),
        ("FF/FG", "no start"),
        ("SS/FG", "two starts"),
        ("SH/HG", "goal unreachable"),
        ("S", "too small"),
    ] {
        assert!(FrozenLake::from_map(map, 1.0).is_err(), "{why}: {map}");
    }
    let bad = FrozenLakeConfig {
        rows: 0,
        p_frozen: 1.5,
        success_rate: -0.1,
        ..FrozenLakeConfig::default()
    };
    let err = FrozenLake::new(&bad)
        .expect_err("invalid config")
        .to_string();
    for key in [
        "frozenlake.rows",
        "frozenlake.p_frozen",
        "frozenlake.success_rate",
    ] {
        assert!(err.contains(key), "{key} missing from {err}");
    }
}

/// Independent flood fill over safe cells, to check generation without trusting its BFS.
fn reachable(env: &FrozenLake) -> bool {
    let (rows, cols) = (env.rows(), env.cols());
    let mut seen = vec![false; rows * cols];
    let mut stack = vec![env.start()];
    while let Some((r, c)) = stack.pop() {
        if r >= rows || c >= cols || env.is_hole(r, c) || seen[r * cols + c] {
            continue;
        }
        seen[r * cols + c] = true;
        if (r, c) == env.goal() {
            return true;
        }
        stack.extend([
            (r + 1, c),
            (r, c + 1),
            (r.wrapping_sub(1), c),
            (r, c.wrapping_sub(1)),
        ]);
    }
    false
}

proptest! {
    #[test]
    fn every_generated_map_has_a_reachable_goal(
        seed in any::<u64>(),
        rows in 1usize..9,
        cols in 2usize..9,
        p_frozen in 0.2f64..=1.0,
    ) {
        let config = FrozenLakeConfig { rows, cols, p_frozen, ..FrozenLakeConfig::default() };
        let mut env = FrozenLake::new(&config).expect("valid config");
        env.reset(seed);
        prop_assert_eq!((env.rows(), env.cols()), (rows, cols));
        prop_assert_ne!(env.start(), env.goal());
        prop_assert_eq!(env.player(), env.start());
        prop_assert!(!env.is_hole(env.start().0, env.start().1));
        prop_assert!(!env.is_hole(env.goal().0, env.goal().1));
        prop_assert!(reachable(&env), "seed {} gave an unreachable goal", seed);
        prop_assert!(env.distance_to_goal().is_some());
    }

    #[test]
    fn default_maps_are_reachable(seed in any::<u64>()) {
        let mut env = FrozenLake::new(&FrozenLakeConfig::default()).expect("defaults");
        env.reset(seed);
        prop_assert!(reachable(&env));
    }
}
