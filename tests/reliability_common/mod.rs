//! Helpers shared by the reliability tests: tiny training runs through the `tsr` binary and
//! readers for what a run folder holds.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn tsr() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tsr"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Overrides that make the smoke config a few seconds long (as in tests/train.rs), with PPO:
/// its critic gives every step a signal, so every step really updates the weights (GRPO skips
/// the update when a tiny model's returns are all equal, which would make weight comparisons
/// trivially true).
pub fn tiny(out: &Path) -> Vec<String> {
    vec![
        "algo.kind=\"ppo\"".into(),
        format!(
            "run.out_dir={}",
            toml::Value::String(out.display().to_string())
        ),
        "train.format_warmup_steps=3".into(),
        "train.format_warmup_batch=4".into(),
        "train.val_groups=2".into(),
        "train.val_group_size=2".into(),
        "train.val_every=0".into(),
        "algo.env_groups=2".into(),
        "algo.group_size=2".into(),
        "model.max_new_tokens=12".into(),
        "metrics.listen=\"127.0.0.1:0\"".into(),
    ]
}

/// `tsr train` on the smoke config with the tiny overrides, then `extra` overrides and `flags`.
pub fn train_cmd(out: &Path, extra: &[&str], flags: &[&str]) -> Command {
    let mut cmd = tsr();
    cmd.args(["train", "--config", "config/smoke.toml"])
        .args(flags);
    for o in tiny(out)
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
    {
        cmd.args(["-c", o]);
    }
    cmd
}

/// `tsr train --resume run` with `extra` overrides and `flags`.
pub fn resume_cmd(run: &Path, extra: &[&str], flags: &[&str]) -> Command {
    let mut cmd = tsr();
    cmd.args(["train", "--resume"]).arg(run).args(flags);
    for o in extra {
        cmd.args(["-c", o]);
    }
    cmd
}

pub fn run_ok(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run tsr");
    assert!(
        out.status.success(),
        "tsr failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Start quietly in the background (stderr kept in a file inside `out` for diagnosis).
pub fn spawn(mut cmd: Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    cmd.stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn tsr")
}

pub fn only_run(out: &Path) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "one run folder in {}", out.display());
    runs[0].clone()
}

/// The run folder under `out`, once it exists with its config.
pub fn run_folder(out: &Path) -> Option<PathBuf> {
    std::fs::read_dir(out)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("config.toml").is_file())
}

/// Parsed `metrics.jsonl` lines of kind "train" (unparsable lines are skipped, as resume does).
pub fn train_lines(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .collect()
}

pub fn train_steps(run: &Path) -> Vec<u64> {
    train_lines(run)
        .iter()
        .filter_map(|l| l["step"].as_u64())
        .collect()
}

/// Complete checkpoints (marker present), oldest first.
pub fn complete_checkpoints(run: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.join("COMPLETE").is_file())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            Some((name.strip_prefix("step-")?.parse().ok()?, p))
        })
        .collect();
    found.sort();
    found
}

pub fn checkpoint(run: &Path, step: u64) -> PathBuf {
    let dir = run.join("checkpoints").join(format!("step-{step:06}"));
    assert!(
        dir.join("COMPLETE").is_file(),
        "{} is complete",
        dir.display()
    );
    dir
}

pub fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).expect("model.safetensors")
}

pub fn train_state(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("train_state.json")).expect("train_state.json");
    serde_json::from_str(&text).expect("train_state.json is JSON")
}

/// Wait until `ready` holds or `limit` passes; true when it held.
pub fn wait_for(limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ready()
}

/// Wait for a child to exit within `limit`; kills it and panics otherwise.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tsr did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Send a signal by name (INT, TERM) with the system's `kill`.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} failed");
}
