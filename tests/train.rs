//! End-to-end training runs through the `tsr` binary, kept tiny: determinism, exact resume,
//! the actor system, and `tsr eval`.

mod reliability_common;

use std::path::{Path, PathBuf};

// The shared helpers train with PPO: its critic gives every step a signal, so the weight
// comparisons below compare weights that really changed.
use reliability_common::{checkpoint, only_run, run_ok, train_cmd, tsr, weights};

fn train(out: &Path, extra: &[&str], flags: &[&str]) -> PathBuf {
    run_ok(train_cmd(out, extra, flags));
    only_run(out)
}

/// metrics.jsonl without the fields that measure time.
fn metrics_without_timing(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
            strip_timing(&mut v);
            v
        })
        .collect()
}

/// Every step that played a second turn somewhere found that turn's prompt prefix in the prompt
/// cache; at least one step must have (the check is not vacuous).
fn assert_prompt_cache_reused(lines: &[serde_json::Value]) {
    let multi_turn: Vec<_> = lines
        .iter()
        .filter(|l| l["kind"] == "train")
        .filter(|l| l["env_turns"].as_u64() > l["train"]["episodes"].as_u64())
        .collect();
    assert!(!multi_turn.is_empty(), "no step played a second turn");
    for l in multi_turn {
        let reused = l["prompt_tokens_reused"]
            .as_u64()
            .expect("prompt_tokens_reused");
        assert!(reused > 0, "step {} reused no prompt tokens", l["step"]);
    }
}

fn strip_timing(v: &mut serde_json::Value) {
    if let Some(map) = v.as_object_mut() {
        map.retain(|k, _| !(k.ends_with("_s") || k.ends_with("_per_s") || k.starts_with("time_")));
        for child in map.values_mut() {
            strip_timing(child);
        }
    }
}

#[test]
fn deterministic_runs_are_identical_bit_for_bit() {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let ra = train(a.path(), &["train.steps=2"], &["--deterministic"]);
    let rb = train(b.path(), &["train.steps=2"], &["--deterministic"]);
    let (ma, mb) = (metrics_without_timing(&ra), metrics_without_timing(&rb));
    assert_eq!(
        ma.iter().filter(|l| l["kind"] == "train").count(),
        2,
        "one line per step"
    );
    assert_eq!(ma, mb, "same seed, same metrics");
    assert_prompt_cache_reused(&ma);
    assert!(
        ma.iter()
            .filter(|l| l["kind"] == "train")
            .all(|l| l["update"]["no_signal"] == false),
        "every step really updated the weights, so equal weights are not trivially equal"
    );
    assert_eq!(
        weights(&checkpoint(&ra, 2)),
        weights(&checkpoint(&rb, 2)),
        "same seed, same weights"
    );
}

#[test]
fn resume_continues_exactly_where_it_stopped() {
    resume_matches_an_uninterrupted_run(&[]);
}

#[test]
fn resume_replays_the_same_failed_instances() {
    let lines = resume_matches_an_uninterrupted_run(&["train.replay_groups=2"]);
    let train: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "train").collect();
    let fresh = train[0]["train"]["episodes"].as_u64().expect("episodes");
    let replayed: Vec<u64> = train
        .iter()
        .map(|l| {
            l["replay"]["groups"]
                .as_u64()
                .expect("a replay report on every step")
        })
        .collect();
    assert_eq!(replayed[0], 0, "nothing has failed before the first step");
    assert!(
        replayed[1..].iter().any(|&g| g > 0),
        "the untrained policy fails, so later steps replay: {replayed:?}"
    );
    for (l, g) in train.iter().zip(&replayed) {
        let episodes = l["train"]["episodes"].as_u64().expect("episodes");
        assert_eq!(
            episodes,
            fresh + 2 * g,
            "a replayed group adds group_size (2) episodes"
        );
        assert!(*g <= 2, "at most train.replay_groups per step");
    }
}

