//! `tsr bench model`: throughput of the policy on fixed shapes, as JSON.
//!
//! The shapes are also handed to `benches/torch_model_bench.py`, so the PyTorch figures come
//! from the same model shape, batch sizes and token counts.

use std::time::Instant;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::infer::SeqCache;
use super::{
    GenRequest, ModelSection, Policy, PolicyError, PolicyOptimizer, Sampling, Tokenizer, TrainBatch,
};

/// Peak f32 throughput of the machines this project runs on (2 vCPUs sharing one physical
/// core's FMA units), the yardstick for GFLOP/s: about 220 GFLOP/s with AVX-512, half that on
/// the machines whose CPU offers AVX2 only (both kinds serve this project).
pub fn peak_gflops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return 220.0;
    }
    110.0
}

/// The shapes one benchmark run uses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchShapes {
    pub prefill_batch: usize,
    pub prefill_len: usize,
    pub decode_batches: Vec<usize>,
    pub decode_prompt: usize,
    pub decode_steps: usize,
    pub train_batch: usize,
    pub train_len: usize,
    pub train_steps: usize,
    pub shared_prompt: usize,
    pub shared_new: usize,
}

impl BenchShapes {
    pub fn for_preset(preset: &str) -> BenchShapes {
        BenchShapes {
            prefill_batch: 8,
            prefill_len: 128,
            decode_batches: vec![1, 8, 32, 64],
            decode_prompt: 64,
            decode_steps: 32,
            train_batch: if preset == "small" { 8 } else { 16 },
            train_len: 128,
            // Best of 8: this shared machine moves single steps by up to 30%.
            train_steps: 8,
            shared_prompt: 512,
            shared_new: 32,
        }
    }
}

fn synthetic_corpus() -> Vec<String> {
    (0..200)
        .map(|i| {
            format!(
                "<|im_start|>user\n#####\n#P.X#\n#..O#\n#####\nTurn {i}: which action?<|im_end|>\n\
                 <|im_start|>assistant\n<think>push the box right</think><answer>Right</answer><|im_end|>"
            )
        })
        .collect()
}

fn random_rows(rng: &mut ChaCha8Rng, rows: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..rows)
        .map(|_| {
            (0..len)
                .map(|_| rng.random_range(0..vocab as u32 - 3))
                .collect()
        })
        .collect()
}

/// Seconds of the fastest of `reps` runs of `f` (after one warm-up run).
fn best_of<F: FnMut() -> Result<(), PolicyError>>(
    reps: usize,
    mut f: F,
) -> Result<f64, PolicyError> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Forward FLOPs of `tokens` tokens attending over `ctx` keys on average.
fn forward_flops(p: &Policy, tokens: usize, ctx: f64) -> f64 {
    let a = p.arch();
    let attn = 4.0 * a.num_layers as f64 * ctx * (a.num_heads * a.head_dim) as f64;
    tokens as f64 * (a.matmul_flops_per_token() + attn)
}

