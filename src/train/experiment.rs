//! `tsr experiment`: a grid of training runs (task x algorithm x search x seed) with the same
//! number of optimizer updates each, summarised in `results.md` (mean ± std over seeds, steps
//! to a success level, rollout tokens and wall time relative to no search) and PNG curves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::driver::{StepLine, train_loop};
use super::setup;
use crate::config::{Config, ConfigError, ConfigIssue, Issues};
use crate::plot::{RunCurve, plot_experiment};

/// The experiment file (`config/experiments/*.toml`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// Tasks, each with its base config file.
    pub tasks: BTreeMap<String, PathBuf>,
    pub algos: Vec<String>,
    pub searches: Vec<String>,
    pub seeds: Vec<u64>,
    /// Optimizer updates per run (the same for every run).
    pub steps: u64,
    /// Validation success that counts as "reached" for steps-to-level.
    pub success_level: f64,
    /// `key=value` overrides applied to every run after the base config.
    #[serde(default)]
    pub overrides: Vec<String>,
    /// Where the runs and results go.
    pub out_dir: PathBuf,
}

/// What one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub task: String,
    pub algo: String,
    pub search: String,
    pub seed: u64,
    pub run_dir: PathBuf,
    /// (step, validation success) in order.
    pub curve: Vec<(u64, f64)>,
    pub final_success: f64,
    pub best_success: f64,
    pub steps_to_level: Option<u64>,
    pub rollout_tokens: u64,
    pub wall_s: f64,
}

/// Read and check an experiment file; every problem is a [`ConfigError`] (exit 78), like a
/// run's config.
pub fn load(path: &Path) -> Result<ExperimentFile> {
    let fail = |key: &str, problem: String| ConfigError {
        source_name: path.display().to_string(),
        issues: vec![ConfigIssue {
            key: key.into(),
            problem,
        }],
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail("(file)", format!("cannot read: {e}")))?;
    let exp: ExperimentFile =
        toml::from_str(&text).map_err(|e| fail("(experiment)", e.to_string().trim().into()))?;
    let mut issues = Issues::default();
    for (key, empty) in [
        ("tasks", exp.tasks.is_empty()),
        ("algos", exp.algos.is_empty()),
        ("searches", exp.searches.is_empty()),
        ("seeds", exp.seeds.is_empty()),
    ] {
        issues.check(!empty, key, "[]", "at least one entry");
    }
    issues.range("steps", exp.steps, 1, 100_000_000);
    issues.range("success_level", exp.success_level, 0.0, 1.0);
    for (task, base) in &exp.tasks {
        issues.check(
            base.is_file(),
            &format!("tasks.{task}"),
            base,
            "an existing config file",
        );
    }
    if issues.0.is_empty() {
        Ok(exp)
    } else {
        Err(ConfigError {
            source_name: path.display().to_string(),
            issues: issues.0,
        }
        .into())
    }
}

fn config_for(
    exp: &ExperimentFile,
    base: &Path,
    algo: &str,
    search: &str,
    seed: u64,
) -> Result<Config> {
    let mut overrides = exp.overrides.clone();
    overrides.extend([
        format!("algo.kind=\"{algo}\""),
        format!("search.kind=\"{search}\""),
        format!("run.seed={seed}"),
        format!("train.steps={}", exp.steps),
        format!(
            "run.out_dir={}",
            toml::Value::String(exp.out_dir.join("runs").display().to_string())
        ),
    ]);
    Ok(Config::load(Some(base), &overrides)?)
}

/// Validation curve of a finished run, read back from its metrics.jsonl.
fn curve_of(run: &Path) -> Result<Vec<(u64, f64)>> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl"))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "validation")
        .filter_map(|v| {
            Some((
                v["step"].as_u64()?,
                v["validation"]["success_rate"].as_f64()?,
            ))
        })
        .collect())
}

