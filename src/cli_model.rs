//! `tsr bench model`: policy throughput as JSON, optionally next to PyTorch on the same shapes.

use std::process::Command;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tsr::policy::bench::{BenchShapes, run};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prefill, decode, training and best-of-4 throughput of the policy (JSON on stdout).
    Model(ModelBenchArgs),
    /// Training throughput of a config: synchronous vs overlapped, and 1, 2, 4, 8 search actors.
    Train(TrainBenchArgs),
}

#[derive(Args)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    config: crate::ConfigArgs,
    /// Training steps per shape (the first is not measured).
    #[arg(long, default_value_t = 4)]
    steps: u64,
}

#[derive(Args)]
pub struct ModelBenchArgs {
    /// Architecture preset: tiny, mini or small.
    #[arg(long, default_value = "tiny", value_parser = clap::builder::PossibleValuesParser::new(tsr::policy::PRESETS.iter().copied()))]
    preset: String,
    /// Also run benches/torch_model_bench.py on the same shapes and report ratios.
    #[arg(long)]
    torch: bool,
    /// Run one part only: prefill, decode, train or fork (e.g. under a profiler), or kernel: the
    /// decode kernel against gemm on the preset's layer products (not part of a full run).
    #[arg(long, default_value = "",
          value_parser = ["", "prefill", "decode", "train", "fork", "kernel"])]
    only: String,
    /// Compute threads for both engines (RAYON_NUM_THREADS here, torch.set_num_threads there);
    /// 0 keeps the defaults (one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Tokens per training row instead of the preset's 128: the trainer's multi-turn episodes
    /// run to 150-300 tokens, where the causal attention weighs more.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    train_len: Option<u16>,
    /// Python interpreter for --torch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Measure this many times, tsr and PyTorch taking turns, and report the median of each
    /// round's ratios: on a machine shared with other tenants one round's ratio moves by 20-30%.
    /// (Needs --torch: the rounds exist to compare the two side by side.)
    #[arg(long, default_value_t = 1, requires = "torch",
          value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
}

pub fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
    let args = match cmd {
        BenchCommand::Model(args) => args,
        BenchCommand::Train(args) => {
            let config = args.config.load()?;
            let rows = tsr::train::bench::standard_grid(&config, args.steps)?;
            println!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
    };
    if args.torch && args.only == "kernel" {
        return Err(crate::UsageError(
            "--only kernel compares two tsr kernels; PyTorch has no counterpart (drop --torch)"
                .into(),
        )
        .into());
    }
    if args.threads > 0 {
        // SAFETY: set before rayon's pool or any other thread of this process exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string()) };
    }
    let mut shapes = BenchShapes::for_preset(&args.preset);
    if let Some(len) = args.train_len {
        shapes.train_len = usize::from(len);
    }
    let mut rounds = Vec::with_capacity(usize::from(args.rounds));
    for _ in 0..args.rounds {
        let ours = run(&args.preset, &shapes, &args.only)?;
        let torch = match args.torch {
            true => Some(run_torch(&args.python, &ours)?),
            false => None,
        };
        rounds.push((ours, torch));
    }
    let report = summarise(rounds);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn run_torch(python: &str, ours: &Value) -> anyhow::Result<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_model_bench.py");
    let spec = json!({"arch": ours["arch"], "shapes": ours["shapes"], "threads": ours["threads"]});
    let out = Command::new(python)
        .arg(script)
        .arg(spec.to_string())
        .output()
        .with_context(|| format!("cannot run {python} {script}"))?;
    if !out.status.success() {
        bail!("{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("{script} printed no JSON"))
}

/// tsr throughput / PyTorch throughput per measurement (> 1: tsr is faster).
fn ratios(ours: &Value, torch: &Value) -> Value {
    let r = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => json!(a / b),
        _ => Value::Null,
    };
    let mut decode = serde_json::Map::new();
    for (o, t) in ours["decode"]
        .as_array()
        .into_iter()
        .flatten()
        .zip(torch["decode"].as_array().into_iter().flatten())
    {
        decode.insert(
            format!("batch_{}", o["batch"]),
            r(&o["tok_per_s"], &t["tok_per_s"]),
        );
    }
    json!({
        "prefill": r(&ours["prefill"]["tok_per_s"], &torch["prefill"]["tok_per_s"]),
        "decode": decode,
        "train": r(&ours["train"]["tok_per_s"], &torch["train"]["tok_per_s"]),
    })
}

/// One round's figures when there was one round; otherwise every round's figures and ratios
/// plus the median ratio of each measure.
fn summarise(mut rounds: Vec<(Value, Option<Value>)>) -> Value {
    let with_ratios = |(ours, torch): (Value, Option<Value>)| match torch {
        Some(torch) => {
            let ratios = ratios(&ours, &torch);
            json!({"tsr": ours, "torch": torch, "tsr_over_torch_throughput": ratios})
        }
        None => ours,
    };
    if rounds.len() == 1 {
        return with_ratios(rounds.remove(0));
    }
    let rounds: Vec<Value> = rounds.into_iter().map(with_ratios).collect();
    let ratios: Vec<&Value> = rounds
        .iter()
        .map(|r| &r["tsr_over_torch_throughput"])
        .collect();
    let forks: Vec<Value> = rounds
        .iter()
        .map(|r| r.get("tsr").unwrap_or(r)["best_of_4_shared_prompt"]["ratio"].clone())
        .collect();
    json!({
        "rounds": rounds,
        "median_tsr_over_torch_throughput": median_leaves(&ratios),
        "median_best_of_4_ratio": median_leaves(&forks.iter().collect::<Vec<_>>()),
    })
}

/// Leaf-wise median of values of one shape (numbers at the leaves; null where none is a number).
fn median_leaves(values: &[&Value]) -> Value {
    match values.first() {
        Some(Value::Object(first)) => Value::Object(
            first
                .keys()
                .map(|k| {
                    let leaves: Vec<&Value> = values.iter().map(|v| &v[k.as_str()]).collect();
                    (k.clone(), median_leaves(&leaves))
                })
                .collect(),
        ),
        _ => {
            let mut xs: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            if xs.is_empty() {
                return Value::Null;
            }
            xs.sort_by(f64::total_cmp);
            let mid = xs.len() / 2;
            json!(if xs.len() % 2 == 1 {
                xs[mid]
            } else {
                (xs[mid - 1] + xs[mid]) / 2.0
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_are_taken_leaf_by_leaf() {
        let a = json!({"train": 1.0, "decode": {"batch_8": 3.0}, "prefill": null});
        let b = json!({"train": 0.5, "decode": {"batch_8": 1.0}, "prefill": null});
        let c = json!({"train": 2.0, "decode": {"batch_8": 2.0}, "prefill": null});
        let m = median_leaves(&[&a, &b, &c]);
        assert_eq!(
            m,
            json!({"train": 1.0, "decode": {"batch_8": 2.0}, "prefill": null})
        );
        let even = median_leaves(&[&a, &b]);
        assert_eq!(even["train"], json!(0.75));
    }
}