/// Run every measurement for `preset` and return the JSON report.
/// `only`: run just one part ("prefill", "decode", "train", "fork"), e.g. for profiling; the
/// others are reported as null. "kernel" (the decode kernel against gemm) runs only when asked.
pub fn run(preset: &str, shapes: &BenchShapes, only: &str) -> Result<Value, PolicyError> {
    let want = |part: &str| only.is_empty() || only == part;
    let tok = Tokenizer::build_for_corpus_sized(&synthetic_corpus(), 512)?;
    let s = ModelSection {
        preset: preset.into(),
        context_limit: (shapes.shared_prompt + shapes.shared_new).max(shapes.train_len) + 64,
        max_new_tokens: shapes.shared_new,
        ..ModelSection::default()
    };
    let policy = Policy::from_section(&s, &tok, 1)?;
    let a = policy.arch().clone();
    let v = a.vocab_size;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let w = policy.infer_weights()?;

    let mut report = json!({
        "engine": "tsr (candle + custom CPU kernels)",
        "preset": preset,
        "arch": a,
        "params": a.num_params(),
        "threads": rayon::current_num_threads(),
        "shapes": shapes,
        "peak_gflops": peak_gflops(),
    });
    if only == "kernel" {
        report["decode_kernel"] = super::bench_kernel::compare(&a);
        return Ok(report);
    }
    if want("prefill") {
        let rows = random_rows(&mut rng, shapes.prefill_batch, shapes.prefill_len, v);
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let prefill_s = best_of(3, || {
            let mut caches = vec![SeqCache::default(); rows.len()];
            w.forward(&mut caches, &refs, false).map(|_| ())
        })?;
        let prefill_tokens = shapes.prefill_batch * shapes.prefill_len;
        let prefill_flops = forward_flops(&policy, prefill_tokens, shapes.prefill_len as f64 / 2.0);
        report["prefill"] = json!({
            "tokens": prefill_tokens,
            "seconds": prefill_s,
            "tok_per_s": prefill_tokens as f64 / prefill_s,
            "gflops": prefill_flops / prefill_s / 1e9,
        });
    }

    let mut decode = Vec::new();
    for &b in shapes.decode_batches.iter().filter(|_| want("decode")) {
        let prompts = random_rows(&mut rng, b, shapes.decode_prompt, v);
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let mut total = f64::INFINITY;
        for _ in 0..2 {
            let mut caches = vec![SeqCache::default(); b];
            w.forward(&mut caches, &refs, false)?;
            let t = Instant::now();
            for step in 0..shapes.decode_steps {
                let toks: Vec<[u32; 1]> = (0..b)
                    .map(|i| [((step * 7 + i) % (v - 3)) as u32])
                    .collect();
                let trefs: Vec<&[u32]> = toks.iter().map(|t| t.as_slice()).collect();
                w.forward(&mut caches, &trefs, false)?;
            }
            total = total.min(t.elapsed().as_secs_f64());
        }
        let step_ms = 1e3 * total / shapes.decode_steps as f64;
        decode.push(json!({
            "batch": b,
            "ms_per_step": step_ms,
            "tok_per_s": (b * shapes.decode_steps) as f64 / total,
        }));
    }

    if want("decode") {
        report["decode"] = json!(decode);
    }
    if want("train") {
        let train_rows = random_rows(&mut rng, shapes.train_batch, shapes.train_len, v);
        let mut opt = PolicyOptimizer::new(&policy, &s)?;
        let batch = TrainBatch { tokens: train_rows };
        let train_s = best_of(shapes.train_steps, || {
            let f = policy.forward_train(&batch)?;
            let loss = (f.logprobs.mean_all()?.neg()? + f.values.sqr()?.mean_all()?)?;
            opt.step(&loss).map(|_| ())
        })?;
        let train_tokens = shapes.train_batch * shapes.train_len;
        let train_flops = 3.0 * forward_flops(&policy, train_tokens, shapes.train_len as f64 / 2.0);
        report["train"] = json!({
            "tokens": train_tokens,
            "seconds_per_step": train_s,
            "tok_per_s": train_tokens as f64 / train_s,
            "gflops": train_flops / train_s / 1e9,
            "fraction_of_peak": train_flops / train_s / 1e9 / peak_gflops(),
        });
    }
    if want("fork") {
        let prompt = random_rows(&mut rng, 1, shapes.shared_prompt, v).remove(0);
        let req = |n: usize, seed: u64| GenRequest {
            prompt: prompt.clone(),
            n,
            max_new_tokens: shapes.shared_new,
            sampling: Sampling {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                greedy: false,
            },
            stop_strings: Vec::new(),
            seed,
        };
        let shared_s = best_of(2, || policy.generate(&[req(4, 1)]).map(|_| ()))?;
        let independent: Vec<GenRequest> = (0..4).map(|i| req(1, i)).collect();
        let independent_s = best_of(2, || policy.generate(&independent).map(|_| ()))?;

        report["best_of_4_shared_prompt"] = json!({
            "shared_seconds": shared_s,
            "independent_seconds": independent_s,
            "ratio": shared_s / independent_s,
        });
    }
    Ok(report)
}
