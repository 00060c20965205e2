//! Constrained replies: decoding under a reply grammar only produces the grammar's replies, and
//! the training forward scores them under the same constrained distribution.

mod policy_common;

use std::sync::Arc;

use tsr::policy::{Finish, GenRequest, ReplyGrammar, Sampling, TrainBatch};

use policy_common::{prompt, tiny};

fn replies(tok: &tsr::policy::Tokenizer) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for a in ["Up", "Down", "Left", "Right"] {
        for text in [
            format!("<answer>{a}</answer>"),
            format!("<answer>{a} || Up</answer>"),
        ] {
            let mut ids = tok.encode(&text).unwrap();
            ids.push(tok.eos_id());
            out.push(ids);
        }
    }
    out
}

#[test]
fn constrained_decoding_yields_only_grammar_replies_scored_like_training() {
    let (tok, _, mut p) = tiny();
    let allowed = replies(&tok);
    let grammar = Arc::new(ReplyGrammar::new(&allowed));
    let req = GenRequest {
        prompt: prompt(&tok),
        n: 24,
        max_new_tokens: 30,
        sampling: Sampling {
            temperature: 1.5,
            ..Sampling::default()
        },
        stop_strings: Vec::new(),
        seed: 5,
    };
    // The untrained model alone writes no well-formed reply.
    let free = p.generate(std::slice::from_ref(&req)).unwrap();
    assert!(free[0].samples.iter().all(|s| !allowed.contains(&s.tokens)));
    p.set_reply_grammar(Some(grammar.clone()));
    let out = p.generate(std::slice::from_ref(&req)).unwrap();
    let mut distinct = std::collections::BTreeSet::new();
    for s in &out[0].samples {
        assert!(allowed.contains(&s.tokens), "{:?}", tok.decode(&s.tokens));
        assert_eq!(s.finish, Finish::Eos);
        distinct.insert(s.tokens.clone());
    }
    assert!(distinct.len() >= 4, "sampling still chooses: {distinct:?}");

    // Training forward on prompt + reply, constrained by the assistant mask: the reply's
    // log-probs equal those recorded while decoding; forced tokens have log-prob 0.
    let s = &out[0].samples[0];
    let row: Vec<u32> = req.prompt.iter().chain(&s.tokens).copied().collect();
    let mut mask = vec![0u8; req.prompt.len()];
    mask.resize(row.len(), 1);
    let batch = TrainBatch {
        tokens: vec![row.clone()],
    };
    let fwd = p
        .forward_train_constrained(&batch, Some(std::slice::from_ref(&mask)))
        .unwrap();
    let lp = fwd.logprobs.to_vec2::<f32>().unwrap();
    let reply_lp = &lp[0][req.prompt.len()..];
    for (i, (&got, &want)) in reply_lp.iter().zip(&s.logprobs).enumerate() {
        assert!((got - want).abs() < 1e-4, "token {i}: {got} vs {want}");
    }
    let choices = grammar.choice_mask(&row, &mask);
    for (i, &c) in choices.iter().enumerate().skip(req.prompt.len()) {
        if c == 0 {
            assert_eq!(lp[0][i], 0.0, "forced token {i}");
        } else {
            assert!(lp[0][i] < 0.0, "choice token {i}");
        }
    }
    // Two choices per reply here: which action, then whether a second one follows.
    assert_eq!(choices.iter().filter(|&&c| c == 1).count(), 2);
    // The unconstrained forward scores the same tokens lower (mass outside the grammar).
    let plain = p
        .forward_train(&batch)
        .unwrap()
        .logprobs
        .to_vec2::<f32>()
        .unwrap();
    let sum = |v: &[f32]| v[req.prompt.len()..].iter().sum::<f32>();
    assert!(sum(&plain[0]) < sum(&lp[0]) - 1.0);
}
