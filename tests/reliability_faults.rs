//! Injected faults: supervisors restart what died, episodes held by a dead actor are replayed,
//! and the counters prove that nothing was lost or counted twice. Non-finite updates are skipped
//! and K in a row stop the run with the last good checkpoint intact. Resume skips a partial or
//! corrupt checkpoint.

mod reliability_common;

use std::path::{Path, PathBuf};

use reliability_common::*;

/// Episodes a run has finished when the line of its last step is written: the validation
/// before training and every step's rollouts (the final validation comes after that line).
fn expected_finished(steps: u64) -> u64 {
    let val = 2 * 2; // tiny(): val_groups x val_group_size
    let per_step = 2 * 2; // tiny(): env_groups x group_size
    val + steps * per_step
}

/// Check the accounting of a finished actor run; returns its last supervision counts.
fn accounting(run: &Path, steps: u64) -> serde_json::Value {
    let lines = train_lines(run);
    assert_eq!(
        lines
            .iter()
            .map(|l| l["step"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (0..steps).collect::<Vec<_>>(),
        "every step trained once"
    );
    for l in &lines {
        assert_eq!(
            l["train"]["episodes"], 4,
            "each step trains on all its episodes"
        );
    }
    let last = lines.last().expect("a train line");
    assert_eq!(last["version"], steps, "every update applied");
    let s = last["supervision"].clone();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert_eq!(n("episodes_finished"), expected_finished(steps), "{s}");
    assert_eq!(n("episodes_abandoned"), 0, "{s}");
    assert_eq!(
        n("episodes_started"),
        n("episodes_finished") + n("episodes_replayed"),
        "every play either finished or was replayed: {s}"
    );
    assert!(
        n("episodes_replayed") >= n("search_restarts"),
        "every search panic replays its episode: {s}"
    );
    s
}

#[test]
fn one_percent_faults_reach_the_same_updates_with_matching_episode_counts() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let common = [
        "train.steps=3",
        "actors.search_actors=2",
        "actors.env_actors=2",
    ];
    run_ok(train_cmd(a.path(), &common, &[]));
    let faults = [
        "faults.env_panic_p=0.01",
        "faults.search_panic_p=0.01",
        "faults.learner_fail_p=0.01",
        "faults.inference_delay_ms=1",
        "faults.inference_jitter_ms=3",
    ];
    let args: Vec<&str> = common.iter().chain(&faults).copied().collect();
    run_ok(train_cmd(b.path(), &args, &[]));
    let clean = accounting(&only_run(a.path()), 3);
    let faulty = accounting(&only_run(b.path()), 3);
    assert_eq!(clean["episodes_finished"], faulty["episodes_finished"]);
    assert_eq!(clean["episodes_replayed"], 0, "no faults, no replays");
}

#[test]
fn frequent_faults_restart_every_role_and_still_lose_nothing() {
    let out = tempfile::tempdir().unwrap();
    run_ok(train_cmd(
        out.path(),
        &[
            "train.steps=3",
            "actors.search_actors=2",
            "actors.env_actors=2",
            "faults.env_panic_p=0.15",
            "faults.search_panic_p=0.15",
            "faults.learner_fail_p=0.5",
            "faults.episode_attempts=50",
        ],
        &[],
    ));
    let s = accounting(&only_run(out.path()), 3);
    for key in ["env_restarts", "search_restarts", "learner_retries"] {
        assert!(s[key].as_u64().unwrap() > 0, "{key} happened: {s}");
    }
}

#[test]
fn a_failed_learner_step_is_retried_on_the_same_episodes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_ok(train_cmd(
        a.path(),
        &["train.steps=2"],
        &["--deterministic"],
    ));
    let faulty = run_ok(train_cmd(
        b.path(),
        &["train.steps=2", "faults.learner_fail_p=0.6"],
        &["--deterministic"],
    ));
    let log = String::from_utf8_lossy(&faulty.stderr);
    assert!(log.contains("learner update failed, retrying"), "{log}");
    let (ra, rb) = (only_run(a.path()), only_run(b.path()));
    assert_eq!(
        weights(&checkpoint(&ra, 2)),
        weights(&checkpoint(&rb, 2)),
        "retries leave no trace in the weights"
    );
}

