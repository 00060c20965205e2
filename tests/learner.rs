//! The learner on hand-made episodes: an update raises the likelihood of the replies that did
//! better than their group and lowers the others; PPO's critic moves toward the returns.

use tsr::algo::AlgoConfig;
use tsr::policy::{ModelSection, Policy, PolicyOptimizer, Tokenizer, TrainBatch};
use tsr::search::{Episode, EpisodeSpec, SearchCounts};
use tsr::train::learner::Learner;

const REPLIES: [&str; 4] = [
    "<answer>Up</answer>",
    "<answer>Down</answer>",
    "<answer>Left</answer>",
    "<answer>Right</answer>",
];

fn learner(kind: &str) -> Learner {
    learner_with_lr(kind, 3e-3)
}

fn learner_with_lr(kind: &str, lr: f64) -> Learner {
    let corpus: Vec<String> = (0..50)
        .map(|i| format!("grid {i} ____ PO_G {}", REPLIES[i % 4]))
        .collect();
    let tok = Tokenizer::build_for_corpus_sized(&corpus, 300).expect("tokenizer");
    let section = ModelSection {
        lr,
        critic_lr: 1e-2,
        ..ModelSection::default()
    };
    let policy = Policy::from_section(&section, &tok, 7).expect("policy");
    let optimizer = PolicyOptimizer::new(&policy, &section).expect("optimizer");
    let algo = AlgoConfig {
        kind: kind.into(),
        filter_ratio: 1.0,
        entropy_coef: 0.0,
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

fn episodes(l: &Learner, returns: &[f64]) -> Vec<Episode> {
    let tok = l.policy.tokenizer();
    let prompt = tok
        .encode("<|im_start|>user\ngrid ____ PO_G<|im_end|>\n<|im_start|>assistant\n")
        .expect("encode");
    returns
        .iter()
        .enumerate()
        .map(|(i, &ret)| {
            let mut reply = tok.encode(REPLIES[i]).expect("encode");
            reply.push(tok.eos_id());
            let tokens: Vec<u32> = prompt.iter().chain(&reply).copied().collect();
            let mask: Vec<u8> = prompt
                .iter()
                .map(|_| 0)
                .chain(reply.iter().map(|_| 1))
                .collect();
            Episode {
                spec: EpisodeSpec {
                    id: i as u64,
                    group: 0,
                    env_seed: 0,
                    sample_seed: 0,
                },
                token_version: vec![0; tokens.len()],
                tokens,
                assistant_mask: mask,
                turns: vec![],
                ret,
                success: ret > 0.5,
                format_errors: 0,
                generated_tokens: reply.len(),
                search: SearchCounts::default(),
                truncated: false,
                seconds: 0.0,
                optimal_len: None,
            }
        })
        .collect()
}

/// Sum of the assistant tokens' log-probs of each episode under the current weights.
fn reply_logprobs(l: &Learner, eps: &[Episode]) -> Vec<f64> {
    let batch = TrainBatch {
        tokens: eps.iter().map(|e| e.tokens.clone()).collect(),
    };
    let fwd = l.policy.forward_train(&batch).expect("forward");
    let rows = fwd.logprobs.to_vec2::<f32>().expect("logprobs");
    eps.iter()
        .zip(rows)
        .map(|(e, row)| {
            e.assistant_mask
                .iter()
                .zip(row)
                .map(|(&m, lp)| m as f64 * lp as f64)
                .sum()
        })
        .collect()
}

#[test]
fn grpo_update_moves_probability_toward_the_better_reply() {
    let mut l = learner("grpo");
    let eps = episodes(&l, &[1.0, 0.0, 0.0, 0.0]);
    let before = reply_logprobs(&l, &eps);
    let report = l.update(&eps).expect("update");
    let after = reply_logprobs(&l, &eps);
    assert_eq!(report.episodes_trained, 4);
    assert_eq!(l.version, 1);
    assert!(
        after[0] > before[0],
        "the rewarded reply got likelier: {} -> {}",
        before[0],
        after[0]
    );
    for i in 1..4 {
        assert!(
            after[i] - before[i] < after[0] - before[0],
            "reply {i} gained less than the rewarded one"
        );
    }
}

#[test]
fn groups_with_equal_returns_teach_nothing() {
    let mut l = learner("grpo");
    let eps = episodes(&l, &[0.5, 0.5, 0.5, 0.5]);
    let before = reply_logprobs(&l, &eps);
    let report = l.update(&eps).expect("update");
    let after = reply_logprobs(&l, &eps);
    assert_eq!(report.mean_advantage_abs, 0.0);
    for (b, a) in before.iter().zip(&after) {
        // AdamW with zero gradient and zero weight decay leaves the weights as they were.
        assert!((a - b).abs() < 1e-4, "{b} -> {a}");
    }
}

#[test]
fn ppo_critic_learns_the_returns() {
    let mut l = learner("ppo");
    let eps = episodes(&l, &[1.0, 0.0, 1.0, 0.0]);
    let first = l.update(&eps).expect("update").value_loss;
    let mut last = first;
    for _ in 0..30 {
        last = l.update(&eps).expect("update").value_loss;
    }
    assert!(first.is_finite() && last.is_finite());
    assert!(last < first * 0.6, "value loss fell from {first} to {last}");
}

#[test]
fn ppo_value_coef_weights_the_critic_loss() {
    let head = |l: &Learner| -> Vec<f32> {
        let w = l
            .policy
            .params()
            .get("value_head.weight")
            .expect("value head");
        w.flatten_all()
            .expect("flat")
            .to_vec1::<f32>()
            .expect("vec")
    };
    for (coef, moves) in [(0.0, false), (1.0, true)] {
        let mut l = learner("ppo");
        l.algo.value_coef = coef;
        let eps = episodes(&l, &[1.0, 0.0, 1.0, 0.0]);
        let before = head(&l);
        l.update(&eps).expect("update");
        assert_eq!(
            head(&l) != before,
            moves,
            "value_coef {coef}: the critic head should move only when its loss counts"
        );
    }
}

#[test]
fn trajectory_selection_trains_the_half_farthest_from_the_group_mean() {
    let mut l = learner("grpo");
    let eps = episodes(&l, &[1.0, 0.0, 0.0, 0.0]);
    assert_eq!(l.update(&eps).expect("update").episodes_trained, 4);
    l.select_half = true;
    let report = l.update(&eps).expect("update");
    assert_eq!(report.episodes_trained, 2, "half of the group");
    // The rewarded episode is the farthest from the mean (0.25), so it is always kept; its
    // advantage is positive, so the update still moves toward it.
    assert!(report.mean_advantage_abs > 0.0);
}

#[test]
fn minibatches_split_one_update_into_several_optimizer_steps() {
    // Every episode twice, in the order e0 e0 e1 e1 ...: the strided minibatches of two are
    // each exactly the original batch, so one epoch of two minibatches must equal two epochs
    // over the original batch (both keep the old log-probs of before the update).
    let returns = [1.0, 0.0, 0.0, 0.0];
    let setup = |minibatches: usize, ppo_epochs: usize| {
        let mut l = learner_with_lr("grpo", 1e-4);
        // Group means are equal with and without the duplicates; the unbiased std is not.
        l.algo.grpo_norm_by_std = false;
        l.algo.minibatches = minibatches;
        l.algo.ppo_epochs = ppo_epochs;
        l
    };
    let mut twice = setup(1, 2);
    let eps = episodes(&twice, &returns);
    let report = twice.update(&eps).expect("update");
    assert_eq!(report.optimizer_steps, 2);

    let mut split = setup(2, 1);
    let doubled: Vec<Episode> = eps.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
    let report = split.update(&doubled).expect("update");
    assert_eq!((report.optimizer_steps, report.episodes_trained), (2, 8));
    assert_eq!(split.version, 1, "one update is one policy version");

    let (a, b) = (reply_logprobs(&twice, &eps), reply_logprobs(&split, &eps));
    let before = reply_logprobs(&setup(1, 1), &eps);
    for i in 0..4 {
        assert!(
            (a[i] - b[i]).abs() < 1e-3,
            "reply {i}: {} vs {}",
            a[i],
            b[i]
        );
    }
    assert!(
        a[0] - before[0] > 0.1,
        "the update moved the rewarded reply"
    );

    // More minibatches than episodes: one episode per optimizer step.
    let mut capped = setup(16, 1);
    assert_eq!(capped.update(&eps).expect("update").optimizer_steps, 4);
}

#[test]
fn a_schedule_sets_the_learning_rate_of_each_update() {
    // Update k runs at the schedule's rate for version k: ten warm-up updates from 3e-3 make the
    // first update exactly a constant-rate update at 3e-4 and the second one at 6e-4.
    use tsr::policy::{LrSchedule, ScheduleKind};
    let returns = [1.0, 0.0, 0.0, 0.0];
    let mut scheduled = learner_with_lr("grpo", 3e-3);
    scheduled.lr_schedule = LrSchedule {
        kind: ScheduleKind::Linear,
        lr: 3e-3,
        critic_lr: 1e-2,
        warmup: 10,
        total: 100,
        min_ratio: 0.1,
    };
    let mut slow = learner_with_lr("grpo", 3e-4);
    let mut fast = learner_with_lr("grpo", 3e-3);
    let eps = episodes(&scheduled, &returns);
    for l in [&mut scheduled, &mut slow, &mut fast] {
        l.update(&eps).expect("update");
    }
    let (s, c, f) = (
        reply_logprobs(&scheduled, &eps),
        reply_logprobs(&slow, &eps),
        reply_logprobs(&fast, &eps),
    );
    assert!((s[0] - c[0]).abs() < 1e-5, "{} vs {}", s[0], c[0]);
    assert!(
        (f[0] - s[0]).abs() > 1e-3,
        "the base rate would move it further"
    );

    slow.optimizer.set_lrs(6e-4, 1e-2);
    let mut resumed = slow;
    scheduled.update(&eps).expect("second update");
    resumed.update(&eps).expect("second update");
    let (s2, r2) = (
        reply_logprobs(&scheduled, &eps),
        reply_logprobs(&resumed, &eps),
    );
    assert!((s2[0] - r2[0]).abs() < 1e-5, "{} vs {}", s2[0], r2[0]);
}
