//! Differentiable building blocks of the decoder (every one has a backward pass; candle's fused
//! `rms_norm`, `softmax_last_dim` and `rope` do not).

use candle_core::{D, Device, Tensor};

use super::PolicyError;

/// Additive mask value for keys a query must not see. Finite on purpose: a query row whose
/// keys are all masked (a left-pad position) stays finite garbage instead of NaN that would
/// leak through `0 * NaN` into real rows of the next layer.
pub const MASKED: f32 = -1e9;

/// `x / sqrt(mean(x^2) + eps) * w` over the last dimension.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor, PolicyError> {
    let var = x.sqr()?.mean_keepdim(D::Minus1)?;
    let inv = (var + eps)?.sqrt()?.recip()?;
    Ok(x.broadcast_mul(&inv)?.broadcast_mul(w)?)
}

/// cos and sin tables `[positions, head_dim]` in the HF layout `cat(freqs, freqs)`.
pub fn rope_tables(
    head_dim: usize,
    theta: f64,
    positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor), PolicyError> {
    let (cos, sin) = rope_tables_vec(head_dim, theta, positions);
    Ok((
        Tensor::from_vec(cos, (positions, head_dim), device)?,
        Tensor::from_vec(sin, (positions, head_dim), device)?,
    ))
}

/// The same tables as flat row-major vectors, computed in f64 then rounded.
pub fn rope_tables_vec(head_dim: usize, theta: f64, positions: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(positions * head_dim);
    let mut sin = Vec::with_capacity(positions * head_dim);
    for p in 0..positions {
        for j in 0..head_dim {
            // HF computes inv_freq in f32 and the angle in f32; match that rounding.
            let inv = 1.0f32 / (theta as f32).powf((2 * (j % half)) as f32 / head_dim as f32);
            let ang = p as f32 * inv;
            cos.push(ang.cos());
            sin.push(ang.sin());
        }
    }
    (cos, sin)
}

/// HF rotate-half RoPE: `x*cos + cat(-x2, x1)*sin`; `x` is `[B, heads, T, D]`, the tables
/// `[B, 1, T, D]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor, PolicyError> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

/// Softmax over the last dimension, from differentiable pieces.
pub fn softmax(x: &Tensor) -> Result<Tensor, PolicyError> {
    Ok(candle_nn::ops::softmax(x, D::Minus1)?)
}

/// Additive attention mask `[B, 1, T, T]`: 0 where query t may see key s (s <= t and key s is
/// real), [`MASKED`] elsewhere.
pub fn attention_mask(
    key_real: &[Vec<bool>],
    t: usize,
    device: &Device,
) -> Result<Tensor, PolicyError> {
    let b = key_real.len();
    let mut data = vec![MASKED; b * t * t];
    for (bi, real) in key_real.iter().enumerate() {
        for q in 0..t {
            for k in 0..=q {
                if real[k] {
                    data[(bi * t + q) * t + k] = 0.0;
                }
            }
        }
    }
    Ok(Tensor::from_vec(data, (b, 1, t, t), device)?)
}

/// `log p(target)` and entropy per row of `logits` `[N, V]` with `targets` `[N]` (u32).
pub fn logprob_entropy(logits: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor), PolicyError> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let entropy = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?;
    Ok((picked, entropy))
}
