//! Conformance against the reference vectors: every `qwen2_*` folder under the reference
//! directory (`../shared/reference`, or `TSR_REFERENCE_DIR`) is one case.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;
use tsr::policy::{
    GenRequest, ModelSection, Policy, PolicyOptimizer, Sampling, Tokenizer, TrainBatch,
};

fn reference_dir() -> PathBuf {
    std::env::var_os("TSR_REFERENCE_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference")),
        PathBuf::from,
    )
}

/// Every model case folder; the test fails if there is none (a missing folder must not pass).
fn cases() -> Vec<PathBuf> {
    let dir = reference_dir();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("qwen2_"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no qwen2_* case under {}", dir.display());
    out
}

struct Case {
    dir: PathBuf,
    vectors: Value,
    expected: HashMap<String, Tensor>,
    tokenizer: Tokenizer,
    policy: Policy,
}

fn section(dir: &Path) -> ModelSection {
    ModelSection {
        path: dir.display().to_string(),
        ..ModelSection::default()
    }
}

fn load(dir: &Path) -> Case {
    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vectors.json")).unwrap()).unwrap();
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let tokenizer = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
    let policy = Policy::from_section(&section(dir), &tokenizer, 0).unwrap();
    Case {
        dir: dir.to_owned(),
        vectors,
        expected,
        tokenizer,
        policy,
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    let err = (got - want).abs() / want.abs().max(1e-12);
    assert!(
        err <= rel,
        "{what}: got {got}, want {want} (rel err {err:.2e} > {rel:.0e})"
    );
}

#[test]
fn tokenizer_matches_reference_ids_and_decoding() {
    for dir in cases() {
        let c = load(&dir);
        for case in c.vectors["tokenizer_cases"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let want = ids(&case["ids"]);
            assert_eq!(
                c.tokenizer.encode(text).unwrap(),
                want,
                "{}: {text:?}",
                c.dir.display()
            );
            assert_eq!(c.tokenizer.decode(&want), text);
            assert_eq!(
                c.tokenizer.decode_skip_special(&want),
                case["decoded_skip_special"].as_str().unwrap()
            );
        }
        let specials = &c.vectors["special_token_ids"];
        assert_eq!(
            c.tokenizer.eos_id() as u64,
            specials["<|im_end|>"].as_u64().unwrap()
        );
        assert_eq!(
            c.tokenizer.pad_id() as u64,
            specials["<|endoftext|>"].as_u64().unwrap()
        );
    }
}

#[test]
fn full_sequence_logits_logprobs_and_hidden_states_match() {
    for dir in cases() {
        let c = load(&dir);
        for seq in c.vectors["single_sequences"].as_array().unwrap() {
            let input = ids(&seq["input_ids"]);
            let l = input.len();
            let logits = c.policy.logits_full(std::slice::from_ref(&input)).unwrap();
            let want = &c.expected[seq["logits_key"].as_str().unwrap()];
            let diff = max_abs_diff(&flat(&logits), &flat(want));
            assert!(
                diff <= 1e-4,
                "{}: logits len {l}: max abs diff {diff}",
                dir.display()
            );
            // Next-token log-probs through the training forward (its [b, t] predicts tok[t]).
            let fwd = c
                .policy
                .forward_train(&TrainBatch {
                    tokens: vec![input.clone()],
                })
                .unwrap();
            let lp = flat(&fwd.logprobs);
            for (t, w) in seq["next_token_logprob"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
            {
                // The stored values are rounded to 6 significant digits (rel 5e-6).
                assert_rel(
                    lp[t + 1] as f64,
                    w.as_f64().unwrap(),
                    1e-5,
                    &format!("logprob {t} of len {l}"),
                );
            }
            let sum: f64 = lp.iter().map(|&x| x as f64).sum();
            assert_rel(
                sum,
                seq["next_token_logprob_sum"].as_f64().unwrap(),
                1e-5,
                "logprob sum",
            );
            let key = format!("hidden_states_len{l}");
            if let Some(hidden) = c.expected.get(&key) {
                let pos: Vec<Vec<u32>> = vec![(0..l as u32).collect()];
                let out = c
                    .policy
                    .forward_full(std::slice::from_ref(&input), &pos, &[vec![true; l]], true)
                    .unwrap();
                let layers = c.policy.arch().num_layers;
                for i in 0..layers {
                    let d = max_abs_diff(&flat(&out.residuals[i]), &flat(&hidden.get(i).unwrap()));
                    assert!(d <= 1e-4, "hidden state {i}: {d}");
                }
                let d = max_abs_diff(&flat(&out.normed), &flat(&hidden.get(layers).unwrap()));
                assert!(d <= 1e-4, "final norm output: {d}");
                let before = &c.expected[&format!("final_norm_input_len{l}")];
                let d = max_abs_diff(&flat(&out.residuals[layers]), &flat(before));
                assert!(d <= 1e-4, "final norm input: {d}");
            }
        }
    }
}

#[test]
fn left_padded_batch_logits_match_where_unmasked() {
    for dir in cases() {
        let c = load(&dir);
        let b = &c.vectors["batched_left_padded"];
        let rows: Vec<Vec<u32>> = b["input_ids"].as_array().unwrap().iter().map(ids).collect();
        let mask: Vec<Vec<bool>> = b["attention_mask"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| ids(r).into_iter().map(|m| m == 1).collect())
            .collect();
        let pos: Vec<Vec<u32>> = b["position_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let out = c.policy.forward_full(&rows, &pos, &mask, false).unwrap();
        let got = flat(&c.policy.lm_head(&out.normed).unwrap());
        let want = flat(&c.expected["batch_logits"]);
        let v = c.policy.arch().vocab_size;
        let t = rows[0].len();
        assert!(
            got.iter().all(|x| x.is_finite()),
            "pad rows must stay finite"
        );
        for (bi, m) in mask.iter().enumerate() {
            for (ti, &real) in m.iter().enumerate() {
                if real {
                    let o = (bi * t + ti) * v;
                    let d = max_abs_diff(&got[o..o + v], &want[o..o + v]);
                    assert!(d <= 1e-4, "{}: row {bi} pos {ti}: {d}", dir.display());
                }
            }
        }
    }
}

fn greedy_request(prompt: Vec<u32>, n_new: usize, n: usize) -> GenRequest {
    GenRequest {
        prompt,
        n,
        max_new_tokens: n_new,
        sampling: Sampling::greedy(),
        stop_strings: Vec::new(),
        seed: 0,
    }
}

#[test]
fn greedy_generation_matches_with_and_without_cache_and_batching() {
    for dir in cases() {
        let c = load(&dir);
        let g = &c.vectors["greedy_generation"];
        let n_new = g["n_new_tokens"].as_u64().unwrap() as usize;
        let eos = c.tokenizer.eos_id();
        let cases = g["cases"].as_array().unwrap();
        let mut batch = Vec::new();
        for case in cases {
            let prompt = ids(&case["prompt_ids"]);
            let want = ids(&case["new_ids"]);
            // The reference ignores EOS; these prompts never produce it before the end.
            assert!(!want[..want.len() - 1].contains(&eos));
            // No cache: full recompute and argmax each step.
            let mut seq = prompt.clone();
            for _ in 0..n_new {
                let logits = flat(&c.policy.logits_full(std::slice::from_ref(&seq)).unwrap());
                let v = c.policy.arch().vocab_size;
                let last = &logits[(seq.len() - 1) * v..];
                let arg = (0..v).fold(0, |b, i| if last[i] > last[b] { i } else { b });
                seq.push(arg as u32);
            }
            assert_eq!(&seq[prompt.len()..], want.as_slice(), "no-cache greedy");
            // KV cache, alone, and forked 3 ways (all greedy samples must agree).
            let out = c
                .policy
                .generate(&[greedy_request(prompt.clone(), n_new, 3)])
                .unwrap();
            for s in &out[0].samples {
                assert_eq!(s.tokens, want, "cached greedy");
            }
            batch.push(greedy_request(prompt, n_new, 1));
        }
        let out = c.policy.generate(&batch).unwrap();
        for (o, case) in out.iter().zip(cases) {
            assert_eq!(o.samples[0].tokens, ids(&case["new_ids"]), "batched greedy");
        }
    }
}

#[test]
fn one_training_step_matches_loss_grads_and_updated_params() {
    for dir in cases() {
        let c = load(&dir);
        let ts = &c.vectors["train_step"];
        let rows: Vec<Vec<u32>> = ts["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let opt_cfg = &ts["optimizer"];
        let get = |k: &str, d: f64| opt_cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
        let s = ModelSection {
            lr: get("lr", 1e-3),
            weight_decay: get("weight_decay", 0.01),
            eps: get("eps", 1e-8),
            grad_clip: 0.0,
            ..section(&dir)
        };
        let mut opt = PolicyOptimizer::new(&c.policy, &s).unwrap();
        let loss_of = |p: &Policy| {
            let f = p
                .forward_train(&TrainBatch {
                    tokens: rows.clone(),
                })
                .unwrap();
            let t = rows[0].len();
            f.logprobs
                .narrow(1, 1, t - 1)
                .unwrap()
                .mean_all()
                .unwrap()
                .neg()
                .unwrap()
        };
        let loss = loss_of(&c.policy);
        let lv = loss.to_scalar::<f32>().unwrap() as f64;
        assert_rel(lv, ts["loss_before"].as_f64().unwrap(), 1e-5, "loss before");
        let stats = opt.step(&loss).unwrap();
        assert!(!stats.skipped);
        assert_rel(
            stats.grad_norm,
            ts["grad_global_l2_norm"].as_f64().unwrap(),
            1e-4,
            "grad norm",
        );
        let by_param = ts["grad_l2_norm_by_param"].as_object().unwrap();
        let got: HashMap<&str, f64> = opt
            .last_grad_norms()
            .iter()
            .map(|(n, g)| (n.as_str(), *g))
            .collect();
        for (name, want) in by_param {
            assert_rel(
                got[name.as_str()],
                want.as_f64().unwrap(),
                1e-4,
                &format!("grad norm {name}"),
            );
        }
        // The value head is not in this loss, so it has no gradient (and no other entries).
        assert_eq!(got.len(), by_param.len() + 2);
        let params = c.policy.params();
        for (name, want) in ts["param_l2_norm_after"].as_object().unwrap() {
            let t = params.get(name).unwrap();
            let norm = t
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                .sqrt() as f64;
            assert_rel(
                norm,
                want.as_f64().unwrap(),
                1e-5,
                &format!("param norm after {name}"),
            );
            if let Some(upd) = c.expected.get(&format!("updated.{name}")) {
                // Adam step 1 is ~lr*sign(g): entries with |g|~1e-8 may flip, so allow ~2 lr.
                let d = max_abs_diff(&flat(t), &flat(upd));
                assert!(d <= 2.5e-3, "updated {name}: {d}");
            }
        }
        let after = loss_of(&c.policy).to_scalar::<f32>().unwrap() as f64;
        assert_rel(
            after,
            ts["loss_after_one_step"].as_f64().unwrap(),
            1e-4,
            "loss after",
        );
    }
}

#[test]
fn incremental_and_forked_decoding_agree_with_full_forward() {
    // Tolerance: the cached path uses different kernels and summation order, so log-probs
    // agree to f32 rounding (abs 1e-4 on values of magnitude ~10).
    for dir in cases() {
        let c = load(&dir);
        for seq in c.vectors["single_sequences"].as_array().unwrap() {
            let input = ids(&seq["input_ids"]);
            let fwd = c
                .policy
                .forward_train(&TrainBatch {
                    tokens: vec![input.clone()],
                })
                .unwrap();
            let full = flat(&fwd.logprobs);
            for chunk in [1, 5, input.len()] {
                let inc = c.policy.incremental_logprobs(&input, chunk).unwrap();
                let d = max_abs_diff(&inc, &full);
                assert!(d <= 1e-4, "chunk {chunk}, len {}: {d}", input.len());
            }
        }
        // Forked samples: their reported log-probs equal a full forward of prompt + sample.
        let prompt = ids(&c.vectors["greedy_generation"]["cases"][0]["prompt_ids"]);
        let req = GenRequest {
            prompt: prompt.clone(),
            n: 4,
            max_new_tokens: 12,
            sampling: Sampling {
                temperature: 1.0,
                top_p: 0.95,
                top_k: 50,
                greedy: false,
            },
            stop_strings: Vec::new(),
            seed: 7,
        };
        let out = c.policy.generate(std::slice::from_ref(&req)).unwrap();
        for s in &out[0].samples {
            let mut row = prompt.clone();
            row.extend(&s.tokens);
            let f = flat(
                &c.policy
                    .forward_train(&TrainBatch { tokens: vec![row] })
                    .unwrap()
                    .logprobs,
            );
            let d = max_abs_diff(&s.logprobs, &f[prompt.len()..]);
            assert!(d <= 1e-4, "forked sample log-probs vs full forward: {d}");
        }
        // Forked sample i equals the same request decoded next to unrelated companions: same
        // tokens; log-probs equal up to matmul rounding, which depends on the batch size.
        let other = GenRequest {
            prompt: vec![1, 2, 3],
            seed: 99,
            ..req.clone()
        };
        let mixed = c.policy.generate(&[other, req.clone()]).unwrap();
        for (a, b) in mixed[1].samples.iter().zip(&out[0].samples) {
            assert_eq!(a.tokens, b.tokens);
            assert_eq!(a.finish, b.finish);
            assert!(max_abs_diff(&a.logprobs, &b.logprobs) <= 1e-5);
        }
    }
}
