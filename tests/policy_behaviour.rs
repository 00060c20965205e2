//! Behaviour of the policy beyond the reference vectors: gradients reach every tensor,
//! from-scratch tokenizers, sampling, checkpoints and errors on bad input.

use std::path::Path;

use candle_core::Tensor;
use tsr::config::{Config, Issues, Section};
use tsr::policy::{
    ChatMessage, Finish, GenRequest, ModelSection, Policy, PolicyError, PolicyOptimizer, Sampling,
    Tokenizer, TrainBatch,
};

fn corpus() -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..40 {
        out.push(format!(
            "#####\n#P.X#\n#..O#\n#####\nStep {i}: which action? <think>the box is left of the target</think><answer>Right</answer>"
        ));
        out.push(format!(
            "You are on a frozen lake. Goal at row {i}. Moves: Up, Down, Left, Right."
        ));
    }
    out
}

fn tiny() -> (Tokenizer, ModelSection, Policy) {
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    let s = ModelSection {
        context_limit: 256,
        max_new_tokens: 16,
        ..ModelSection::default()
    };
    let p = Policy::from_section(&s, &tok, 3).unwrap();
    (tok, s, p)
}

fn prompt(tok: &Tokenizer) -> Vec<u32> {
    let msgs = [ChatMessage {
        role: "user".into(),
        content: "#####\n#P.X#\nWhich action?".into(),
    }];
    tok.encode(&Tokenizer::chat_text(&msgs, true)).unwrap()
}

