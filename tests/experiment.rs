//! `tsr experiment` end to end on a two-run grid of the smoke config: every cell runs, and the
//! results table and the PNG learning curves are written.

use std::path::Path;
use std::process::{Command, Output};

#[test]
fn experiment_writes_table_and_png_curves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let run = run_experiment(
        dir.path(),
        "[\"none\", \"best_of_n\"]",
        "seeds = [7]\nsteps = 2\noverrides = [\"train.val_every=1\", \"train.format_warmup_steps=2\"]",
    );
    assert!(
        run.status.success(),
        "tsr experiment failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(out.join("results.md")).unwrap();
    for search in [
        "| frozenlake | grpo | none |",
        "| frozenlake | grpo | best_of_n |",
    ] {
        assert!(table.contains(search), "no row {search} in:\n{table}");
    }
    assert!(table.contains("![curves-frozenlake-grpo.png](curves-frozenlake-grpo.png)"));
    let png = std::fs::read(out.join("curves-frozenlake-grpo.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let runs = results.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        let steps: Vec<u64> = r["curve"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_u64().unwrap())
            .collect();
        assert_eq!(
            steps,
            [0, 1, 2],
            "validation before training and after each update"
        );
    }
}

#[test]
fn report_summarises_finished_cells_and_lists_the_rest_without_running() {
    let dir = tempfile::tempdir().unwrap();
    let cells = dir.path().join("exp").join("cells");
    std::fs::create_dir_all(&cells).unwrap();
    let cell = |search: &str, seed: u64, success: f64| {
        serde_json::json!({
            "task": "frozenlake", "algo": "grpo", "search": search, "seed": seed,
            "run_dir": "runs/x", "curve": [[0, 0.2], [2, success]],
            "final_success": success, "best_success": success, "steps_to_level": null,
            "rollout_tokens": 100, "wall_s": 1.0,
        })
    };
    for (search, seed, success) in [("none", 1, 0.2), ("none", 2, 0.4), ("best_of_n", 1, 0.7)] {
        std::fs::write(
            cells.join(format!("frozenlake-grpo-{search}-{seed}.json")),
            cell(search, seed, success).to_string(),
        )
        .unwrap();
    }
    // A cell file cut short (a crash while writing it) is not a finished run.
    std::fs::write(
        cells.join("frozenlake-grpo-best_of_n-2.json"),
        "{\"task\": \"froz",
    )
    .unwrap();
    let run = run_experiment_with(
        dir.path(),
        "[\"none\", \"best_of_n\"]",
        "seeds = [1, 2]\nsteps = 2",
        &["--report"],
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let table = std::fs::read_to_string(dir.path().join("exp/results.md")).unwrap();
    assert!(
        table.contains("| frozenlake | grpo | none | 2/2 | 30.0% ± 14.1 |"),
        "{table}"
    );
    assert!(
        table.contains("| frozenlake | grpo | best_of_n | 1/2 | 70.0% | 70.0% | +40.0 |"),
        "{table}"
    );
    assert!(
        table.contains("Not run yet (1 of 4 cells): frozenlake-grpo-best_of_n-2."),
        "{table}"
    );
    assert!(
        stderr.contains("frozenlake-grpo-best_of_n-2.json"),
        "the bad file is named: {stderr}"
    );
    // The smoke config validates 4 x 2 episodes: a standard error of 50 / sqrt(8) points.
    assert!(
        table.contains("Each validation point is over 8 episodes: at 50% success that alone gives a standard error of 17.7 points"),
        "{table}"
    );
    let png = std::fs::read(dir.path().join("exp/curves-frozenlake-grpo.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(!dir.path().join("exp/runs").exists(), "nothing ran");
}

#[test]
fn a_bad_cell_anywhere_in_the_grid_fails_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    // "none" is fine; the last search kind is not: nothing may run before the error.
    let run = run_experiment(
        dir.path(),
        "[\"none\", \"bogus\"]",
        "seeds = [1]\nsteps = 1",
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("search.kind"),
        "the error names the key: {stderr}"
    );
    assert!(
        !out.join("runs").exists(),
        "no run started before the check"
    );
}

/// Write a one-task (the smoke config), one-algorithm experiment file into `dir` with the given
/// searches and further keys, its output under `dir/exp`, and run `tsr experiment` on it.
fn run_experiment(dir: &Path, searches: &str, more: &str) -> Output {
    run_experiment_with(dir, searches, more, &[])
}

/// As [`run_experiment`], with further command-line arguments.
fn run_experiment_with(dir: &Path, searches: &str, more: &str, args: &[&str]) -> Output {
    let smoke = concat!(env!("CARGO_MANIFEST_DIR"), "/config/smoke.toml");
    let file = dir.join("exp.toml");
    std::fs::write(
        &file,
        format!(
            "algos = [\"grpo\"]\nsearches = {searches}\n{more}\nsuccess_level = 0.5\n\
             out_dir = {out:?}\n[tasks]\nfrozenlake = {smoke:?}\n",
            out = dir.join("exp").display().to_string(),
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_tsr"))
        .args(["experiment", "--config"])
        .arg(&file)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_malformed_experiment_file_is_a_config_error_naming_every_key() {
    let dir = tempfile::tempdir().unwrap();
    for (searches, more, keys) in [
        // Empty lists and no updates: every problem at once.
        (
            "[]",
            "seeds = []\nsteps = 0",
            &["searches", "seeds", "steps"][..],
        ),
        // A key the file does not know, or a wrong type.
        (
            "[\"none\"]",
            "seeds = [1]\nsteps = 1\nbogus = 3",
            &["bogus"][..],
        ),
        ("[\"none\"]", "seeds = \"one\"\nsteps = 1", &["seeds"][..]),
    ] {
        let run = run_experiment(dir.path(), searches, more);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(78), "{more}: {stderr}");
        for key in keys {
            assert!(stderr.contains(key), "{key} not named: {stderr}");
        }
        assert!(!dir.path().join("exp").exists(), "nothing ran");
    }
    let missing = Command::new(env!("CARGO_BIN_EXE_tsr"))
        .args(["experiment", "--config", "/nonexistent/exp.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(78));
}
