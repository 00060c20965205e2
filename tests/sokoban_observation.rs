//! Golden observations: rooms built cell by cell from level text, rendered and compared with the
//! exact strings (the first one is the spec's own example).

use tsr::env::Env;
use tsr::env::sokoban::levels::parse_levels;
use tsr::env::sokoban::{Sokoban, SokobanAction, SokobanConfig};

fn env_with(level: &str) -> Sokoban {
    let room = parse_levels(level, "golden")
        .expect("golden level parses")
        .remove(0);
    let mut env = Sokoban::new(&SokobanConfig::default()).expect("default config is valid");
    env.set_room(room);
    env
}

#[test]
fn spec_example_renders_exactly() {
    let env = env_with("######\n#  . #\n#  $ #\n#  @ #\n#    #\n######\n");
    let expected = "Coordinates: \n\
Board size: 6 rows x 6 cols (zero-indexed).\n\
Targets: (1, 3)\n\
Boxes: (2, 3)\n\
Player: (3, 3)\n\
Grid Map: \n\
######\n\
#__O_#\n\
#__X_#\n\
#__P_#\n\
#____#\n\
######";
    assert_eq!(env.observation(), expected);
}

#[test]
fn box_on_target_and_player_on_target_symbols_and_lines() {
    let env = env_with("######\n#+$  #\n# *. #\n#  $ #\n######");
    let expected = "Coordinates: \n\
Board size: 5 rows x 6 cols (zero-indexed).\n\
Targets: (1, 1), (2, 2), (2, 3)\n\
Boxes: (1, 2), (3, 3)\n\
Boxes on target: (2, 2)\n\
Player on target: (1, 1)\n\
Grid Map: \n\
######\n\
#SX__#\n\
#_√O_#\n\
#__X_#\n\
######";
    assert_eq!(env.observation(), expected);
}

#[test]
fn empty_lines_are_left_out_after_solving() {
    // Solving leaves no box off target: the "Boxes" line disappears, "Boxes on target" appears.
    let mut env = env_with("#####\n#@$.#\n#####");
    let out = env.step(SokobanAction::Right);
    assert!(out.done && out.success);
    let expected = "Coordinates: \n\
Board size: 3 rows x 5 cols (zero-indexed).\n\
Targets: (1, 3)\n\
Boxes on target: (1, 3)\n\
Player: (1, 2)\n\
Grid Map: \n\
#####\n\
#_P√#\n\
#####";
    assert_eq!(env.observation(), expected);
}

#[test]
fn two_digit_coordinates() {
    let mut level = String::from("############\n");
    level.push_str("#@        .#\n");
    for _ in 0..8 {
        level.push_str("#          #\n");
    }
    level.push_str("#    $     #\n############\n");
    let env = env_with(&level);
    let obs = env.observation();
    assert!(
        obs.contains("Board size: 12 rows x 12 cols (zero-indexed).\n"),
        "{obs}"
    );
    assert!(
        obs.contains("Targets: (1, 10)\nBoxes: (10, 5)\nPlayer: (1, 1)\n"),
        "{obs}"
    );
}

/// The renderer patches a cached grid; this rebuilds every cell from the room's parts instead
/// and checks both agree on random rooms and random play.
mod against_cell_by_cell {
    use proptest::prelude::*;
    use tsr::env::Env;
    use tsr::env::sokoban::{Room, Sokoban, SokobanAction, SokobanConfig};

    fn naive_grid(room: &Room) -> String {
        let layout = room.layout();
        let cols = layout.cols();
        let rows: Vec<String> = (0..layout.rows())
            .map(|r| {
                (0..cols)
                    .map(|c| {
                        let cell = r * cols + c;
                        let target = layout.targets().contains(cell);
                        if layout.walls().contains(cell) {
                            "#"
                        } else if room.boxes().contains(cell) {
                            if target { "√" } else { "X" }
                        } else if room.player() == cell {
                            if target { "S" } else { "P" }
                        } else if target {
                            "O"
                        } else {
                            "_"
                        }
                    })
                    .collect()
            })
            .collect();
        rows.join("\n")
    }

    proptest! {
        #[test]
        fn grid_matches(seed in any::<u64>(), boxes in 1usize..4, actions in prop::collection::vec(0usize..4, 0..40)) {
            let config = SokobanConfig { rows: 8, cols: 7, boxes, ..SokobanConfig::default() };
            let mut env = Sokoban::new(&config).expect("valid");
            env.reset(seed);
            for a in actions {
                env.step(SokobanAction::ALL[a]);
                let obs = env.observation();
                let grid = obs.split_once("Grid Map: \n").expect("grid marker").1;
                prop_assert_eq!(grid, naive_grid(env.room()));
            }
        }
    }
}
