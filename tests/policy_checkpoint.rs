//! Checkpoints and bad model folders: round trips, resumption, and errors that name the file
//! and tensor.

mod policy_common;

use std::path::Path;

use candle_core::Tensor;
use tsr::config::{Config, Issues, Section};
use tsr::policy::{ModelSection, Policy, PolicyOptimizer, Tokenizer, TrainBatch};

use policy_common::{corpus, prompt, tiny};

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
    // An absurd shape is refused before any tensor list is built.
    std::fs::write(
        &cfg,
        text.replace(
            "\"num_hidden_layers\": ",
            "\"num_hidden_layers\": 1000000000000, \"x\": ",
        ),
    )
    .unwrap();
    let err = Policy::from_section(&hf, &tok, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("num_hidden_layers"),
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
