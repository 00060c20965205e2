//! The run folder: `runs/{task}-{algo}-{search}-{seed}-{time}/` holding the resolved config,
//! `metrics.jsonl` (a line per step), readable sample trajectories and checkpoints.
//!
//! A checkpoint folder is complete only when its marker file, written last, exists; resume takes
//! the newest complete one and skips partial ones with a warning.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::search::Episode;

/// Written last into a checkpoint folder; its presence means the folder is complete.
pub const COMPLETE_MARKER: &str = "COMPLETE";

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An open run folder. Appends are flushed line by line so a crash loses at most the line being
/// written.
#[derive(Debug)]
pub struct RunDir {
    pub root: PathBuf,
    metrics: File,
}

impl RunDir {
    /// Create a new run folder under `out_dir` and write the resolved config into it.
    pub fn create(out_dir: &Path, name: &str, config_toml: &str) -> Result<RunDir, RunDirError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut root = out_dir.join(format!("{name}-{stamp}"));
        let mut k = 1;
        while root.exists() {
            root = out_dir.join(format!("{name}-{stamp}-{k}"));
            k += 1;
        }
        fs::create_dir_all(root.join("samples")).map_err(io(&root))?;
        fs::create_dir_all(root.join("checkpoints")).map_err(io(&root))?;
        let cfg = root.join("config.toml");
        fs::write(&cfg, config_toml).map_err(io(&cfg))?;
        RunDir::open(&root)
    }

    /// Whether `root` is a run folder: one that holds the run's resolved `config.toml`.
    pub fn is_run_folder(root: &Path) -> bool {
        root.join("config.toml").is_file()
    }

    /// Open an existing run folder for appending (resume).
    pub fn open(root: &Path) -> Result<RunDir, RunDirError> {
        if !Self::is_run_folder(root) {
            return Err(RunDirError::Invalid(format!(
                "{} is not a run folder (no config.toml)",
                root.display()
            )));
        }
        let path = root.join("metrics.jsonl");
        let metrics = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(RunDir {
            root: root.to_owned(),
            metrics,
        })
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// Append one JSON line to `metrics.jsonl`.
    pub fn log_metrics(&mut self, line: &impl Serialize) -> Result<(), RunDirError> {
        let path = self.root.join("metrics.jsonl");
        let text = serde_json::to_string(line).map_err(|e| RunDirError::Invalid(e.to_string()))?;
        writeln!(self.metrics, "{text}")
            .and_then(|_| self.metrics.flush())
            .map_err(io(&path))
    }

    /// Keep only what a checkpoint taken before step `next_step` had seen: training lines of
    /// earlier steps and validation lines up to `next_step` (a resumed run redoes the rest).
    pub fn truncate_metrics_for_resume(&mut self, next_step: u64) -> Result<(), RunDirError> {
        let path = self.root.join("metrics.jsonl");
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let kept: String = text
            .lines()
            .filter(|l| {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                    return false;
                };
                let validation = v.get("kind").and_then(|k| k.as_str()) == Some("validation");
                // A run restarted from nothing (next_step 0) keeps nothing: it validates again.
                v.get("step").and_then(|s| s.as_u64()).is_some_and(|s| {
                    s < next_step || (validation && s <= next_step && next_step > 0)
                })
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let tmp = self.root.join("metrics.jsonl.tmp");
        fs::write(&tmp, kept).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        self.metrics = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(())
    }

    /// Write a few episodes of a step as readable text.
    pub fn write_samples(&self, step: u64, episodes: &[Episode]) -> Result<(), RunDirError> {
        let path = self
            .root
            .join("samples")
            .join(format!("step-{step:06}.txt"));
        let mut out = String::new();
        for e in episodes {
            out.push_str(&format!(
                "=== episode {} group {} seed {} return {:.2} success {}\n",
                e.spec.id, e.spec.group, e.spec.env_seed, e.ret, e.success
            ));
            for (i, t) in e.turns.iter().enumerate() {
                out.push_str(&format!(
                    "--- turn {} (policy v{})\n{}\n>>> {}\nactions {:?} reward {:.2} penalty {:.2}\n",
                    i + 1,
                    t.policy_version,
                    t.user,
                    t.reply,
                    t.actions,
                    t.reward,
                    t.penalty
                ));
            }
        }
        fs::write(&path, out).map_err(io(&path))
    }

    /// Folder for the checkpoint of `step` (not yet complete).
    pub fn checkpoint_dir(&self, step: u64) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("step-{step:06}"))
    }

    /// Mark a checkpoint complete (write its marker last, then sync).
    pub fn mark_complete(dir: &Path) -> Result<(), RunDirError> {
        let marker = dir.join(COMPLETE_MARKER);
        let f = File::create(&marker).map_err(io(&marker))?;
        f.sync_all().map_err(io(&marker))
    }

    /// Complete checkpoints, oldest first, with their steps; partial ones are reported.
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let mut found = Vec::new();
        let Ok(entries) = fs::read_dir(self.root.join("checkpoints")) else {
            return found;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(step) = name
                .strip_prefix("step-")
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if path.join(COMPLETE_MARKER).is_file() {
                found.push((step, path));
            } else {
                tracing::warn!(checkpoint = %path.display(), "skipping incomplete checkpoint");
            }
        }
        found.sort();
        found
    }

    /// Keep the newest `keep_last` complete checkpoints plus `best` (if any); delete the rest and
    /// any incomplete folder older than the newest complete one.
    pub fn prune_checkpoints(
        &self,
        keep_last: usize,
        best: Option<u64>,
    ) -> Result<(), RunDirError> {
        let all = self.checkpoints();
        let cut = all.len().saturating_sub(keep_last);
        for (step, path) in &all[..cut] {
            if Some(*step) != best {
                fs::remove_dir_all(path).map_err(io(path))?;
            }
        }
        Ok(())
    }
}
