//! The whole loop on a problem small enough to learn in seconds: one prompt, replies sampled from
//! the policy, reward 1 when the reply names "Right". GRPO must make "Right" the usual answer.
//! If sampling, the sequence layout, the advantages or the update were wrong, it would not.

use std::sync::Arc;
use tsr::algo::AlgoConfig;

use tsr::policy::{
    GenRequest, ModelSection, Policy, PolicyOptimizer, ReplyGrammar, Sampling, Tokenizer,
};
use tsr::search::{Episode, EpisodeSpec, SearchCounts};
use tsr::train::learner::Learner;

const ACTIONS: [&str; 4] = ["Up", "Down", "Left", "Right"];

#[test]
fn grpo_learns_a_one_turn_bandit_from_its_own_samples() {
    let corpus: Vec<String> = (0..200)
        .map(|i| format!("<answer>{}</answer> state {i}", ACTIONS[i % 4]))
        .collect();
    let tok = Tokenizer::build_for_corpus_sized(&corpus, 320).expect("tokenizer");
    let mut learner = grpo_learner(&tok, 3, None, "seq-mean-token-mean");
    let prompt = tok
        .encode("<|im_start|>user\nstate<|im_end|>\n<|im_start|>assistant\n")
        .expect("prompt");
    let share_right = |learner: &Learner, seed: u64| -> f64 {
        let req = GenRequest {
            prompt: prompt.clone(),
            n: 64,
            max_new_tokens: 8,
            sampling: Sampling::default(),
            stop_strings: vec![],
            seed,
        };
        let out = learner.policy.generate(&[req]).expect("generate");
        let texts: Vec<String> = out[0]
            .samples
            .iter()
            .map(|s| tok.decode(&s.tokens))
            .collect();
        texts.iter().filter(|t| t.contains("Right")).count() as f64 / texts.len() as f64
    };
    let before = share_right(&learner, 999);
    for step in 0..40u64 {
        let req = GenRequest {
            prompt: prompt.clone(),
            n: 16,
            max_new_tokens: 8,
            sampling: Sampling::default(),
            stop_strings: vec![],
            seed: step,
        };
        let out = learner.policy.generate(&[req]).expect("generate");
        let episodes: Vec<Episode> = out[0]
            .samples
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let ret = if tok.decode(&s.tokens).contains("Right") {
                    1.0
                } else {
                    0.0
                };
                let mut ep = episode(&prompt, &s.tokens, ret, learner.version);
                ep.spec.id = i as u64;
                ep
            })
            .collect();
        learner.update(&episodes).expect("update");
    }
    let after = share_right(&learner, 999);
    assert!(
        after > 0.8 && after > before + 0.3,
        "share of \"Right\" went from {before:.2} to {after:.2}"
    );
}

#[test]
fn published_weights_make_the_inference_copy_sample_like_the_learner() {
    let corpus: Vec<String> = (0..100)
        .map(|i| format!("<answer>{}</answer> {i}", ACTIONS[i % 4]))
        .collect();
    let tok = Tokenizer::build_for_corpus_sized(&corpus, 300).expect("tokenizer");
    let section = ModelSection {
        lr: 1e-2,
        max_new_tokens: 6,
        ..ModelSection::default()
    };
    let learner_policy = Policy::from_section(&section, &tok, 1).expect("policy");
    let mut inference = Policy::from_section(&section, &tok, 2).expect("policy");
    let mut optimizer = PolicyOptimizer::new(&learner_policy, &section).expect("optimizer");
    let prompt = tok.encode("<answer>").expect("prompt");
    let sample = |p: &Policy| -> Vec<Vec<u32>> {
        let req = GenRequest {
            prompt: prompt.clone(),
            n: 8,
            max_new_tokens: 6,
            sampling: Sampling::default(),
            stop_strings: vec![],
            seed: 5,
        };
        p.generate(&[req]).expect("generate")[0]
            .samples
            .iter()
            .map(|s| s.tokens.clone())
            .collect()
    };
    inference
        .load_weights(&learner_policy.snapshot().expect("snapshot"))
        .expect("load");
    assert_eq!(sample(&inference), sample(&learner_policy));
    // One optimizer step on the learner: the inference copy only follows once published.
    let batch = tsr::policy::TrainBatch {
        tokens: vec![tok.encode("<answer>Right</answer>").expect("ids")],
    };
    let loss = learner_policy
        .forward_train(&batch)
        .expect("fwd")
        .logprobs
        .sum_all()
        .expect("sum")
        .neg()
        .expect("neg");
    optimizer.step(&loss).expect("step");
    let trained = sample(&learner_policy);
    inference
        .load_weights(&learner_policy.snapshot().expect("snapshot"))
        .expect("load");
    assert_eq!(
        sample(&inference),
        trained,
        "after publishing, the copy samples what the learner would"
    );
}

/// The answer must depend on the prompt: each of four prompts (of different lengths, so
/// batched decoding pads them and the training batch pads them) rewards a different action.
/// A policy that ignored its prompt, or a padding or position error between decoding and
/// training, would stay near 25% correct.
///
/// Three runs differing only in the initial weights: one run's outcome moves with float
/// rounding (a different exp or matmul order changes which rare tokens are drawn, and 60
/// updates amplify it), so the claim is made for the typical run, the median.
#[test]
fn grpo_learns_a_contextual_bandit_with_prompts_of_different_lengths() {
    let runs: Vec<(f64, f64)> = [4, 5, 6]
        .iter()
        .map(|&seed| contextual_bandit(seed))
        .collect();
    let mut after: Vec<f64> = runs.iter().map(|r| r.1).collect();
    after.sort_by(f64::total_cmp);
    for (before, after) in &runs {
        assert!(
            after - before > 0.3,
            "a run only went from {before:.2} to {after:.2} correct: {runs:?}"
        );
    }
    assert!(
        after[1] > 0.8,
        "median share of replies naming the prompt's action is {:.2}: {runs:?}",
        after[1]
    );
}