/// Trains 4 steps in one go and 2 + 2 with a resume in between (deterministic mode, with the
/// `extra` overrides) and checks both give the same weights and metrics; returns the
/// uninterrupted run's metrics lines (timing fields removed).
fn resume_matches_an_uninterrupted_run(extra: &[&str]) -> Vec<serde_json::Value> {
    let (a, b) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let with = |steps: &'static str| -> Vec<&str> {
        [steps, "train.checkpoint_every=2"]
            .into_iter()
            .chain(extra.iter().copied())
            .collect()
    };
    let whole = train(a.path(), &with("train.steps=4"), &["--deterministic"]);
    let half = train(b.path(), &with("train.steps=2"), &["--deterministic"]);
    let mut cmd = tsr();
    cmd.args(["train", "--deterministic", "--resume"])
        .arg(&half)
        .args(["-c", "train.steps=4"]);
    let out = cmd.output().expect("resume");
    assert!(
        out.status.success(),
        "resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        weights(&checkpoint(&whole, 4)),
        weights(&checkpoint(&half, 4)),
        "2 + 2 steps equal 4 steps"
    );
    let steps = |run: &Path| -> Vec<u64> {
        metrics_without_timing(run)
            .iter()
            .filter(|l| l["kind"] == "train")
            .filter_map(|l| l["step"].as_u64())
            .collect()
    };
    assert_eq!(
        steps(&half),
        vec![0, 1, 2, 3],
        "no step trained twice or lost"
    );
    let strip_version_free = |run: &Path| -> Vec<serde_json::Value> {
        metrics_without_timing(run)
            .into_iter()
            .filter(|l| l["kind"] == "train")
            .collect()
    };
    assert_eq!(
        strip_version_free(&whole),
        strip_version_free(&half),
        "same per-step metrics"
    );
    metrics_without_timing(&whole)
}

