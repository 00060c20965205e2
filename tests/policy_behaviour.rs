//! Behaviour of the policy beyond the reference vectors: gradients reach every tensor,
//! from-scratch tokenizers, sampling, checkpoints and errors on bad input.

mod policy_common;

use tsr::policy::{
    ChatMessage, Finish, GenRequest, ModelSection, Policy, PolicyError, PolicyOptimizer, Sampling,
    Tokenizer, TrainBatch,
};

use policy_common::{corpus, prompt, tiny};

#[test]
fn built_tokenizer_keeps_one_token_per_grid_cell() {
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    // The corpus repeats these rows 40 times, so a plain BPE would learn them as single tokens.
    for row in ["#####", "#P.X#", "#..O#"] {
        assert_eq!(tok.encode(row).unwrap().len(), row.chars().count(), "{row}");
    }
    assert_eq!(tok.encode("#P.X#\n#..O#\n").unwrap().len(), 12);
    // Words still merge: an action name is one token.
    assert_eq!(tok.encode("Right").unwrap().len(), 1);
    assert_eq!(tok.encode(" Down").unwrap().len(), 1);
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
    for preset in ["tiny", "mini", "small"] {
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

#[test]
fn next_turn_prefills_only_what_it_added_and_samples_as_a_whole_prefill() {
    let (tok, s, mut p) = tiny();
    let uncached = ModelSection {
        prompt_cache_entries: 0,
        ..s.clone()
    };
    let fresh = Policy::from_section(&uncached, &tok, 3).unwrap();
    let req = |prompt: &[u32]| GenRequest {
        prompt: prompt.to_vec(),
        n: 3,
        max_new_tokens: 6,
        sampling: Sampling::default(),
        stop_strings: vec![],
        seed: 11,
    };
    let first = prompt(&tok);
    let turn1 = p.generate(&[req(&first)]).unwrap();
    assert_eq!(p.prompt_tokens_reused(), 0);
    // The next turn's prompt: the first, one committed reply, and a new user message.
    let mut second = first.clone();
    second.extend(&turn1[0].samples[0].tokens);
    let next_user = Tokenizer::chat_text(
        &[ChatMessage {
            role: "user".into(),
            content: "#####\n#.PX#\nWhich action?".into(),
        }],
        true,
    );
    second.extend(tok.encode(&next_user).unwrap());
    let cached = p.generate(&[req(&second)]).unwrap();
    assert_eq!(p.prompt_tokens_reused(), first.len() as u64);
    let whole = fresh.generate(&[req(&second)]).unwrap();
    assert_eq!(fresh.prompt_tokens_reused(), 0);
    for (a, b) in cached[0].samples.iter().zip(&whole[0].samples) {
        assert_eq!(a.tokens, b.tokens);
        for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }
    // New weights: the caches of the old ones are never reused.
    let other = Policy::from_section(&s, &tok, 4).unwrap();
    p.load_weights(&other.snapshot().unwrap()).unwrap();
    let mut third = second.clone();
    third.extend(tok.encode(&next_user).unwrap());
    p.generate(&[req(&third)]).unwrap();
    assert_eq!(p.prompt_tokens_reused(), first.len() as u64);
}

#[test]
fn sample_each_answers_every_request_as_sample_would() {
    use tsr::search::Sampler;
    use tsr::train::serial::PolicySampler;
    let (tok, _, p) = tiny();
    let mut sampler = PolicySampler {
        policy: &p,
        sampling: Sampling::default(),
        max_new_tokens: 6,
        version: 0,
    };
    let a = prompt(&tok);
    let b = tok
        .encode(&Tokenizer::chat_text(
            &[ChatMessage {
                role: "user".into(),
                content: "Goal at row 3. Moves?".into(),
            }],
            true,
        ))
        .unwrap();
    let together = sampler.sample_each(&[(&a, 2, 5), (&b, 3, 7)]).unwrap();
    let one_by_one = [
        sampler.sample(&a, 2, 5).unwrap(),
        sampler.sample(&b, 3, 7).unwrap(),
    ];
    assert_eq!(together.len(), 2);
    for (x, y) in together.iter().zip(&one_by_one) {
        assert_eq!(x.len(), y.len());
        for (cx, cy) in x.iter().zip(y) {
            assert_eq!(cx.tokens, cy.tokens);
        }
    }
}

#[test]
fn decoding_a_model_with_large_weights_agrees_with_the_full_forward() {
    // `small`'s weights are large enough that decode-sized products (2-8 rows) take the
    // streaming decode kernel instead of gemm: the cached paths that use it must give the
    // training forward's log-probs (f32 rounding: abs 1e-4, as the conformance tests allow).
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    let s = ModelSection {
        preset: "small".into(),
        context_limit: 128,
        max_new_tokens: 10,
        ..ModelSection::default()
    };
    let p = Policy::from_section(&s, &tok, 3).unwrap();
    let ids = prompt(&tok);
    let full = p
        .forward_train(&TrainBatch {
            tokens: vec![ids.clone()],
        })
        .unwrap();
    let full: Vec<f32> = full.logprobs.flatten_all().unwrap().to_vec1().unwrap();
    for chunk in [2, 3, 4, 8] {
        let inc = p.incremental_logprobs(&ids, chunk).unwrap();
        let d = inc
            .iter()
            .zip(&full)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-4, "chunks of {chunk}: {d}");
    }
    let req = GenRequest {
        prompt: ids.clone(),
        n: 6,
        max_new_tokens: 10,
        sampling: Sampling {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            greedy: false,
        },
        stop_strings: Vec::new(),
        seed: 5,
    };
    let out = p.generate(std::slice::from_ref(&req)).unwrap();
    for s in &out[0].samples {
        let row = [ids.clone(), s.tokens.clone()].concat();
        let f = p.forward_train(&TrainBatch { tokens: vec![row] }).unwrap();
        let f: Vec<f32> = f.logprobs.flatten_all().unwrap().to_vec1().unwrap();
        let d = s
            .logprobs
            .iter()
            .zip(&f[ids.len()..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-4, "forked sample vs full forward: {d}");
    }
}