/// Run one grid cell; results already on disk (`result.json` in the run's cell folder) are reused,
/// so an interrupted experiment continues where it stopped.
fn run_one(
    exp: &ExperimentFile,
    task: &str,
    base: &Path,
    algo: &str,
    search: &str,
    seed: u64,
) -> Result<RunResult> {
    let cell = exp
        .out_dir
        .join("cells")
        .join(format!("{task}-{algo}-{search}-{seed}.json"));
    if let Ok(text) = std::fs::read_to_string(&cell)
        && let Ok(done) = serde_json::from_str::<RunResult>(&text)
    {
        return Ok(done);
    }
    let config = config_for(exp, base, algo, search, seed)?;
    let started = Instant::now();
    let running = setup::into_backend(setup::fresh(config)?, false)?;
    let setup::Running {
        mut backend,
        config,
        mut run,
        state,
    } = running;
    let mut tokens = 0u64;
    let mut on_step = |l: &StepLine| tokens += l.generated_tokens as u64;
    train_loop(
        backend.as_mut(),
        &config,
        &mut run,
        state,
        &mut on_step,
        &|| false,
    )?;
    drop(backend);
    let curve = curve_of(&run.root)?;
    let result = RunResult {
        task: task.into(),
        algo: algo.into(),
        search: search.into(),
        seed,
        run_dir: run.root.clone(),
        final_success: curve.last().map_or(0.0, |c| c.1),
        best_success: curve.iter().map(|c| c.1).fold(0.0, f64::max),
        steps_to_level: curve.iter().find(|c| c.1 >= exp.success_level).map(|c| c.0),
        curve,
        rollout_tokens: tokens,
        wall_s: started.elapsed().as_secs_f64(),
    };
    std::fs::create_dir_all(cell.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(&cell, serde_json::to_string_pretty(&result)?)?;
    Ok(result)
}

/// Run the whole grid, then write `results.md`, `results.json` and the PNG learning curves
/// (`curves-{task}-{algo}.png`).
pub fn run(exp: &ExperimentFile) -> Result<Vec<RunResult>> {
    // Every cell's config is checked before the first run starts, so a bad cell late in the grid
    // fails in a second rather than after hours of runs.
    for base in exp.tasks.values() {
        for algo in &exp.algos {
            for search in &exp.searches {
                for &seed in &exp.seeds {
                    config_for(exp, base, algo, search, seed)?;
                }
            }
        }
    }
    let mut results = Vec::new();
    for (task, base) in &exp.tasks {
        for algo in &exp.algos {
            for search in &exp.searches {
                for &seed in &exp.seeds {
                    tracing::info!(task, algo, search, seed, "experiment run");
                    results.push(run_one(exp, task, base, algo, search, seed)?);
                }
            }
        }
    }
    std::fs::write(
        exp.out_dir.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    let curves: Vec<RunCurve> = results
        .iter()
        .map(|r| RunCurve {
            task: &r.task,
            algo: &r.algo,
            search: &r.search,
            curve: &r.curve,
        })
        .collect();
    let figures = plot_experiment(&exp.out_dir, &curves)?;
    let mut table = results_table(exp, &results);
    table.push_str("\n## Learning curves\n\n");
    for f in &figures {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        table.push_str(&format!("![{name}]({name})\n\n"));
    }
    std::fs::write(exp.out_dir.join("results.md"), table)?;
    Ok(results)
}

/// Mean and unbiased standard deviation over seeds; NaN for no seeds.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    (crate::algo::mean(xs), crate::algo::unbiased_std(xs))
}

/// The results table: one row per (task, algorithm, search), over seeds.
pub fn results_table(exp: &ExperimentFile, results: &[RunResult]) -> String {
    let mut out = format!(
        "# TSR experiment\n\n{} optimizer updates per run; seeds {:?}; validation success on the fixed \
         validation instances (no search at validation). \"Steps to {:.0}%\" averages over the seeds \
         that reached it (count in brackets). Tokens and wall time are relative to no search with the \
         same task and algorithm.\n\n",
        exp.steps,
        exp.seeds,
        100.0 * exp.success_level
    );
    out.push_str("| task | algo | search | final success | best success | steps to level | rollout tokens | wall time |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    let mut cells: BTreeMap<(String, String, String), Vec<&RunResult>> = BTreeMap::new();
    for r in results {
        cells
            .entry((r.task.clone(), r.algo.clone(), r.search.clone()))
            .or_default()
            .push(r);
    }
    for ((task, algo, search), runs) in &cells {
        let fin = mean_std(&runs.iter().map(|r| r.final_success).collect::<Vec<_>>());
        let best = mean_std(&runs.iter().map(|r| r.best_success).collect::<Vec<_>>());
        let reached: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.steps_to_level.map(|s| s as f64))
            .collect();
        let base = cells.get(&(task.clone(), algo.clone(), "none".to_string()));
        let rel = |f: &dyn Fn(&RunResult) -> f64| -> String {
            let Some(base) = base else {
                return "n/a".into();
            };
            let b = base.iter().map(|r| f(r)).sum::<f64>() / base.len() as f64;
            let x = runs.iter().map(|r| f(r)).sum::<f64>() / runs.len() as f64;
            if b > 0.0 {
                format!("{:.2}x", x / b)
            } else {
                "n/a".into()
            }
        };
        out.push_str(&format!(
            "| {task} | {algo} | {search} | {:.1}% ± {:.1} | {:.1}% ± {:.1} | {} | {} | {} |\n",
            100.0 * fin.0,
            100.0 * fin.1,
            100.0 * best.0,
            100.0 * best.1,
            if reached.is_empty() {
                "not reached".to_string()
            } else {
                format!(
                    "{:.0} ({}/{})",
                    mean_std(&reached).0,
                    reached.len(),
                    runs.len()
                )
            },
            rel(&|r| r.rollout_tokens as f64),
            rel(&|r| r.wall_s),
        ));
    }
    out
}
