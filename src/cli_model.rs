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
}

#[derive(Args)]
pub struct ModelBenchArgs {
    /// Architecture preset: tiny or small.
    #[arg(long, default_value = "tiny")]
    preset: String,
    /// Also run benches/torch_model_bench.py on the same shapes and report ratios.
    #[arg(long)]
    torch: bool,
    /// Python interpreter for --torch.
    #[arg(long, default_value = "python3")]
    python: String,
}

pub fn run_bench(cmd: BenchCommand) -> anyhow::Result<()> {
    let BenchCommand::Model(args) = cmd;
    let shapes = BenchShapes::for_preset(&args.preset);
    let ours = run(&args.preset, &shapes)?;
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
