//! The `tsr` command line. Exit codes: 0 ok, 1 runtime error, 2 usage, 78 bad config.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tsr::config::{Config, ConfigError};

mod cli_env;
mod cli_model;
mod cli_train;

#[derive(Parser)]
#[command(
    name = "tsr",
    version,
    about = "Trajectory-Search Rollouts: RL for multi-turn LLM agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every config-reading command takes.
#[derive(Args, Clone, Debug, Default)]
pub struct ConfigArgs {
    /// TOML config file (defaults < file < -c overrides).
    #[arg(long = "config", short = 'f')]
    pub file: Option<PathBuf>,
    /// Override one key: -c train.lr=3e-4 (value parsed as TOML, else taken as a string).
    #[arg(short = 'c', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl ConfigArgs {
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.file.as_deref(), &self.overrides)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Print or check configurations.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Train a policy (the main job).
    Train(cli_train::TrainArgs),
    /// Run a grid of training runs and summarise them in results.md.
    Experiment {
        /// The experiment file (e.g. config/experiments/tsr.toml).
        #[arg(long = "config", short = 'f')]
        file: std::path::PathBuf,
        /// Run nothing: summarise the cells that have finished into results.md (and list the
        /// ones not run yet), e.g. between the sittings of a long grid.
        #[arg(long)]
        report: bool,
    },
    /// Evaluate a checkpoint on the validation instances (no search).
    Eval(cli_train::EvalArgs),
    /// Write PNG learning curves (success, return, losses, throughput) of a run into RUN_DIR/plots.
    Plot {
        /// A run folder (runs/...) holding metrics.jsonl.
        run_dir: PathBuf,
    },
    /// Look at, replay, play and benchmark environments.
    Env {
        #[command(subcommand)]
        command: cli_env::EnvCommand,
    },
    /// Measure throughput (JSON on stdout).
    Bench {
        #[command(subcommand)]
        command: cli_model::BenchCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the whole default config, with a comment on every key.
    Defaults,
    /// Validate a config file (and overrides); print the resolved config.
    Check {
        file: PathBuf,
        #[arg(short = 'c', value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

/// Exit code for a bad configuration (sysexits EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    // candle's elementwise thread pool spins while it waits; on 2 shared cores it costs more than
    // it gives (the heavy kernels use rayon and gemm). Only when the user did not choose.
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: set before any other thread of this process exists or reads the environment.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
    tsr::policy::tune_allocator();
    let cli = Cli::parse();
    tsr::progress::init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(cfg) = err.downcast_ref::<ConfigError>() {
                eprint!("error: {cfg}");
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Some(usage) = err.downcast_ref::<UsageError>() {
                eprintln!("error: {usage}");
                return ExitCode::from(2);
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command-line mistake clap cannot see (e.g. a malformed `FILE:INDEX`); exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{}", Config::default().to_commented_toml());
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Check { file, overrides },
        } => {
            let config = Config::load(Some(&file), &overrides)?;
            print!("{}", config.to_toml());
            eprintln!("{}: ok", file.display());
            Ok(())
        }
        Command::Train(args) => cli_train::train(args),
        Command::Eval(args) => cli_train::eval(args),
        Command::Plot { run_dir } => {
            for file in tsr::plot::plot_run(&run_dir)? {
                println!("{}", file.display());
            }
            Ok(())
        }
        Command::Experiment { file, report } => {
            let exp = tsr::train::experiment::load(&file)?;
            let results = exp.out_dir.join("results.md");
            if report {
                let (done, missing) = tsr::train::experiment::report(&exp)?;
                eprintln!(
                    "{} runs finished, {} not run yet; summary in {}",
                    done.len(),
                    missing.len(),
                    results.display()
                );
            } else {
                let done = tsr::train::experiment::run(&exp)?;
                eprintln!("{} runs; results in {}", done.len(), results.display());
            }
            Ok(())
        }
        Command::Env { command } => cli_env::run(command).context("env command failed"),
        Command::Bench { command } => cli_model::run_bench(command).context("bench failed"),
    }
}
