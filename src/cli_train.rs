//! `tsr train` and `tsr eval`: the edge where configs, run folders, signals and backends meet.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use clap::Args;
use tsr::config::Config;
use tsr::progress::Progress;
use tsr::train::driver::{train_loop, validate};
use tsr::train::run_dir::RunDir;
use tsr::train::serial::SerialBackend;
use tsr::train::setup;

use crate::ConfigArgs;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Continue a run from its newest complete checkpoint (its own config.toml is used; -c
    /// overrides still apply).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "file")]
    pub resume: Option<PathBuf>,
    /// Run every actor serially: bit-for-bit reproducible, slower.
    #[arg(long)]
    pub deterministic: bool,
}

#[derive(Args)]
pub struct EvalArgs {
    /// A checkpoint folder (runs/.../checkpoints/step-N).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Also write every validation episode (seed, success, each turn's prompt, reply and reward)
    /// to this file, one JSON object per line.
    #[arg(long)]
    pub trajectories: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Set on the first SIGINT/SIGTERM: stop taking new work, checkpoint, exit. A second signal
/// exits at once.
fn install_signal_handlers() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("tsr-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    if flag.swap(true, Ordering::SeqCst) {
                        eprintln!("second signal: exiting now");
                        std::process::exit(130);
                    }
                    eprintln!("signal received: finishing the current step, writing a checkpoint (signal again to exit now)");
                }
            });
        })
        .ok();
    stop
}

/// Serve `/metrics` with every series at 0 (before a fresh run's format warm-up, so the run
/// shows up in Prometheus from its start).
fn start_metrics(c: &Config) -> Result<()> {
    if let Some(addr) = tsr::metrics::serve(&c.metrics.listen).map_err(anyhow::Error::msg)? {
        tracing::info!("serving metrics on http://{addr}/metrics");
    }
    tsr::metrics::init_series(&c.env.task, &c.search.kind);
    Ok(())
}

pub fn train(args: TrainArgs) -> Result<()> {
    // First thing: a signal during set-up (format warm-up, loading) must also end cleanly.
    let stop = install_signal_handlers();
    let setup = match &args.resume {
        Some(dir) => {
            // A mistyped folder is a command-line mistake, not a damaged run.
            if !RunDir::is_run_folder(dir) {
                return Err(crate::UsageError(format!(
                    "{} is not a run folder (no config.toml): --resume takes the folder \
                     `tsr train` printed, e.g. runs/frozenlake-ppo-best_of_n-1-<time>",
                    dir.display()
                ))
                .into());
            }
            let setup = setup::resume(dir, &args.config.overrides)?;
            start_metrics(&setup.config)?;
            setup
        }
        None => {
            let config = args.config.load()?;
            start_metrics(&config)?;
            setup::fresh(config)?
        }
    };
    eprintln!("run folder: {}", setup.run.root.display());
    let setup::Running {
        mut backend,
        config,
        mut run,
        state,
    } = setup::into_backend(setup, args.deterministic)?;
    let stopper = stop.clone();
    let m = &config.metrics;
    let mut progress = Progress::start(state.next_step, config.train.steps, m.status_interval_s);
    let result = train_loop(
        backend.as_mut(),
        &config,
        &mut run,
        state,
        &mut |line| progress.on_step(line),
        &move || stopper.load(Ordering::SeqCst),
    );
    progress.finish();
    match tsr::plot::plot_run(&run.root) {
        Ok(_) => tracing::info!("learning curves in {}", run.root.join("plots").display()),
        Err(e) => tracing::warn!("no learning curves: {e}"),
    }
    if m.linger_s > 0.0 {
        tracing::info!("serving the final metrics for {} s more", m.linger_s);
        std::thread::sleep(std::time::Duration::from_secs_f64(m.linger_s));
    }
    let final_state = result?;
    if stop.load(Ordering::SeqCst) {
        eprintln!("stopped by a signal after step {}", final_state.next_step);
    }
    eprintln!(
        "done: {} steps, best validation success {:?}, run folder {}",
        final_state.next_step,
        final_state.best_success,
        run.root.display()
    );
    Ok(())
}

pub fn eval(args: EvalArgs) -> Result<()> {
    // Absolute, so that `step-N` or `./step-N` given from inside `checkpoints/` still finds
    // the run folder two levels up.
    let ckpt = &std::fs::canonicalize(&args.checkpoint)
        .with_context(|| format!("checkpoint {}", args.checkpoint.display()))?;
    let run_config = ckpt
        .parent()
        .and_then(Path::parent)
        .filter(|r| RunDir::is_run_folder(r))
        .map(|r| r.join("config.toml"));
    // Defaults would silently evaluate the weights on another task: ask instead.
    let file = match (args.config.file.clone(), run_config) {
        (Some(file), _) => file,
        (None, Some(run_config)) => run_config,
        (None, None) => {
            return Err(crate::UsageError(format!(
                "{} is not inside a run folder (no ../../config.toml): pass the run's config \
                 with --config",
                ckpt.display()
            ))
            .into());
        }
    };
    let file = Some(file);
    let config = Config::load(file.as_deref(), &args.config.overrides)?;
    let env = setup::build_env(&config)?;
    let (policy, optimizer, state) = setup::load_checkpoint(ckpt, &config).context("tsr eval")?;
    let learner = tsr::train::learner::Learner {
        policy,
        optimizer,
        algo: config.algo.clone(),
        version: state.version,
        reference: None,
        select_half: false,
        lr_schedule: tsr::policy::LrSchedule::constant(),
    };
    let settings = setup::episode_settings(&config);
    let mut backend = SerialBackend::new(
        env,
        learner,
        settings,
        tsr::search::strategy::Strategy::Plain,
    );
    let (outcomes, episodes) = validate(&mut backend, &config)?;
    if let Some(path) = &args.trajectories {
        write_trajectories(path, &episodes)
            .with_context(|| format!("writing trajectories to {}", path.display()))?;
    }
    println!(
        "{}",
        serde_json::json!({
            "checkpoint": ckpt,
            "step": state.next_step,
            "validation": outcomes,
            "success_by_instance": success_by_instance(&episodes),
        })
    );
    Ok(())
}

/// Success rate per validation instance (environment seed), in seed order: which instances a
/// checkpoint fails, to set against each instance's ceiling (`tsr env ceiling`).
fn success_by_instance(episodes: &[tsr::search::episode::Episode]) -> Vec<serde_json::Value> {
    let mut by_seed: std::collections::BTreeMap<u64, (usize, usize)> = Default::default();
    for e in episodes {
        let entry = by_seed.entry(e.spec.env_seed).or_default();
        entry.0 += usize::from(e.success);
        entry.1 += 1;
    }
    by_seed
        .into_iter()
        .map(|(seed, (won, n))| serde_json::json!({ "seed": seed, "success": won as f64 / n as f64, "episodes": n }))
        .collect()
}

fn write_trajectories(
    path: &Path,
    episodes: &[tsr::search::episode::Episode],
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in episodes {
        let line = serde_json::json!({
            "seed": e.spec.env_seed,
            "id": e.spec.id,
            "success": e.success,
            "return": e.ret,
            "turns": e.turns,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()
}
