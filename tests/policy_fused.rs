//! The fused CPU ops (hand-written backward) against the composite candle ops: same values,
//! same gradient for every parameter, on padded batches with GQA.

use tsr::policy::{ModelSection, Policy, Tokenizer, TrainBatch};

fn corpus() -> Vec<String> {
    (0..30)
        .map(|i| format!("#####\n#P.X#\nturn {i}: <answer>Left</answer> and Right"))
        .collect()
}

/// The gradient of every parameter, in `params().vars()` order.
fn param_grads(p: &Policy, grads: &candle_core::backprop::GradStore) -> Vec<Vec<f32>> {
    p.params()
        .vars()
        .iter()
        .map(|v| {
            grads
                .get(v.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

fn grads_and_outputs(p: &Policy, batch: &TrainBatch, fused: bool) -> (Vec<Vec<f32>>, Vec<f32>) {
    p.set_fused_ops(fused);
    let f = p.forward_train(batch).unwrap();
    // Weights chosen so every output (and both entropy branches) reaches the loss.
    let loss = ((f.logprobs.sum_all().unwrap() + (f.entropy.sum_all().unwrap() * 0.3).unwrap())
        .unwrap()
        + (f.values.sum_all().unwrap() * 0.7).unwrap())
    .unwrap();
    let g = param_grads(p, &loss.backward().unwrap());
    let mut outs = Vec::new();
    for t in [&f.logprobs, &f.entropy, &f.values] {
        outs.extend(t.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }
    (g, outs)
}

fn max(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

fn assert_fused_matches_composite(p: &Policy, batch: &TrainBatch) {
    let (gf, of) = grads_and_outputs(p, batch, true);
    let (gc, oc) = grads_and_outputs(p, batch, false);
    assert!(max(&of, &oc) < 2e-4, "outputs differ by {}", max(&of, &oc));
    for ((name, a), b) in p.params().names().iter().zip(&gf).zip(&gc) {
        let scale = b.iter().map(|x| x.abs()).fold(1e-3f32, f32::max);
        let d = max(a, b);
        assert!(
            d <= 1e-3 * scale,
            "{name}: gradient differs by {d} (scale {scale})"
        );
    }
}

/// The default `tiny` preset with room for 150-token rows.
fn tiny_policy(seed: u64) -> (Tokenizer, Policy) {
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    let s = ModelSection {
        context_limit: 256,
        ..ModelSection::default()
    };
    let p = Policy::from_section(&s, &tok, seed).unwrap();
    (tok, p)
}

#[test]
fn fused_ops_match_composite_values_and_gradients() {
    let (tok, p) = tiny_policy(5);
    let row = tok.encode(&corpus()[3]).unwrap();
    // A row longer than two causal blocks of the fused attention (64 query rows each), so the
    // blocks' partial key gradients are summed.
    let long: Vec<u32> = corpus()[..12]
        .iter()
        .flat_map(|c| tok.encode(c).unwrap())
        .take(150)
        .collect();
    assert!(long.len() > 2 * 64, "long row of {} tokens", long.len());
    let batch = TrainBatch {
        tokens: vec![row.clone(), row[..7].to_vec(), row[2..].to_vec(), long],
    };
    assert_fused_matches_composite(&p, &batch);
    // Left padding through the fused attention: real rows equal the unpadded run.
    let n = row.len();
    let pad = tok.pad_id();
    let padded = vec![
        vec![pad, pad, pad]
            .into_iter()
            .chain(row[..n - 3].iter().copied())
            .collect::<Vec<_>>(),
    ];
    let pos = vec![
        (0..n as u32)
            .map(|i| i.saturating_sub(3))
            .collect::<Vec<_>>(),
    ];
    let real = vec![(0..n).map(|i| i >= 3).collect::<Vec<_>>()];
    p.set_fused_ops(true);
    let a = p
        .lm_head(&p.forward_full(&padded, &pos, &real, false).unwrap().normed)
        .unwrap();
    let b = p.logits_full(&[row[..n - 3].to_vec()]).unwrap();
    let a = a
        .narrow(1, 3, n - 3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!(max(&a, &b) < 1e-4);
}

#[test]
fn a_second_backward_over_the_same_graph_gives_the_same_gradients() {
    // The fused decoder layer hands its saved activations to the first backward; a second
    // backward must recompute them, not fail or use stale buffers.
    let tok = Tokenizer::build_for_corpus(&corpus()).unwrap();
    let s = ModelSection {
        context_limit: 64,
        ..ModelSection::default()
    };
    let p = Policy::from_section(&s, &tok, 9).unwrap();
    p.set_fused_ops(true);
    let row = tok.encode(&corpus()[1]).unwrap();
    let batch = TrainBatch {
        tokens: vec![row.clone(), row[..9].to_vec()],
    };
    let f = p.forward_train(&batch).unwrap();
    let loss = (f.logprobs.sum_all().unwrap() + f.values.sum_all().unwrap()).unwrap();
    let first = param_grads(&p, &loss.backward().unwrap());
    let second = param_grads(&p, &loss.backward().unwrap());
    assert!(first.iter().flatten().any(|g| *g != 0.0));
    assert_eq!(first, second);
}

/// A training batch large enough that the fused ops split their rows across threads (RMSNorm,
/// SiLU-gate and RoPE go parallel from 2^18 elements: 2048 tokens of `tiny`'s 128-wide rows),
/// run in a two-thread pool whatever the machine: the split gives the composite's gradients.
#[test]
fn fused_ops_split_across_threads_match_composite() {
    let (tok, p) = tiny_policy(9);
    let words: Vec<u32> = corpus()
        .iter()
        .cycle()
        .take(40)
        .flat_map(|c| tok.encode(c).unwrap())
        .collect();
    let tokens: Vec<Vec<u32>> = (0..18)
        .map(|i| words[i * 7..i * 7 + 130 - i].to_vec())
        .collect();
    let n: usize = tokens.iter().map(Vec::len).sum();
    assert!(n * 128 >= 1 << 18, "{n} tokens");
    let batch = TrainBatch { tokens };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    pool.install(|| assert_fused_matches_composite(&p, &batch));
}