#[test]
fn built_tokenizer_round_trips_and_has_specials_last() {
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    let v = tok.vocab_size() as u32;
    assert!(v > 259 && v <= 512, "vocab {v}");
    assert_eq!(tok.eos_id(), v - 1);
    assert_eq!(tok.pad_id(), v - 3);
    assert_eq!(tok.im_start_id(), v - 2);
    let text = Tokenizer::chat_text(
        &[ChatMessage {
            role: "user".into(),
            content: "héllo #P.X# 12 ✓".into(),
        }],
        true,
    );
    let ids = tok.encode(&text).unwrap();
    assert_eq!(ids[0], tok.im_start_id());
    assert!(ids.contains(&tok.eos_id()));
    assert_eq!(tok.decode(&ids), text);
    // Learnt merges make the training text shorter than its bytes.
    assert!(tok.encode(&corpus()[0]).unwrap().len() < corpus()[0].len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    tok.save(&path).unwrap();
    let back = Tokenizer::load(&path).unwrap();
    assert_eq!(back.encode(&text).unwrap(), ids);
    // Same corpus, same tokenizer.
    assert_eq!(
        Tokenizer::build_for_corpus(&corpus())
            .unwrap()
            .encode(&text)
            .unwrap(),
        ids
    );
}

#[test]
fn every_trainable_tensor_gets_a_finite_nonzero_gradient() {
    for preset in ["tiny", "small"] {
        let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
        let s = ModelSection {
            preset: preset.into(),
            context_limit: 64,
            ..ModelSection::default()
        };
        let p = Policy::from_section(&s, &tok, 1).unwrap();
        let batch = TrainBatch {
            tokens: vec![prompt(&tok), prompt(&tok)[..9].to_vec()],
        };
        let f = p.forward_train(&batch).unwrap();
        assert_eq!(
            f.pad_mask.sum_all().unwrap().to_scalar::<f32>().unwrap() as usize,
            batch.tokens.iter().map(Vec::len).sum::<usize>()
        );
        let loss = ((f.logprobs.sum_all().unwrap() + f.entropy.sum_all().unwrap()).unwrap()
            + f.values.sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in p.params().names().iter().zip(p.params().vars()) {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{preset}: no gradient for {name}"));
            let n = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(n.is_finite(), "{name}: non-finite gradient");
            assert!(n > 0.0, "{preset}: zero gradient for {name}");
        }
    }
}

#[test]
fn forward_train_columns_are_shifted_and_zero_at_t0() {
    let (tok, _, p) = tiny();
    let row = prompt(&tok);
    let f = p
        .forward_train(&TrainBatch {
            tokens: vec![row.clone(), row[..5].to_vec()],
        })
        .unwrap();
    let lp = f.logprobs.to_vec2::<f32>().unwrap();
    assert_eq!(lp[0][0], 0.0);
    assert_eq!(f.values.to_vec2::<f32>().unwrap()[0][0], 0.0);
    assert_eq!(f.entropy.to_vec2::<f32>().unwrap()[1][0], 0.0);
    // The short row's real positions equal its own unpadded forward.
    let alone = p
        .forward_train(&TrainBatch {
            tokens: vec![row[..5].to_vec()],
        })
        .unwrap();
    let alone = alone.logprobs.to_vec2::<f32>().unwrap();
    for t in 0..5 {
        assert!((lp[1][t] - alone[0][t]).abs() < 1e-5);
    }
    let ent = f.entropy.to_vec2::<f32>().unwrap();
    let max = (tok.vocab_size() as f32).ln();
    assert!(ent[0][1..].iter().all(|&e| e > 0.0 && e <= max + 1e-4));
}

#[test]
fn sampling_is_seeded_per_request_and_stops_on_eos_stop_strings_and_length() {
    let (tok, _, p) = tiny();
    let req = GenRequest {
        prompt: prompt(&tok),
        n: 3,
        max_new_tokens: 10,
        sampling: Sampling {
            temperature: 1.5,
            top_p: 1.0,
            top_k: 0,
            greedy: false,
        },
        stop_strings: Vec::new(),
        seed: 11,
    };
    let a = p.generate(std::slice::from_ref(&req)).unwrap();
    let b = p.generate(std::slice::from_ref(&req)).unwrap();
    assert_eq!(a, b);
    let samples = &a[0].samples;
    assert_eq!(samples.len(), 3);
    assert!(samples[0].tokens != samples[1].tokens || samples[1].tokens != samples[2].tokens);
    for s in samples {
        assert_eq!(s.tokens.len(), s.logprobs.len());
        match s.finish {
            Finish::Eos => assert_eq!(*s.tokens.last().unwrap(), tok.eos_id()),
            Finish::Length => assert_eq!(s.tokens.len(), 10),
            Finish::Stop => panic!("no stop strings were given"),
        }
    }
    let c = p
        .generate(&[GenRequest {
            seed: 12,
            ..req.clone()
        }])
        .unwrap();
    assert_ne!(a, c);
    // Stop on the text of the first sampled token.
    let first = tok.decode(&samples[0].tokens[..1]);
    let stopped = p
        .generate(&[GenRequest {
            n: 1,
            stop_strings: vec![first],
            ..req.clone()
        }])
        .unwrap();
    assert_eq!(stopped[0].samples[0].finish, Finish::Stop);
    assert_eq!(stopped[0].samples[0].tokens.len(), 1);
    // top_k = 1 is greedy.
    let k1 = p
        .generate(&[GenRequest {
            sampling: Sampling {
                top_k: 1,
                ..req.sampling.clone()
            },
            ..req.clone()
        }])
        .unwrap();
    let greedy = p
        .generate(&[GenRequest {
            sampling: Sampling::greedy(),
            ..req.clone()
        }])
        .unwrap();
    assert_eq!(k1[0].samples[0].tokens, greedy[0].samples[0].tokens);
}

#[test]
fn long_prompts_fail_clearly_or_are_truncated_when_configured() {
    let (tok, s, p) = tiny();
    let long: Vec<u32> = (0..300).map(|i| i % 200).collect();
    let req = GenRequest {
        prompt: long.clone(),
        n: 1,
        max_new_tokens: 4,
        sampling: Sampling::greedy(),
        stop_strings: vec![],
        seed: 0,
    };
    match p.generate(std::slice::from_ref(&req)) {
        Err(PolicyError::PromptTooLong {
            request: 0,
            len: 300,
            limit: 252,
        }) => {}
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    let s2 = ModelSection {
        truncate_long_prompts: true,
        ..s
    };
    let p2 = Policy::from_section(&s2, &tok, 3).unwrap();
    let out = p2.generate(&[req]).unwrap();
    assert_eq!(out[0].samples[0].tokens.len(), 4);
    let bad = GenRequest {
        prompt: vec![tok.vocab_size() as u32 + 5],
        n: 1,
        max_new_tokens: 2,
        sampling: Sampling::greedy(),
        stop_strings: vec![],
        seed: 0,
    };
    assert!(matches!(p.generate(&[bad]), Err(PolicyError::Input(_))));
    let too_long = TrainBatch {
        tokens: vec![(0..300).collect()],
    };
    assert!(p.forward_train(&too_long).is_err());
}

#[test]
fn non_finite_loss_skips_the_step_and_changes_nothing() {
    let (tok, s, p) = tiny();
    let mut opt = PolicyOptimizer::new(&p, &s).unwrap();
    let before = p.snapshot().unwrap();
    let f = p
        .forward_train(&TrainBatch {
            tokens: vec![prompt(&tok)],
        })
        .unwrap();
    let loss = (f.logprobs.sum_all().unwrap() * f64::NAN).unwrap();
    let stats = opt.step(&loss).unwrap();
    assert!(stats.skipped && !stats.grad_norm.is_finite());
    assert_eq!(opt.step, 0);
    let after = p.snapshot().unwrap();
    for ((n, a), (_, b)) in before.tensors.iter().zip(&after.tensors) {
        let d = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{n} changed");
    }
    // A finite loss applies and moves the weights; generation sees the new weights.
    let g0 = p
        .generate(&[GenRequest {
            prompt: prompt(&tok),
            n: 1,
            max_new_tokens: 8,
            sampling: Sampling::greedy(),
            stop_strings: vec![],
            seed: 0,
        }])
        .unwrap();
    let f = p
        .forward_train(&TrainBatch {
            tokens: vec![prompt(&tok)],
        })
        .unwrap();
    let loss = f.logprobs.sum_all().unwrap().neg().unwrap();
    let s2 = ModelSection {
        lr: 0.05,
        ..s.clone()
    };
    let mut opt = PolicyOptimizer::new(&p, &s2).unwrap();
    for _ in 0..3 {
        let f = p
            .forward_train(&TrainBatch {
                tokens: vec![prompt(&tok)],
            })
            .unwrap();
        let stats = opt
            .step(&f.logprobs.sum_all().unwrap().neg().unwrap())
            .unwrap();
        assert!(!stats.skipped && stats.grad_norm > 0.0);
    }
    drop(loss);
    let g1 = p
        .generate(&[GenRequest {
            prompt: prompt(&tok),
            n: 1,
            max_new_tokens: 8,
            sampling: Sampling::greedy(),
            stop_strings: vec![],
            seed: 0,
        }])
        .unwrap();
    assert_ne!(g0, g1, "generation must use the updated weights");
}

fn total(p: &Policy) -> Vec<f32> {
    p.params()
        .vars()
        .iter()
        .flat_map(|v| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn checkpoints_round_trip_and_bad_files_name_file_and_tensor() {
    let (tok, s, p) = tiny();
    let mut opt = PolicyOptimizer::new(&p, &s).unwrap();
    let f = p
        .forward_train(&TrainBatch {
            tokens: vec![prompt(&tok)],
        })
        .unwrap();
    let loss = (f.logprobs.sum_all().unwrap().neg().unwrap()
        + f.values.sqr().unwrap().sum_all().unwrap())
    .unwrap();
    opt.step(&loss).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let state = serde_json::json!({"step": 5, "policy_version": 2, "rng": [1, 2, 3]});
    p.save_checkpoint(&ck, &opt, &state).unwrap();
    let (q, opt2, state2) = Policy::load_checkpoint(&ck, &s).unwrap();
    assert_eq!(state2, state);
    assert_eq!(opt2.step, 1);
    assert_eq!(total(&p), total(&q));
    // Continuing from the checkpoint gives the same next step as continuing in memory.
    let mut opt2 = opt2;
    let step = |p: &Policy, o: &mut PolicyOptimizer| {
        let f = p
            .forward_train(&TrainBatch {
                tokens: vec![prompt(&tok)],
            })
            .unwrap();
        o.step(
            &(f.logprobs.sum_all().unwrap().neg().unwrap()
                + f.values.sqr().unwrap().sum_all().unwrap())
            .unwrap(),
        )
        .unwrap()
    };
    step(&p, &mut opt);
    step(&q, &mut opt2);
    assert_eq!(total(&p), total(&q));
    // The folder is also a pretrained model folder.
    let as_hf = ModelSection {
        path: ck.display().to_string(),
        ..s.clone()
    };
    let r = Policy::from_section(
        &as_hf,
        &Tokenizer::load(&ck.join("tokenizer.json")).unwrap(),
        0,
    )
    .unwrap();
    assert_eq!(r.arch(), q.arch());

    // Mis-shaped, missing and extra tensors.
    let model = ck.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&model, &candle_core::Device::Cpu).unwrap();
    let name = "model.layers.1.mlp.up_proj.weight".to_owned();
    let good = tensors[&name].clone();
    let check = |tensors: &std::collections::HashMap<String, Tensor>, want: &str| {
        candle_core::safetensors::save(tensors, &model).unwrap();
        let err = Policy::from_section(&as_hf, &tok, 0)
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains(want),
            "{err}"
        );
    };
    tensors.insert(name.clone(), good.narrow(0, 0, 5).unwrap());
    check(&tensors, &name);
    tensors.remove(&name);
    check(&tensors, &name);
    tensors.insert(name.clone(), good);
    tensors.insert(
        "model.layers.9.extra".into(),
        Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap(),
    );
    check(&tensors, "model.layers.9.extra");
}

#[test]
fn bad_model_folders_and_configs_are_reported() {
    let (tok, s, p) = tiny();
    let dir = tempfile::tempdir().unwrap();
    let opt = PolicyOptimizer::new(&p, &s).unwrap();
    p.save_checkpoint(dir.path(), &opt, &serde_json::Value::Null)
        .unwrap();
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("\"qwen2\"", "\"llama\"")).unwrap();
    let hf = ModelSection {
        path: dir.path().display().to_string(),
        ..s.clone()
    };
    let err = Policy::from_section(&hf, &tok, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("llama"),
        "{err}"
    );
    std::fs::write(&cfg, &text).unwrap();
    // A tokenizer with more ids than the embedding has rows.
    let big = Tokenizer::build_for_corpus_sized(&corpus(), 2000).unwrap();
    if big.vocab_size() > tok.vocab_size() {
        let err = Policy::from_section(&hf, &big, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("embed_tokens"), "{err}");
    }
    // Config validation: CUDA without the feature, unknown preset, bad ranges.
    let mut issues = Issues::default();
    let bad = ModelSection {
        device: "cuda:0".into(),
        preset: "huge".into(),
        lr: -1.0,
        max_new_tokens: 5000,
        context_limit: 100,
        ..ModelSection::default()
    };
    bad.validate("model", &mut issues);
    let keys: Vec<&str> = issues.0.iter().map(|i| i.key.as_str()).collect();
    for k in ["model.preset", "model.lr", "model.max_new_tokens"] {
        assert!(keys.contains(&k), "{keys:?}");
    }
    assert_eq!(keys.contains(&"model.device"), !cfg!(feature = "cuda"));
    assert!(Config::load(None, &["model.device=\"gpu\"".into()]).is_err());
    assert!(Config::load(None, &[]).is_ok());
    assert!(Path::new(&hf.path).is_dir());
}
