//! Level files: the example file, parsing rules, and every error naming file and line; config
//! validation of the `[sokoban]` keys; the `tsr env` commands on Sokoban.

use std::io::Write;
use std::process::Command;

use tsr::config::Config;
use tsr::env::sokoban::levels::parse_levels;
use tsr::env::sokoban::{Sokoban, SokobanConfig, solve};
use tsr::env::{Env, EnvError};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/levels/example.txt");

fn level_error(text: &str) -> (usize, String) {
    match parse_levels(text, "bad.txt") {
        Err(EnvError::LevelFile {
            file,
            line,
            problem,
        }) => {
            assert_eq!(file, "bad.txt");
            (line, problem)
        }
        other => panic!("expected a level-file error, got {other:?}"),
    }
}

#[test]
fn example_levels_load_and_are_solvable() {
    let config = SokobanConfig {
        levels: EXAMPLE.into(),
        ..SokobanConfig::default()
    };
    let mut env = Sokoban::new(&config).expect("example file loads");
    assert_eq!(env.level_count(), 5);
    for index in 0..env.level_count() as u64 {
        env.reset(index);
        let first = env.observation();
        env.reset(index + env.level_count() as u64);
        assert_eq!(
            first,
            env.observation(),
            "seed wraps around the level count"
        );
        assert!(
            solve(env.room(), 1_000_000).is_some(),
            "level {index}:\n{first}"
        );
    }
}

#[test]
fn separators_outside_cells_and_open_edges() {
    let text = "; comment\n\n  ###\n###.#\n#@$ #\n#####\n;between\n@$.\n\n\n";
    let rooms = parse_levels(text, "ok.txt").expect("parses");
    assert_eq!(rooms.len(), 2);
    // Outside cells (the leading spaces) become walls.
    let first = &rooms[0];
    assert!(first.layout().walls().contains(0));
    assert_eq!((first.layout().rows(), first.layout().cols()), (4, 5));
    // An unenclosed level gets a wall ring: "@$." becomes 3 x 5 with the player at (1, 1).
    let second = &rooms[1];
    assert_eq!((second.layout().rows(), second.layout().cols()), (3, 5));
    assert_eq!(second.coords(second.player()), (1, 1));
    assert_eq!(solve(second, 1000).map(|p| p.len()), Some(1));
}

#[test]
fn errors_name_the_line_and_the_problem() {
    let (line, problem) = level_error("; x\n#####\n#@$.#\n#####\n\n#####\n# $.#\n#####\n");
    assert_eq!(line, 6);
    assert!(problem.contains("no player"), "{problem}");

    let (line, problem) = level_error("######\n#@$.@#\n######\n");
    assert_eq!(line, 2);
    assert!(problem.contains("second player"), "{problem}");

    let (line, problem) = level_error("\n######\n#@$$.#\n######\n");
    assert_eq!(line, 2);
    assert!(problem.contains("2 boxes but 1 goals"), "{problem}");

    let (line, problem) = level_error("#####\n#@ .#\n#####\n");
    assert!(problem.contains("no boxes"), "{problem}");
    assert_eq!(line, 1);

    let (line, problem) = level_error("#####\n#@ .#\n#  $#\n#####\n");
    assert_eq!(line, 3);
    assert!(
        problem.contains("never be moved") && problem.contains("column 4"),
        "{problem}"
    );

    let (line, problem) = level_error("#####\n#@$.#\n#x  #\n#####\n");
    assert_eq!(line, 3);
    assert!(
        problem.contains("'x'") && problem.contains("column 2"),
        "{problem}"
    );

    let (line, problem) = level_error("");
    assert_eq!(line, 1);
    assert!(problem.contains("no levels"), "{problem}");
    assert!(level_error("; only comments\n\n").1.contains("no levels"));

    let (line, problem) = level_error("#####\n#@$.#\n#####\n#$.##\n#####\n");
    assert_eq!(line, 4);
    assert!(problem.contains("outside the player's area"), "{problem}");

    // A tall, wide text box is refused before a grid of its size is allocated.
    let wide = format!("; c\n{}{}\n", "#\n".repeat(2000), "#".repeat(2000));
    let (line, problem) = level_error(&wide);
    assert_eq!(line, 2);
    assert!(problem.contains("2001 lines of up to 2000"), "{problem}");
}

#[test]
fn unreadable_file_is_an_error_at_construction() {
    let config = SokobanConfig {
        levels: "/nonexistent/levels.txt".into(),
        ..SokobanConfig::default()
    };
    let err = Sokoban::new(&config).expect_err("missing file");
    assert!(matches!(err, EnvError::Io { ref file, .. } if file == "/nonexistent/levels.txt"));

    let mut bad = tempfile::NamedTempFile::new().expect("temp file");
    write!(bad, "#####\n#@$ #\n#####\n").expect("write");
    let config = SokobanConfig {
        levels: bad.path().display().to_string(),
        ..SokobanConfig::default()
    };
    let err = Sokoban::new(&config).expect_err("count mismatch");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:1: ", bad.path().display())),
        "{text}"
    );
}

#[test]
fn bad_config_values_name_their_keys() {
    let overrides = [
        "sokoban.rows=3",
        "sokoban.boxes=0",
        "sokoban.p_change_direction=1.5",
    ]
    .map(String::from);
    let err = Config::load(None, &overrides).expect_err("invalid");
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "sokoban.rows",
        "sokoban.boxes",
        "sokoban.p_change_direction",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let too_many = SokobanConfig {
        rows: 5,
        cols: 5,
        boxes: 8,
        ..SokobanConfig::default()
    };
    let err = Sokoban::new(&too_many).expect_err("8 boxes in a 3 x 3 interior");
    assert!(err.to_string().contains("sokoban.boxes"), "{err}");
    let tiny = SokobanConfig {
        rows: 4,
        cols: 4,
        ..SokobanConfig::default()
    };
    assert!(Sokoban::new(&tiny).is_err());
    assert!(Config::load(None, &[]).is_ok());
}

fn tsr(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tsr"))
        .args(args)
        .output()
        .expect("run tsr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn cli_show_and_replay() {
    let shown = tsr(&["env", "show", "--env", "sokoban", "--seed", "7"]);
    let mut env = Sokoban::new(&SokobanConfig::default()).expect("default");
    env.reset(7);
    assert_eq!(shown.trim_end(), env.observation());

    let level = format!("{EXAMPLE}:1");
    let out = tsr(&[
        "env",
        "replay",
        "--env",
        "sokoban",
        "--level",
        &level,
        "--actions",
        "Left,Up,Left,Down",
    ]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["action"], "Left");
    assert_eq!(lines[3]["reward"], 10.9);
    assert_eq!(lines[3]["success"], true);
}