#[test]
fn non_finite_losses_are_skipped_and_k_in_a_row_stop_with_a_good_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let poisoned = [
        "train.steps=6",
        "train.checkpoint_every=1",
        "train.keep_last=10",
        "train.max_skipped_in_row=2",
        "faults.nan_loss_from_version=2",
    ];
    let result = train_cmd(out.path(), &poisoned, &["--deterministic"])
        .output()
        .expect("run");
    assert!(!result.status.success(), "the run must stop");
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(
        err.contains("2 updates in a row had a non-finite loss"),
        "{err}"
    );
    let run = only_run(out.path());
    let lines = train_lines(&run);
    let skipped: Vec<u64> = lines
        .iter()
        .map(|l| l["update"]["skipped"].as_u64().unwrap())
        .collect();
    assert_eq!(
        skipped,
        [0, 0, 1],
        "steps 0-1 train, step 2 is skipped and counted"
    );
    let (newest, dir) = complete_checkpoints(&run).pop().expect("a checkpoint");
    assert_eq!(newest, 3, "the step before the fatal one is checkpointed");
    assert_eq!(
        train_state(&dir)["version"],
        2,
        "weights of the last good update"
    );
    assert_eq!(
        weights(&dir),
        weights(&checkpoint(&run, 2)),
        "the skipped step left the weights untouched"
    );
    // The last good checkpoint resumes once the poison is gone.
    run_ok(resume_cmd(
        &run,
        &["faults.nan_loss_from_version=0"],
        &["--deterministic"],
    ));
    assert_eq!(train_steps(&run), (0..6).collect::<Vec<_>>());
    assert_eq!(
        train_state(&checkpoint(&run, 6))["version"],
        5,
        "one update was skipped"
    );
}

#[test]
fn a_resume_where_no_checkpoint_loads_moves_nothing_and_loses_nothing() {
    let out = tempfile::tempdir().unwrap();
    let args = ["train.steps=2", "train.checkpoint_every=1"];
    run_ok(train_cmd(out.path(), &args, &["--deterministic"]));
    let run = only_run(out.path());
    let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
    let before = complete_checkpoints(&run);
    assert!(!before.is_empty());
    // Every checkpoint fails (as under a config or device none of them fits): nothing tells a
    // damaged one from a good one, so none may be moved aside and the run must not start over.
    let saved: Vec<(PathBuf, Vec<u8>)> = before
        .iter()
        .map(|(_, dir)| {
            let state = dir.join("training_state.json");
            let bytes = std::fs::read(&state).unwrap();
            std::fs::write(&state, "{ not json").unwrap();
            (state, bytes)
        })
        .collect();
    let result = resume_cmd(&run, &[], &["--deterministic"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{err}");
    assert!(err.contains("no checkpoint of this run loads"), "{err}");
    assert_eq!(complete_checkpoints(&run), before, "nothing moved aside");
    assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics);
    // Once the files are whole again the run resumes where it was.
    for (state, bytes) in saved {
        std::fs::write(state, bytes).unwrap();
    }
    run_ok(resume_cmd(&run, &["train.steps=3"], &["--deterministic"]));
    assert_eq!(train_steps(&run), vec![0, 1, 2]);
}

#[test]
fn resume_skips_partial_and_corrupt_checkpoints() {
    let out = tempfile::tempdir().unwrap();
    let args = [
        "train.steps=5",
        "train.checkpoint_every=1",
        "train.keep_last=10",
    ];
    run_ok(train_cmd(out.path(), &args, &["--deterministic"]));
    let half = only_run(out.path());
    let reference = weights(&checkpoint(&half, 5));
    // Newest first: a partial folder, a bit flip in the weights, a garbled trainer state.
    std::fs::remove_file(checkpoint(&half, 5).join("COMPLETE")).unwrap();
    let model = checkpoint(&half, 4).join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2; // inside the tensor data: only the checksum can tell
    bytes[middle] ^= 0x10;
    std::fs::write(&model, &bytes).unwrap();
    std::fs::write(
        checkpoint(&half, 3).join("training_state.json"),
        "{ not json",
    )
    .unwrap();
    let out = run_ok(resume_cmd(&half, &[], &["--deterministic"]));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("skipping incomplete checkpoint"), "{log}");
    assert_eq!(
        log.matches("skipping a corrupt checkpoint").count(),
        2,
        "{log}"
    );
    assert_eq!(
        train_steps(&half),
        (0..5).collect::<Vec<_>>(),
        "resumed at step 2"
    );
    assert_eq!(
        weights(&checkpoint(&half, 5)),
        reference,
        "continuing from step 2 ends where the uninterrupted run did"
    );
}
