//! Choosing the next token from logits: greedy, temperature, top-k, top-p, each draw from the
//! sample's own seeded RNG.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a request's tokens are drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Divides the logits before softmax; ignored when `greedy`.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches this mass; 1 = off.
    pub top_p: f32,
    /// Keep the k most likely tokens; 0 = off.
    pub top_k: usize,
    /// Take the most likely token (lowest id on ties); no randomness.
    pub greedy: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            greedy: false,
        }
    }
}

impl Sampling {
    pub fn greedy() -> Sampling {
        Sampling {
            greedy: true,
            ..Sampling::default()
        }
    }
}

/// `log_softmax(logits)[token]` at temperature 1 (the quantity the training forward computes).
pub fn logprob_of(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = logits
        .iter()
        .map(|&z| ((z - max) as f64).exp())
        .sum::<f64>()
        .ln() as f32
        + max;
    logits[token as usize] - lse
}

/// Draw one token. One uniform is consumed per call unless greedy, so a sample's stream of
/// draws depends only on its own seed and its own tokens.
pub fn sample(logits: &[f32], s: &Sampling, rng: &mut ChaCha8Rng) -> u32 {
    let argmax = || {
        let mut best = 0;
        for (i, &z) in logits.iter().enumerate() {
            if z > logits[best] {
                best = i;
            }
        }
        best as u32
    };
    if s.greedy || s.temperature <= 0.0 {
        return argmax();
    }
    let u: f64 = rng.random_range(0.0..1.0);
    let t = s.temperature as f64;
    if s.top_k == 0 && s.top_p >= 1.0 {
        // No truncation: walk the ids in order, no sort needed.
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let weights: Vec<f64> = logits
            .iter()
            .map(|&z| ((z as f64 - max) / t).exp())
            .collect();
        let target = u * weights.iter().sum::<f64>();
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            if target < acc {
                return i as u32;
            }
        }
        return argmax();
    }
    // Candidates sorted by logit (descending, id ascending on ties) so truncation is stable.
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if s.top_k > 0 && s.top_k < order.len() {
        order.truncate(s.top_k);
    }
    let max = logits[order[0] as usize] as f64;
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i as usize] as f64 - max) / t).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if s.top_p < 1.0 {
        let mut mass = 0.0;
        let mut keep = probs.len();
        for (i, p) in probs.iter().enumerate() {
            mass += p;
            if mass >= s.top_p as f64 {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        order.truncate(keep);
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
    }
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return order[i];
        }
    }
    *order.last().unwrap_or(&0)
}
