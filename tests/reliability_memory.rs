//! Bounded memory: with a deliberately slow learner, the actor system's queues stay at their
//! bounds and the trainer's resident memory stays flat.

mod reliability_common;

use std::time::{Duration, Instant};

use reliability_common::*;

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn a_slow_learner_keeps_queues_bounded_and_memory_flat() {
    let out = tempfile::tempdir().unwrap();
    let runs = out.path().join("runs");
    let search_actors = 3;
    let cmd = train_cmd(
        &runs,
        &[
            "train.steps=100000",
            "train.checkpoint_every=0",
            "actors.search_actors=3",
            "actors.queue_bound=4",
            "faults.learner_delay_ms=500",
        ],
        &[],
    );
    let mut child = spawn(cmd, &out.path().join("stderr.txt"));
    let training = wait_for(Duration::from_secs(60), || {
        run_folder(&runs).is_some_and(|r| !train_lines(&r).is_empty())
    });
    assert!(training, "training began");
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(12) {
        samples.push(rss_kb(child.id()).expect("the trainer is alive"));
        std::thread::sleep(Duration::from_millis(200));
    }
    signal(&child, "TERM");
    let status = wait_exit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    let run = only_run(&runs);
    let lines = train_lines(&run);
    assert!(lines.len() >= 3, "several slow updates happened");
    for l in &lines {
        let peak = l["supervision"]["inference_queue_peak"].as_u64().unwrap();
        assert!(
            peak <= search_actors,
            "at most one inference request per search actor waits: {peak}"
        );
        assert!(
            l["update"]["lag_max"].as_u64().unwrap() <= 1,
            "rollouts never run ahead of the learner by more than the policy lag"
        );
    }
    let third = samples.len() / 3;
    let (early, late) = (
        median(samples[third..2 * third].to_vec()),
        median(samples[2 * third..].to_vec()),
    );
    assert!(
        late <= early + early / 20 + 8 * 1024,
        "resident memory stays flat: {early} kB then {late} kB ({samples:?})"
    );
}
