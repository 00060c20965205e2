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
    /// Architecture preset: tiny or small.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Also run benches/torch_model_bench.py on the same shapes and report ratios.
    #[arg(long)]
    torch: bool,
    /// Run one part only: prefill, decode, train or fork (e.g. under a profiler).
    #[arg(long, default_value = "")]
    only: String,
    /// Compute threads for both engines (RAYON_NUM_THREADS here, torch.set_num_threads there);
    /// 0 keeps the defaults (one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Python interpreter for --torch.
    #[arg(long, default_value = "python3")]
    python: String,
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
    if args.threads > 0 {
        // SAFETY: set before rayon's pool or any other thread of this process exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string()) };
    }
    let shapes = BenchShapes::for_preset(&args.preset);
    let ours = run(&args.preset, &shapes, &args.only)?;
    let report = if args.torch {
        let torch = run_torch(&args.python, &ours)?;
        let ratios = ratios(&ours, &torch);
        json!({"tsr": ours, "torch": torch, "tsr_over_torch_throughput": ratios})
    } else {
        ours
    };
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
