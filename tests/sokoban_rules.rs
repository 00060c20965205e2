//! Step rules and rewards on hand-built rooms, action names, and the optimal-length accessor.

use tsr::env::Env;
use tsr::env::sokoban::levels::parse_levels;
use tsr::env::sokoban::{Sokoban, SokobanAction, SokobanConfig, solve};

use SokobanAction::{Down, Left, Right, Up};

fn env_with(level: &str) -> Sokoban {
    let room = parse_levels(level, "rules")
        .expect("level parses")
        .remove(0);
    let mut env = Sokoban::new(&SokobanConfig::default()).expect("default config is valid");
    env.set_room(room);
    env
}

#[test]
fn one_box_solve_pays_10_9_and_ends() {
    let mut env = env_with("######\n#@$ .#\n######");
    let first = env.step(Right);
    assert_eq!(
        (first.reward, first.done, first.effective),
        (-0.1, false, true)
    );
    let second = env.step(Right);
    assert_eq!(second.reward, 10.9);
    assert!(second.done && second.success && second.effective);
    assert!(env.done() && env.success());
    let after = env.step(Left);
    assert_eq!(
        (after.reward, after.effective, after.done),
        (0.0, false, true)
    );
}

#[test]
fn reward_sequence_on_and_off_targets_and_no_ops() {
    // Boxes at (2, 2) and (2, 5); targets at (2, 3) and (2, 6).
    let mut env = env_with("########\n#      #\n#@$. $.#\n#      #\n########");
    let mut rewards = Vec::new();
    let mut effective = Vec::new();
    for a in [Right, Right, Right, Left, Up, Up, Down] {
        let out = env.step(a);
        assert!(!out.done);
        rewards.push(out.reward);
        effective.push(out.effective);
    }
    // on target (+1), off target (-1), box into box (no-op), step back, up, wall, down.
    assert_eq!(
        rewards,
        vec![-0.1 + 1.0, -0.1 - 1.0, -0.1, -0.1, -0.1, -0.1, -0.1]
    );
    assert_eq!(effective, vec![true, true, false, true, true, false, true]);
}

#[test]
fn solver_finds_optimal_length_on_known_rooms() {
    for (level, optimal) in [
        ("#####\n#@$.#\n#####", 1),
        ("######\n#@$ .#\n######", 2),
        // Push left, walk around (up, left), push down.
        ("######\n#    #\n# $@ #\n#.   #\n######", 4),
    ] {
        let env = env_with(level);
        assert_eq!(env.optimal_solution_len(), Some(optimal), "{level}");
        let path = solve(env.room(), 100_000).expect("solvable");
        let mut play = env.clone();
        let outcomes: Vec<_> = path.iter().map(|&a| play.step(a)).collect();
        assert!(outcomes.last().is_some_and(|o| o.success), "{level}");
        assert!(outcomes[..outcomes.len() - 1].iter().all(|o| !o.done));
    }
}

#[test]
fn unsolvable_room_has_no_solution() {
    // The box can only move along the corridor, and the target is beside it, off its line.
    let env = env_with("######\n#@$  #\n#### #\n#  . #\n######");
    assert_eq!(env.optimal_solution_len(), None);
}

#[test]
fn action_names_parse_case_insensitively() {
    let env = env_with("#####\n#@$.#\n#####");
    assert_eq!(env.action_names(), vec!["Up", "Down", "Left", "Right"]);
    for name in env.action_names() {
        let action = env
            .parse_action(&name.to_uppercase())
            .expect("upper case parses");
        assert_eq!(env.action_name(action), name);
        assert_eq!(env.parse_action(&name.to_lowercase()), Some(action));
    }
    assert_eq!(env.parse_action("jump"), None);
    assert_eq!(env.parse_action(""), None);
}
