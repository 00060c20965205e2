//! The differentiable forward the trainer's losses are built on.

use candle_core::{D, DType, Tensor};

use super::grammar::{ReplyGrammar, Step};
use super::ops::logprob_entropy;
use super::{Policy, PolicyError};

/// Whole multi-turn sequences (prompt, replies, observations), unpadded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainBatch {
    pub tokens: Vec<Vec<u32>>,
}

/// Per-token results, all `[B, T]` f32 with T the longest row (rows right-padded).
#[derive(Debug, Clone)]
pub struct TrainForward {
    /// `[b, t] = log p(tok[t] | tok[<t])`; column 0 is 0.
    pub logprobs: Tensor,
    /// Entropy of the distribution that predicts `tok[t]`; column 0 is 0.
    pub entropy: Tensor,
    /// Value head at the position that predicts `tok[t]` (hidden state t-1); column 0 is 0.
    pub values: Tensor,
    /// 1 for real tokens, 0 for right padding.
    pub pad_mask: Tensor,
}

impl Policy {
    /// Differentiable forward of `batch`: gradients of any loss built from the outputs reach
    /// every decoder parameter and the value head.
    pub fn forward_train(&self, batch: &TrainBatch) -> Result<TrainForward, PolicyError> {
        self.forward_train_constrained(batch, None)
    }

    /// [`Policy::forward_train`] where, given each row's assistant mask and the policy's reply
    /// grammar, the log-probs and entropies at reply positions are those of the distribution
    /// constrained decoding samples from (the grammar's allowed tokens only; a forced token has
    /// log-prob 0), so the ratio and the gradient belong to the policy that acted. Without a
    /// grammar or masks it is the plain forward.
    pub fn forward_train_constrained(
        &self,
        batch: &TrainBatch,
        assistant_masks: Option<&[Vec<u8>]>,
    ) -> Result<TrainForward, PolicyError> {
        let b = batch.tokens.len();
        let t = batch.tokens.iter().map(Vec::len).max().unwrap_or(0);
        if b == 0 || t < 2 {
            return Err(PolicyError::Input(
                "forward_train needs at least one row of 2 or more tokens".into(),
            ));
        }
        if t > self.rope_len() {
            return Err(PolicyError::Input(format!(
                "a training row has {t} tokens, beyond the context limit {}",
                self.rope_len()
            )));
        }
        let pad = self.tokenizer.pad_id();
        let ids: Vec<Vec<u32>> = batch
            .tokens
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.resize(t, pad);
                r
            })
            .collect();
        let pos: Vec<Vec<u32>> = (0..b).map(|_| (0..t as u32).collect()).collect();
        // Right padding: causal attention alone keeps pads out of every real position.
        let real: Vec<Vec<bool>> = (0..b).map(|_| vec![true; t]).collect();
        let out = self.forward_full(&ids, &pos, &real, false)?;
        let h = self.arch.hidden_size;
        let pred = out.normed.narrow(1, 0, t - 1)?; // positions predicting tok[1..]
        let logits = self
            .lm_head(&pred)?
            .reshape((b * (t - 1), self.arch.vocab_size))?;
        let logits = match (self.reply_grammar(), assistant_masks) {
            (Some(g), Some(masks)) => {
                let bias = grammar_bias(g, &ids, masks, self.arch.vocab_size);
                let bias =
                    Tensor::from_vec(bias, (b * (t - 1), self.arch.vocab_size), &self.device)?;
                (logits + bias)?
            }
            _ => logits,
        };
        let targets: Vec<u32> = ids.iter().flat_map(|r| r[1..].iter().copied()).collect();
        let (lp, ent) = logprob_entropy(&logits, &targets, self.fused_ops())?;
        let values = self.value_head(&pred.reshape((b * (t - 1), h))?)?;
        let zero = Tensor::zeros((b, 1), DType::F32, &self.device)?;
        let widen = |x: Tensor| -> Result<Tensor, PolicyError> {
            Ok(Tensor::cat(&[&zero, &x.reshape((b, t - 1))?], D::Minus1)?)
        };
        let mask: Vec<f32> = batch
            .tokens
            .iter()
            .flat_map(|r| (0..t).map(move |i| if i < r.len() { 1.0 } else { 0.0 }))
            .collect();
        Ok(TrainForward {
            logprobs: widen(lp)?,
            entropy: widen(ent)?,
            values: widen(values)?,
            pad_mask: Tensor::from_vec(mask, (b, t), &self.device)?,
        })
    }
}

/// Additive logit bias `[B*(T-1), V]` (row-major like the shifted logits): -1e9 on every token the
/// grammar does not allow at a reply position, 0 elsewhere. A finite bias keeps the entropy's
/// `p * log p` at 0 instead of NaN for the excluded tokens.
fn grammar_bias(g: &ReplyGrammar, ids: &[Vec<u32>], masks: &[Vec<u8>], vocab: usize) -> Vec<f32> {
    let t = ids.first().map_or(0, Vec::len);
    let mut bias = vec![0.0f32; ids.len() * (t - 1) * vocab];
    for (r, (row, mask)) in ids.iter().zip(masks).enumerate() {
        let mut node: Option<Step> = None;
        for (i, &token) in row.iter().enumerate().take(t).skip(1) {
            if mask.get(i).copied().unwrap_or(0) == 0 {
                node = None;
                continue;
            }
            let at = node.get_or_insert(Step::At(g.root()));
            if let Step::At(n) = *at {
                if g.branching(n) > 0 {
                    let base = (r * (t - 1) + i - 1) * vocab;
                    bias[base..base + vocab].fill(-1e9);
                    for tok in g.allowed(n) {
                        if (tok as usize) < vocab {
                            bias[base + tok as usize] = 0.0;
                        }
                    }
                }
                *at = g.step(n, token);
            }
        }
    }
    bias
}