#[test]
fn actor_system_trains_and_eval_reads_its_checkpoint() {
    let out = tempfile::tempdir().expect("tmp");
    let run = train(
        out.path(),
        &[
            "train.steps=2",
            "actors.search_actors=3",
            "actors.env_actors=2",
        ],
        &[],
    );
    let lines = metrics_without_timing(&run);
    let train_lines: Vec<_> = lines.iter().filter(|l| l["kind"] == "train").collect();
    assert_eq!(train_lines.len(), 2);
    assert_prompt_cache_reused(&lines);
    for l in &train_lines {
        assert_eq!(
            l["train"]["episodes"], 4,
            "env_groups x group_size episodes per step"
        );
    }
    let ckpt = checkpoint(&run, 2);
    let trajectories = out.path().join("trajectories.jsonl");
    let eval = tsr()
        .args(["eval", "--checkpoint"])
        .arg(&ckpt)
        .arg("--trajectories")
        .arg(&trajectories)
        .output()
        .expect("eval");
    assert!(
        eval.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&eval.stdout).expect("eval prints JSON");
    let rate = v["validation"]["success_rate"]
        .as_f64()
        .expect("success rate");
    assert!((0.0..=1.0).contains(&rate));
    assert_eq!(
        v["validation"]["episodes"],
        2 * 2,
        "val_groups x val_group_size episodes"
    );
    // Each validation instance's success, in seed order, averages to the overall rate.
    let by_instance = v["success_by_instance"].as_array().expect("per instance");
    assert_eq!(by_instance.len(), 2, "one entry per val group");
    let seeds: Vec<u64> = by_instance
        .iter()
        .map(|i| i["seed"].as_u64().unwrap())
        .collect();
    assert!(seeds[0] < seeds[1], "{seeds:?}");
    let mean = by_instance
        .iter()
        .map(|i| i["success"].as_f64().unwrap())
        .sum::<f64>()
        / 2.0;
    assert!((mean - rate).abs() < 1e-9, "{mean} vs {rate}");
    // Every episode is written out with its turns, and their successes agree with the rate.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&trajectories)
        .expect("trajectories written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 4);
    let won = lines.iter().filter(|l| l["success"] == true).count();
    assert!((won as f64 / 4.0 - rate).abs() < 1e-9);
    assert!(
        lines
            .iter()
            .all(|l| !l["turns"].as_array().unwrap().is_empty())
    );
    assert!(
        lines
            .iter()
            .all(|l| seeds.contains(&l["seed"].as_u64().unwrap()))
    );
}

#[test]
fn resume_of_a_folder_that_is_not_a_run_is_a_clear_error() {
    let out = tempfile::tempdir().expect("tmp");
    let result = tsr()
        .args(["train", "--resume"])
        .arg(out.path())
        .output()
        .expect("run");
    assert!(!result.status.success());
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(err.contains("not a run folder"), "{err}");
}

#[test]
fn every_search_strategy_trains_inside_the_actor_system_and_is_accounted() {
    for (kind, min_candidates) in [
        ("best_of_n", 3.0),
        ("beam", 2.0),
        ("lookahead", 2.0),
        ("best_of_n_trajectory", 1.0),
    ] {
        let out = tempfile::tempdir().expect("tmp");
        let search = format!("search.kind=\"{kind}\"");
        let run = train(
            out.path(),
            &[
                "train.steps=1",
                &search,
                "search.n=3",
                "search.width=2",
                "search.branch=3",
                "search.depth=1",
            ],
            &[],
        );
        let lines = metrics_without_timing(&run);
        let line = lines
            .iter()
            .find(|l| l["kind"] == "train")
            .expect("a train line");
        let acc = &line["search"];
        assert!(
            acc["forks"].as_u64().unwrap_or(0) > 0,
            "{kind}: forks counted: {acc}"
        );
        assert!(
            acc["search_tokens"].as_u64().unwrap_or(0) > 0,
            "{kind}: search tokens counted: {acc}"
        );
        assert!(
            acc["candidates_per_turn"].as_f64().unwrap_or(0.0) >= min_candidates,
            "{kind}: {acc}"
        );
        let validation: Vec<_> = lines.iter().filter(|l| l["kind"] == "validation").collect();
        assert!(!validation.is_empty());
    }
}

#[test]
fn a_first_prompt_beyond_the_context_limit_stops_the_run_with_the_key_to_change() {
    // A 12x12 lake's first prompt alone is longer than 64 tokens: no episode could play a turn.
    let tight = [
        "frozenlake.rows=12",
        "frozenlake.cols=12",
        "model.context_limit=64",
        "train.format_warmup_steps=0",
    ];
    for flags in [&["--deterministic"][..], &[][..]] {
        let out = tempfile::tempdir().expect("tmp");
        let result = reliability_common::train_cmd(out.path(), &tight, flags)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{flags:?}: {err}");
        assert!(err.contains("model.context_limit"), "{flags:?}: {err}");
        assert!(!err.contains("panicked"), "{flags:?}: {err}");
    }
}

#[test]
fn synthetic_replies_are_never_longer_than_sampled_ones() {
    // With a byte-level vocabulary and up to 100 actions per turn a random well-formed reply
    // is far longer than model.max_new_tokens (16 in the smoke config): the format warm-up and
    // the exploration candidates must cut it as the sampler would, or the episode outgrows the
    // context limit.
    let long = ["model.tokenizer_vocab=262", "env.max_actions_per_turn=100"];
    for extra in [
        &["train.format_warmup_steps=2", "train.steps=1"][..],
        &[
            "train.format_warmup_steps=0",
            "train.steps=1",
            "search.kind=\"best_of_n\"",
            "search.n=2",
            "search.explore=4",
        ][..],
    ] {
        let out = tempfile::tempdir().expect("tmp");
        let all: Vec<&str> = long.iter().chain(extra).copied().collect();
        train(out.path(), &all, &["--deterministic"]);
    }
}
