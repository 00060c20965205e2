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

/// Where a grid cell's result is kept once its run has finished.
fn cell_path(exp: &ExperimentFile, task: &str, algo: &str, search: &str, seed: u64) -> PathBuf {
    exp.out_dir
        .join("cells")
        .join(format!("{task}-{algo}-{search}-{seed}.json"))
}

/// A finished cell's result, if its file exists and reads back. An unreadable file is reported
/// and treated as not run: the cell runs again (and its file is rewritten) rather than stopping
/// the grid or entering the table with made-up figures.
fn finished(cell: &Path) -> Option<RunResult> {
    let text = std::fs::read_to_string(cell).ok()?;
    match serde_json::from_str::<RunResult>(&text) {
        Ok(done) => Some(done),
        Err(e) => {
            tracing::warn!(cell = %cell.display(), error = %e, "unreadable cell result: not counted as run");
            None
        }
    }
}

/// Run one grid cell; a result already on disk (`cells/{task}-{algo}-{search}-{seed}.json`) is
/// reused, so an interrupted experiment continues where it stopped.
fn run_one(
    exp: &ExperimentFile,
    task: &str,
    base: &Path,
    algo: &str,
    search: &str,
    seed: u64,
) -> Result<RunResult> {
    let cell = cell_path(exp, task, algo, search, seed);
    if let Some(done) = finished(&cell) {
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

/// One grid cell: task, its base config, algorithm, search kind, seed.
type Cell<'a> = (&'a str, &'a Path, &'a str, &'a str, u64);

/// Every cell of the grid in the experiment file's order (tasks by name).
fn cells(exp: &ExperimentFile) -> Vec<Cell<'_>> {
    let mut cells = Vec::new();
    for (task, base) in &exp.tasks {
        for algo in &exp.algos {
            for search in &exp.searches {
                for &seed in &exp.seeds {
                    cells.push((
                        task.as_str(),
                        base.as_path(),
                        algo.as_str(),
                        search.as_str(),
                        seed,
                    ));
                }
            }
        }
    }
    cells
}

/// Run the whole grid (skipping finished cells), then write `results.md`, `results.json` and
/// the PNG learning curves.
pub fn run(exp: &ExperimentFile) -> Result<Vec<RunResult>> {
    // Every cell's config is checked before the first run starts, so a bad cell late in the grid
    // fails in a second rather than after hours of runs.
    for (_, base, algo, search, seed) in cells(exp) {
        config_for(exp, base, algo, search, seed)?;
    }
    let mut results = Vec::new();
    for (task, base, algo, search, seed) in cells(exp) {
        tracing::info!(task, algo, search, seed, "experiment run");
        results.push(run_one(exp, task, base, algo, search, seed)?);
    }
    write_summary(exp, &results, &[])?;
    Ok(results)
}

/// Summarise the cells that have finished, without running any (`tsr experiment --report`):
/// a grid that runs over several sittings can be looked at between them. Returns the finished
/// results and the names of the cells not run yet, which `results.md` lists too.
pub fn report(exp: &ExperimentFile) -> Result<(Vec<RunResult>, Vec<String>)> {
    let (mut results, mut missing) = (Vec::new(), Vec::new());
    for (task, _, algo, search, seed) in cells(exp) {
        match finished(&cell_path(exp, task, algo, search, seed)) {
            Some(done) => results.push(done),
            None => missing.push(format!("{task}-{algo}-{search}-{seed}")),
        }
    }
    std::fs::create_dir_all(&exp.out_dir)?;
    write_summary(exp, &results, &missing)?;
    Ok((results, missing))
}

/// Write `results.md`, `results.json` and the PNG learning curves (`curves-{task}-{algo}.png`)
/// for `results`; `missing` names the grid's cells not run yet.
fn write_summary(exp: &ExperimentFile, results: &[RunResult], missing: &[String]) -> Result<()> {
    std::fs::write(
        exp.out_dir.join("results.json"),
        serde_json::to_string_pretty(results)?,
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
    let mut table = results_table(exp, results);
    if let Some(episodes) = validation_episodes(exp) {
        table.push_str(&format!(
            "\nEach validation point is over {episodes} episodes: at 50% success that alone gives a \
             standard error of {:.1} points, so spreads over seeds below that are not resolved.\n",
            50.0 / (episodes as f64).sqrt()
        ));
    }
    if !missing.is_empty() {
        table.push_str(&format!(
            "\nNot run yet ({} of {} cells): {}.\n",
            missing.len(),
            missing.len() + results.len(),
            missing.join(", ")
        ));
    }
    table.push_str("\n## Learning curves\n\n");
    for f in &figures {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        table.push_str(&format!("![{name}]({name})\n\n"));
    }
    std::fs::write(exp.out_dir.join("results.md"), table)?;
    Ok(())
}

/// Validation episodes per point of every run's curve (the first cell's config; all cells share
/// the overrides that set it). None when that config does not load: the note is then left out.
fn validation_episodes(exp: &ExperimentFile) -> Option<usize> {
    let (_, base) = exp.tasks.iter().next()?;
    let config = config_for(
        exp,
        base,
        exp.algos.first()?,
        exp.searches.first()?,
        *exp.seeds.first()?,
    )
    .ok()?;
    Some(config.train.val_groups * config.train.val_group_size)
}

/// Mean and unbiased standard deviation over seeds; NaN for no seeds.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    (crate::algo::mean(xs), crate::algo::unbiased_std(xs))
}

/// "mean% ± std" over seeds; a single seed has no spread to show.
fn percent(xs: &[f64]) -> String {
    let (mean, std) = mean_std(xs);
    if xs.len() < 2 {
        format!("{:.1}%", 100.0 * mean)
    } else {
        format!("{:.1}% ± {:.1}", 100.0 * mean, 100.0 * std)
    }
}

/// The results table: one row per (task, algorithm, search) that has finished runs, in the
/// experiment file's order, over its seeds. "vs none" is the difference of mean final success
/// to plain sampling's in points: what the TSR target is stated in.
pub fn results_table(exp: &ExperimentFile, results: &[RunResult]) -> String {
    let mut out = format!(
        "# TSR experiment\n\n{} optimizer updates per run; seeds {:?}; validation success on the fixed \
         validation instances (no search at validation). \"Vs none\" is the mean final success minus \
         plain sampling's, in points. \"Steps to {:.0}%\" averages over the seeds \
         that reached it (count in brackets). Tokens and wall time are relative to no search with the \
         same task and algorithm.\n\n",
        exp.steps,
        exp.seeds,
        100.0 * exp.success_level
    );
    out.push_str("| task | algo | search | seeds | final success | best success | vs none | steps to level | rollout tokens | wall time |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    let runs_of = |task: &str, algo: &str, search: &str| -> Vec<&RunResult> {
        results
            .iter()
            .filter(|r| r.task == task && r.algo == algo && r.search == search)
            .collect()
    };
    let mean_of = |runs: &[&RunResult], f: &dyn Fn(&RunResult) -> f64| {
        runs.iter().map(|r| f(r)).sum::<f64>() / runs.len() as f64
    };
    for task in exp.tasks.keys() {
        for algo in &exp.algos {
            let base = runs_of(task, algo, "none");
            for search in &exp.searches {
                let runs = runs_of(task, algo, search);
                if runs.is_empty() {
                    continue;
                }
                let finals: Vec<f64> = runs.iter().map(|r| r.final_success).collect();
                let bests: Vec<f64> = runs.iter().map(|r| r.best_success).collect();
                let reached: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.steps_to_level.map(|s| s as f64))
                    .collect();
                let rel = |f: &dyn Fn(&RunResult) -> f64| -> String {
                    let b = if base.is_empty() {
                        0.0
                    } else {
                        mean_of(&base, f)
                    };
                    if b > 0.0 {
                        format!("{:.2}x", mean_of(&runs, f) / b)
                    } else {
                        "n/a".into()
                    }
                };
                let versus = if search == "none" || base.is_empty() {
                    "".to_string()
                } else {
                    let diff =
                        mean_of(&runs, &|r| r.final_success) - mean_of(&base, &|r| r.final_success);
                    format!("{:+.1}", 100.0 * diff)
                };
                let to_level = if reached.is_empty() {
                    "not reached".to_string()
                } else {
                    let (mean, _) = mean_std(&reached);
                    format!("{mean:.0} ({}/{})", reached.len(), runs.len())
                };
                out.push_str(&format!(
                    "| {task} | {algo} | {search} | {}/{} | {} | {} | {versus} | {to_level} | {} | {} |\n",
                    runs.len(),
                    exp.seeds.len(),
                    percent(&finals),
                    percent(&bests),
                    rel(&|r| r.rollout_tokens as f64),
                    rel(&|r| r.wall_s),
                ));
            }
        }
    }
    out
}