/// Share of correct replies before and after 60 GRPO updates from initial weights `seed`.
fn contextual_bandit(seed: u64) -> (f64, f64) {
    let goals = [
        ("go Up", "Up"),
        ("now please go Down", "Down"),
        ("Left", "Left"),
        ("the goal is to the Right of you", "Right"),
    ];
    let corpus: Vec<String> = (0..200)
        .map(|i| format!("<answer>{}</answer> {} {i}", ACTIONS[i % 4], goals[i % 4].0))
        .collect();
    let tok = Tokenizer::build_for_corpus_sized(&corpus, 320).expect("tokenizer");
    // Replies are constrained to `<answer>A</answer>` as with `train.constrained_reply`: the
    // only thing to learn is which action, so success means the prompt was read.
    let replies: Vec<Vec<u32>> = ACTIONS
        .iter()
        .map(|a| {
            let mut ids = tok.encode(&format!("<answer>{a}</answer>")).expect("reply");
            ids.push(tok.eos_id());
            ids
        })
        .collect();
    let grammar = Arc::new(ReplyGrammar::new(&replies));
    let mut learner = grpo_learner(&tok, seed, Some(grammar), "token-mean");
    let prompts: Vec<Vec<u32>> = goals
        .iter()
        .map(|(text, _)| {
            tok.encode(&format!(
                "<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
            ))
            .expect("prompt")
        })
        .collect();
    let play = |learner: &Learner, n: usize, seed: u64| -> Vec<Vec<(Vec<u32>, bool)>> {
        let reqs: Vec<GenRequest> = prompts
            .iter()
            .enumerate()
            .map(|(g, p)| GenRequest {
                prompt: p.clone(),
                n,
                max_new_tokens: 8,
                sampling: Sampling::default(),
                stop_strings: vec![],
                seed: seed * 10 + g as u64,
            })
            .collect();
        let out = learner.policy.generate(&reqs).expect("generate");
        out.iter()
            .zip(&goals)
            .map(|(o, (_, want))| {
                o.samples
                    .iter()
                    .map(|s| {
                        let text = tok.decode(&s.tokens);
                        let only_want = text.contains(want)
                            && ACTIONS.iter().filter(|a| text.contains(**a)).count() == 1;
                        (s.tokens.clone(), only_want)
                    })
                    .collect()
            })
            .collect()
    };
    let correct = |learner: &Learner| -> f64 {
        let groups = play(learner, 32, 999);
        let hits: usize = groups.iter().flatten().filter(|(_, ok)| *ok).count();
        hits as f64 / (32 * goals.len()) as f64
    };
    let before = correct(&learner);
    for step in 0..60u64 {
        let mut episodes = Vec::new();
        for (g, group) in play(&learner, 8, step).into_iter().enumerate() {
            for (tokens, ok) in group {
                let ret = if ok { 1.0 } else { 0.0 };
                let mut ep = episode(&prompts[g], &tokens, ret, learner.version);
                ep.spec.group = g;
                ep.spec.id = episodes.len() as u64;
                episodes.push(ep);
            }
        }
        learner.update(&episodes).expect("update");
    }
    (before, correct(&learner))
}

/// A GRPO learner on a fresh `tiny`-default policy: no filtering, no entropy bonus.
fn grpo_learner(
    tok: &Tokenizer,
    seed: u64,
    grammar: Option<Arc<ReplyGrammar>>,
    loss_agg: &str,
) -> Learner {
    let section = ModelSection {
        lr: 1e-3,
        max_new_tokens: 8,
        ..ModelSection::default()
    };
    let mut policy = Policy::from_section(&section, tok, seed).expect("policy");
    policy.set_reply_grammar(grammar);
    let optimizer = PolicyOptimizer::new(&policy, &section).expect("optimizer");
    let algo = AlgoConfig {
        kind: "grpo".into(),
        filter_ratio: 1.0,
        entropy_coef: 0.0,
        loss_agg: loss_agg.into(),
        ..AlgoConfig::default()
    };
    Learner {
        policy,
        optimizer,
        algo,
        version: 0,
        reference: None,
        select_half: false,
        lr_schedule: tsr::policy::LrSchedule::constant(),
    }
}

/// A one-turn episode: the prompt, then the reply (the only trained tokens).
fn episode(prompt: &[u32], reply: &[u32], ret: f64, version: u64) -> Episode {
    let tokens: Vec<u32> = prompt.iter().chain(reply).copied().collect();
    let mask = prompt
        .iter()
        .map(|_| 0)
        .chain(reply.iter().map(|_| 1))
        .collect();
    Episode {
        spec: EpisodeSpec {
            id: 0,
            group: 0,
            env_seed: 0,
            sample_seed: 0,
        },
        token_version: vec![version; tokens.len()],
        tokens,
        assistant_mask: mask,
        turns: vec![],
        ret,
        success: ret > 0.0,
        format_errors: 0,
        generated_tokens: reply.len(),
        search: SearchCounts::default(),
        truncated: false,
        seconds: 0.0,
        optimal_len: None,
    }
}
