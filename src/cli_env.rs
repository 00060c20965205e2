//! `tsr env ...`: commands for people to look at, replay, play and benchmark environments.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};
use clap::Subcommand;
use tsr::env::{Env, ParsedReply, TaskEnv, TaskKind, play_turn};

use crate::{ConfigArgs, UsageError};

#[derive(Subcommand)]
pub enum EnvCommand {
    /// Print the first observation of an instance.
    Show {
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Play a list of actions and print one JSON line per step.
    Replay {
        #[arg(long)]
        env: String,
        /// Instance seed (or the level index when a level file is used).
        #[arg(long, conflicts_with = "level")]
        seed: Option<u64>,
        /// A Sokoban level file, optionally with a 0-based level index: FILE[:INDEX].
        #[arg(long)]
        level: Option<String>,
        /// Action names, comma-separated ("Up,Left,Left"), or ";;"-separated when actions contain
        /// commas ("search[red, large shirt];;click[b0123]"); for WebShop a value without ";;"
        /// is one action. Repeat --actions to append more.
        #[arg(long, required = true)]
        actions: Vec<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Play in the terminal: type action names (several separated by "||" or ","), "q" quits.
    Play {
        #[arg(long)]
        env: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// The best success rate any policy can reach on FrozenLake seeds under the config's turn
    /// rules (exact dynamic programming over the slip model); prints JSON.
    Ceiling {
        #[arg(long)]
        env: String,
        /// First seed (the trainer's validation seeds start at `train.val_seed`, 123).
        #[arg(long, default_value_t = 123)]
        seed: u64,
        /// Number of consecutive seeds.
        #[arg(long, default_value_t = 32)]
        count: u64,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Measure steps/s and reset time; prints JSON.
    Bench {
        #[arg(long)]
        env: String,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// Build the environment `name` from the config (plus a level file for Sokoban replays).
fn build(name: &str, args: &ConfigArgs, level_file: Option<&str>) -> Result<TaskEnv> {
    let kind = TaskKind::parse(name).map_err(|e| UsageError(e.to_string()))?;
    let mut args = args.clone();
    if let Some(file) = level_file {
        if kind != TaskKind::Sokoban {
            return Err(UsageError("--level is only for --env sokoban".into()).into());
        }
        args.overrides.push(format!(
            "sokoban.levels={}",
            toml::Value::String(file.to_owned())
        ));
    }
    let config = args.load()?;
    Ok(TaskEnv::new(kind, &config)?)
}

/// Split `FILE[:INDEX]`; a trailing `:N` is an index only when N is a number.
fn split_level(spec: &str) -> Result<(String, u64)> {
    match spec.rsplit_once(':') {
        Some((file, idx)) if !idx.is_empty() && idx.chars().all(|c| c.is_ascii_digit()) => {
            let index = idx
                .parse()
                .map_err(|_| UsageError(format!("level index {idx:?} is too large")))?;
            Ok((file.to_owned(), index))
        }
        _ => Ok((spec.to_owned(), 0)),
    }
}

pub fn run(command: EnvCommand) -> Result<()> {
    match command {
        EnvCommand::Show { env, seed, config } => {
            let mut env = build(&env, &config, None)?;
            env.reset(seed);
            println!("{}", env.observation());
        }
        EnvCommand::Replay {
            env,
            seed,
            level,
            actions,
            config,
        } => {
            let (level_file, seed) = match (&level, seed) {
                (Some(spec), _) => {
                    let (file, index) = split_level(spec)?;
                    (Some(file), index)
                }
                (None, Some(seed)) => (None, seed),
                (None, None) => {
                    return Err(UsageError("give --seed S or --level FILE[:INDEX]".into()).into());
                }
            };
            let mut env = build(&env, &config, level_file.as_deref())?;
            env.reset(seed);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let names: Vec<&str> = actions
                .iter()
                .flat_map(|list| split_actions(list, env.kind()))
                .collect();
            for name in names.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
                let action = env.parse_action(name).ok_or_else(|| {
                    UsageError(format!(
                        "unknown action {name:?}; valid: {}",
                        env.action_names().join(", ")
                    ))
                })?;
                let step = env.step(action);
                let line = serde_json::json!({
                    "action": env.action_name(action),
                    "reward": step.reward,
                    "done": step.done,
                    "success": step.success,
                    "effective": step.effective,
                    "observation": env.observation(),
                });
                writeln!(out, "{line}")?;
            }
        }
        EnvCommand::Play { env, seed, config } => play(build(&env, &config, None)?, seed, &config)?,
        EnvCommand::Ceiling {
            env,
            seed,
            count,
            config,
        } => ceiling(&env, seed, count, &config)?,
        EnvCommand::Bench {
            env,
            seconds,
            config,
        } => {
            let budget = std::time::Duration::try_from_secs_f64(seconds)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    UsageError(format!("--seconds {seconds}: expected a positive number"))
                })?;
            if matches!(TaskKind::parse(&env), Ok(TaskKind::WebShop)) {
                let report = tsr::env::webshop::bench::measure(&config.load()?.webshop, budget)?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            let env = build(&env, &config, None)?;
            let report = tsr::env::bench::measure(&env, budget);
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

fn ceiling(name: &str, first: u64, count: u64, args: &ConfigArgs) -> Result<()> {
    let TaskEnv::FrozenLake(mut lake) = build(name, args, None)? else {
        return Err(UsageError("the ceiling is computed for --env frozenlake only".into()).into());
    };
    let limits = args.load()?.env.turn_limits();
    let cells = lake.rows() * lake.cols();
    if let Some(why) = tsr::env::frozenlake::table_too_large(cells, limits) {
        return Err(UsageError(format!("the ceiling cannot be computed here: {why}")).into());
    }
    let last = first
        .checked_add(count)
        .ok_or_else(|| UsageError(format!("--seed {first} --count {count}: seeds beyond 2^64")))?;
    let per_seed: Vec<f64> = (first..last)
        .map(|seed| {
            lake.reset(seed);
            lake.success_ceiling(limits)
        })
        .collect();
    let mean = per_seed.iter().sum::<f64>() / per_seed.len().max(1) as f64;
    let line = serde_json::json!({
        "first_seed": first,
        "seeds": count,
        "mean_ceiling": mean,
        "per_seed": per_seed,
    });
    println!("{}", serde_json::to_string_pretty(&line)?);
    Ok(())
}

/// One `--actions` value as action names: split on ";;" when present, else on "," (except
/// for WebShop, whose actions may contain commas).
fn split_actions(list: &str, kind: TaskKind) -> Vec<&str> {
    if list.contains(";;") {
        list.split(";;").collect()
    } else if kind == TaskKind::WebShop {
        vec![list]
    } else {
        list.split(',').collect()
    }
}

fn play(mut env: TaskEnv, seed: u64, args: &ConfigArgs) -> Result<()> {
    let rules = args.load()?.env.rules();
    env.reset(seed);
    let (mut used, mut total) = (0usize, 0.0f64);
    println!(
        "{}\nActions: {}  (several per turn with \"||\"; q quits)",
        env.observation(),
        env.action_names().join(", ")
    );
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("reading stdin")?;
        if line.trim().eq_ignore_ascii_case("q") {
            break;
        }
        // WebShop actions may contain commas, so only "||" separates them there.
        let line = if env.kind() == TaskKind::WebShop {
            line
        } else {
            line.replace(',', "||")
        };
        let parts = line
            .split("||")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let reply = ParsedReply {
            parts: parts.take(rules.max_actions_per_turn).collect(),
            matched: true,
        };
        let turn = play_turn(&mut env, &reply, used, &rules);
        used += turn.actions.len();
        total += turn.reward + turn.penalty;
        println!("{}", env.observation());
        println!(
            "played {:?}, reward {:.2}, return {:.2}, actions left {}",
            turn.actions,
            turn.reward,
            total,
            rules.max_actions_per_episode.saturating_sub(used)
        );
        if turn.no_valid_action {
            println!("no valid action; valid: {}", env.action_names().join(", "));
        }
        if turn.done || used >= rules.max_actions_per_episode {
            println!(
                "{}",
                if turn.success {
                    "solved!"
                } else {
                    "episode over"
                }
            );
            break;
        }
    }
    Ok(())
}
