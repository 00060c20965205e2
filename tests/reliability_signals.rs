//! Signals and kills: SIGTERM/SIGINT at any moment give a checkpoint and a clean exit within a
//! bounded time, a second signal exits at once, and a trainer killed with SIGKILL at random
//! moments always resumes, never training a step twice.

mod reliability_common;

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reliability_common::*;

/// Generous bound for one step plus a checkpoint on a loaded 2-core machine.
const STOP_BOUND: Duration = Duration::from_secs(60);

#[test]
fn sigterm_checkpoints_every_trained_step_and_exits_cleanly() {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("stderr.txt");
    let cmd = train_cmd(
        &out.path().join("runs"),
        &["train.steps=1000", "train.checkpoint_every=0"],
        &["--deterministic"],
    );
    let mut child = spawn(cmd, &log);
    let runs = out.path().join("runs");
    let started = wait_for(STOP_BOUND, || {
        run_folder(&runs).is_some_and(|r| !train_lines(&r).is_empty())
    });
    assert!(started, "training began");
    signal(&child, "TERM");
    let status = wait_exit(&mut child, STOP_BOUND);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "clean exit: {status:?} {err}");
    assert!(err.contains("stopped by a signal"), "{err}");
    let run = only_run(&runs);
    let (step, dir) = complete_checkpoints(&run)
        .pop()
        .expect("a checkpoint on exit");
    assert_eq!(
        step,
        train_lines(&run).len() as u64,
        "every logged step is in the checkpoint"
    );
    assert_eq!(train_state(&dir)["next_step"], step);
}

#[test]
fn a_signal_during_set_up_exits_cleanly_and_the_run_starts_over_on_resume() {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("stderr.txt");
    let runs = out.path().join("runs");
    let mut child = spawn(
        train_cmd(&runs, &["train.steps=2"], &["--deterministic"]),
        &log,
    );
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, "INT");
    let status = wait_exit(&mut child, STOP_BOUND);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "clean exit: {status:?} {err}");
    if let Some(run) = run_folder(&runs) {
        assert!(train_lines(&run).is_empty(), "no step after the signal");
        run_ok(resume_cmd(&run, &[], &["--deterministic"]));
        assert_eq!(train_steps(&run), [0, 1]);
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("stderr.txt");
    let runs = out.path().join("runs");
    // A slow learner keeps the first signal's orderly stop busy for seconds.
    let cmd = train_cmd(
        &runs,
        &["train.steps=1000", "faults.learner_delay_ms=3000"],
        &["--deterministic"],
    );
    let mut child = spawn(cmd, &log);
    assert!(wait_for(STOP_BOUND, || run_folder(&runs).is_some_and(
        |r| r.join("metrics.jsonl").is_file()
            && !std::fs::read_to_string(r.join("metrics.jsonl"))
                .unwrap_or_default()
                .is_empty()
    )));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let status = wait_exit(&mut child, Duration::from_secs(2));
    assert_eq!(status.code(), Some(130), "{status:?}");
}

#[test]
fn sigkill_at_random_moments_always_resumes_and_never_trains_a_step_twice() {
    const STEPS: u64 = 20;
    const KILLS: usize = 10;
    let out = tempfile::tempdir().unwrap();
    let runs = out.path().join("runs");
    let reference = tempfile::tempdir().unwrap();
    // Each update is paced (a benign learner delay) so that on an idle machine the run cannot
    // outpace the ten kills and finish before they are done.
    let args = [
        "train.steps=20",
        "train.checkpoint_every=1",
        "train.keep_last=2",
        "faults.learner_delay_ms=250",
    ];
    // The uninterrupted reference runs alongside the kills.
    let mut reference_run = spawn(
        train_cmd(reference.path(), &args, &["--deterministic"]),
        &out.path().join("reference.txt"),
    );
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut durable = 0u64;
    for kill in 0..KILLS {
        let run = run_folder(&runs);
        let cmd = match &run {
            Some(r) => resume_cmd(r, &[], &["--deterministic"]),
            None => train_cmd(&runs, &args, &["--deterministic"]),
        };
        let log = out.path().join(format!("stderr-{kill}.txt"));
        let mut child = spawn(cmd, &log);
        if kill % 4 == 3 {
            // A random moment of start-up: loading, truncating metrics, validating.
            std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        } else {
            // A random moment once the run has made durable progress: mid-step, mid-write,
            // mid-checkpoint.
            let progressed = wait_for(STOP_BOUND, || {
                run_folder(&runs)
                    .is_some_and(|r| complete_checkpoints(&r).last().map_or(0, |c| c.0) > durable)
            });
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                progressed,
                "round {kill}: the run continued past step {durable}: {err}"
            );
            std::thread::sleep(Duration::from_millis(rng.random_range(0..500)));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        if let Some(r) = run_folder(&runs) {
            let now = complete_checkpoints(&r).last().map_or(0, |c| c.0);
            assert!(now >= durable, "a kill never loses a complete checkpoint");
            durable = now;
        }
    }
    assert!(durable < STEPS, "the kills interrupted the run");
    let run = run_folder(&runs).expect("the run folder");
    run_ok(resume_cmd(&run, &[], &["--deterministic"]));
    assert!(reference_run.wait().expect("reference run").success());
    assert_eq!(
        train_steps(&run),
        (0..STEPS).collect::<Vec<_>>(),
        "each step logged once, in order, after all the resumes"
    );
    assert_eq!(
        weights(&checkpoint(&run, STEPS)),
        weights(&checkpoint(&only_run(reference.path()), STEPS)),
        "ten kills and resumes end exactly where an uninterrupted run does"
    );
}
