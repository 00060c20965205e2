//! The `tsr` binary's config and env commands, run as a user would run them.

use std::io::Write;
use std::process::{Command, Output};

use tsr::config::Config;
use tsr::env::{Env, TaskEnv, TaskKind};

fn tsr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tsr"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("run the tsr binary")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("utf-8 stderr")
}

fn temp_toml(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    file
}

#[test]
fn defaults_parse_back_to_the_defaults_with_a_comment_on_every_key() {
    let out = tsr(&["config", "defaults"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let parsed: toml::Value = text.parse::<toml::Table>().expect("valid TOML").into();
    let expected = toml::Value::try_from(Config::default()).expect("defaults serialize");
    assert_eq!(parsed, expected);
    // It also loads as a config (no unknown keys, every value valid).
    let file = temp_toml(&text);
    Config::load(Some(file.path()), &[]).expect("the defaults load cleanly");

    let lines: Vec<&str> = text.lines().collect();
    let mut keys = 0;
    for (i, line) in lines.iter().enumerate() {
        let is_key = !line.starts_with('#') && !line.starts_with('[') && line.contains(" = ");
        if is_key {
            keys += 1;
            let above = if i > 0 { lines[i - 1] } else { "" };
            assert!(above.starts_with("# "), "no comment above {line:?}");
        }
    }
    let section_keys: usize = expected
        .as_table()
        .expect("table")
        .values()
        .map(|s| s.as_table().map_or(1, toml::Table::len))
        .sum();
    assert_eq!(keys, section_keys, "every key is printed once");
}

#[test]
fn config_check_reports_every_problem_with_its_key_path() {
    let file = temp_toml(
        "[env]\n\
         max_turns = 0\n\
         bogus = 1\n\
         [frozenlake]\n\
         p_frozen = \"high\"\n\
         success_rate = 1.5\n\
         rows = 0\n\
         [nosuch]\n\
         x = 1\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let out = tsr(&["config", "check", path]);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    let err = stderr(&out);
    for (key, what) in [
        ("env.max_turns", "out of range"),
        ("env.bogus", "unknown key"),
        ("frozenlake.p_frozen", "wrong type"),
        ("frozenlake.success_rate", "out of range"),
        ("frozenlake.rows", "out of range"),
        ("nosuch", "unknown section"),
    ] {
        assert!(err.contains(key), "{what} {key} not reported in:\n{err}");
    }
    assert!(err.contains(path), "the file is named:\n{err}");
}

#[test]
fn overrides_win_over_the_file() {
    let file = temp_toml("[frozenlake]\nrows = 5\ncols = 3\n");
    let path = file.path().to_str().expect("utf-8 path");
    let out = tsr(&["config", "check", path, "-c", "frozenlake.rows=6"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let resolved: toml::Table = stdout(&out).parse().expect("resolved config is TOML");
    let lake = resolved["frozenlake"]
        .as_table()
        .expect("frozenlake section");
    assert_eq!(lake["rows"].as_integer(), Some(6), "the override wins");
    assert_eq!(lake["cols"].as_integer(), Some(3), "the file still applies");
    // An override with a bad value is a config error too.
    let bad = tsr(&["config", "check", path, "-c", "frozenlake.rows=0"]);
    assert_eq!(bad.status.code(), Some(78));
    assert!(stderr(&bad).contains("frozenlake.rows"));
}

fn library_env(seed: u64) -> TaskEnv {
    let mut env = TaskEnv::new(TaskKind::FrozenLake, &Config::default()).expect("defaults");
    env.reset(seed);
    env
}

#[test]
fn env_show_prints_the_observation() {
    let out = tsr(&["env", "show", "--env", "frozenlake", "--seed", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("Coordinates: \n"), "{text}");
    assert_eq!(text.trim_end_matches('\n'), library_env(7).observation());
}

#[test]
fn unknown_env_is_a_usage_error() {
    let out = tsr(&["env", "show", "--env", "chess"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("unknown environment") && err.contains("chess"),
        "{err}"
    );
    assert!(
        err.contains("frozenlake"),
        "the known names are listed: {err}"
    );
}

#[test]
fn env_replay_prints_one_json_line_per_step() {
    let actions = ["Left", "down", "RIGHT", "Up"];
    let out = tsr(&[
        "env",
        "replay",
        "--env",
        "frozenlake",
        "--seed",
        "3",
        "--actions",
        &actions.join(","),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), actions.len());
    let mut env = library_env(3);
    for (line, name) in lines.iter().zip(actions) {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let action = env.parse_action(name).expect("valid action");
        let step = env.step(action);
        assert_eq!(v["action"], env.action_name(action));
        assert_eq!(v["reward"].as_f64(), Some(step.reward));
        assert_eq!(v["done"].as_bool(), Some(step.done));
        assert_eq!(v["success"].as_bool(), Some(step.success));
        assert_eq!(v["effective"].as_bool(), Some(step.effective));
        assert_eq!(v["observation"].as_str(), Some(env.observation().as_str()));
    }
}

#[test]
fn env_replay_with_an_unknown_action_is_a_clear_usage_error() {
    let out = tsr(&[
        "env",
        "replay",
        "--env",
        "frozenlake",
        "--seed",
        "3",
        "--actions",
        "Left,Jump",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("unknown action") && err.contains("Jump"),
        "{err}"
    );
    assert!(
        err.contains("Left, Down, Right, Up"),
        "valid names listed: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn non_finite_or_negative_rates_and_empty_batches_are_config_errors() {
    for (key, value) in [
        ("train.format_warmup_lr", "nan"),
        ("train.format_warmup_lr", "-5.0"),
        ("train.format_warmup_batch", "0"),
        // The right type but a value the key cannot hold: named, not "(config)".
        ("run.seed", "-1"),
        ("algo.env_groups", "-3"),
        // Only one update overlaps the next step's rollouts: deeper lags are not implemented.
        ("train.policy_lag", "2"),
    ] {
        let set = format!("{key}={value}");
        let file = temp_toml("");
        let path = file.path().to_str().expect("utf-8 path");
        let out = tsr(&["config", "check", path, "-c", &set]);
        assert_eq!(out.status.code(), Some(78), "{set}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{set}: {}", stderr(&out));
    }
}

#[test]
fn search_settings_that_cannot_work_are_config_errors_naming_the_key() {
    for (sets, key) in [
        (
            &["search.kind=\"beam\"", "search.width=0"][..],
            "search.width",
        ),
        (
            &["search.kind=\"beam\"", "search.width=4", "search.branch=2"][..],
            "search.branch",
        ),
        (
            &[
                "search.kind=\"lookahead\"",
                "env.max_turns=5",
                "search.depth=5",
            ][..],
            "search.depth",
        ),
        (&["search.scorer=\"bogus\""][..], "search.scorer"),
        (
            &[
                "search.kind=\"lookahead\"",
                "search.stochastic=\"independent\"",
            ][..],
            "search.stochastic",
        ),
        (
            &["search.kind=\"best_of_n_trajectory\"", "search.keep=2"][..],
            "search.keep",
        ),
    ] {
        let file = temp_toml("");
        let path = file.path().to_str().expect("utf-8 path");
        let mut args = vec!["config", "check", path];
        for set in sets {
            args.extend(["-c", set]);
        }
        let out = tsr(&args);
        assert_eq!(out.status.code(), Some(78), "{sets:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{sets:?}: {}", stderr(&out));
    }
    // The same settings one step inside the limits pass.
    let file = temp_toml("");
    let path = file.path().to_str().expect("utf-8 path");
    let ok = tsr(&[
        "config",
        "check",
        path,
        "-c",
        "search.kind=\"lookahead\"",
        "-c",
        "env.max_turns=5",
        "-c",
        "search.depth=4",
        "-c",
        "search.width=1",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

#[test]
fn unknown_model_bench_choices_are_usage_errors() {
    for args in [
        ["bench", "model", "--preset", "huge"],
        ["bench", "model", "--only", "everything"],
    ] {
        let out = tsr(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(args[3]), "{}", stderr(&out));
    }
}

#[test]
fn numeric_cli_arguments_out_of_range_are_usage_errors() {
    for seconds in ["-1", "nan", "inf", "0"] {
        let out = tsr(&["env", "bench", "--env", "frozenlake", "--seconds", seconds]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--seconds {seconds}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let out = tsr(&[
        "env",
        "ceiling",
        "--env",
        "frozenlake",
        "--seed",
        "18446744073709551615",
        "--count",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn resume_refuses_a_second_config_and_eval_needs_the_runs_config() {
    let file = temp_toml("[env]\ntask = \"frozenlake\"\n");
    let path = file.path().to_str().expect("utf-8 path");
    let out = tsr(&["train", "--resume", "/nonexistent-run", "--config", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // A folder that is not a run folder: a usage error naming it, before anything is set up.
    let empty = tempfile::tempdir().expect("tmp");
    let out = tsr(&["train", "--resume", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a run folder"),
        "{}",
        stderr(&out)
    );
    // A checkpoint folder outside any run folder: without --config the weights would be
    // evaluated under the defaults, maybe on another task.
    let loose = tempfile::tempdir().expect("tmp");
    let ckpt = loose.path().join("step-1");
    std::fs::create_dir(&ckpt).expect("mkdir");
    let out = tsr(&["eval", "--checkpoint", ckpt.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--config"), "{}", stderr(&out));
}

#[test]
fn an_exact_value_table_too_large_to_compute_is_refused_up_front() {
    // Each value is in range; together they would ask for hundreds of gigabytes.
    let big = [
        "-c",
        "env.max_turns=1000",
        "-c",
        "env.max_actions_per_episode=10000",
        "-c",
        "frozenlake.rows=64",
        "-c",
        "frozenlake.cols=64",
    ];
    let file = temp_toml("[env]\ntask = \"frozenlake\"\n[search]\nscorer = \"optimal\"\n");
    let path = file.path().to_str().expect("utf-8 path");
    let mut args = vec!["config", "check", path];
    args.extend(big);
    let out = tsr(&args);
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("search.scorer"), "{}", stderr(&out));
    let mut args = vec!["env", "ceiling", "--env", "frozenlake"];
    args.extend(big);
    let out = tsr(&args);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The shipped FrozenLake recipe (exact scorer) is well inside the limits.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/frozenlake.toml");
    let out = tsr(&["config", "check", shipped]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn files_a_config_names_that_cannot_be_used_are_config_errors() {
    let out = tempfile::tempdir().expect("tmp");
    let runs = format!("run.out_dir={:?}", out.path().display().to_string());
    for (set, key) in [
        (
            [
                "env.task=\"sokoban\"",
                "sokoban.levels=\"/nonexistent/levels.txt\"",
            ],
            "sokoban",
        ),
        (
            ["env.task=\"frozenlake\"", "model.path=\"/\""],
            "model.path",
        ),
    ] {
        let out = tsr(&[
            "train",
            "-c",
            set[0],
            "-c",
            set[1],
            "-c",
            &runs,
            "-c",
            "train.steps=1",
        ]);
        assert_eq!(out.status.code(), Some(78), "{set:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{set:?}: {}", stderr(&out));
    }
}
