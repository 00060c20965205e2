//! Differentiable building blocks of the decoder (every one has a backward pass; candle's fused
//! `rms_norm`, `softmax_last_dim` and `rope` do not).

use std::sync::Arc;

use candle_core::{D, Device, Tensor};

use super::{Policy, PolicyError};

/// Additive mask value for keys a query must not see. Finite on purpose: a query row whose
/// keys are all masked (a left-pad position) stays finite garbage instead of NaN that would
/// leak through `0 * NaN` into real rows of the next layer.
pub const MASKED: f32 = -1e9;

/// `x / sqrt(mean(x^2) + eps) * w` over the last dimension (`x` contiguous when `fused`).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64, fused: bool) -> Result<Tensor, PolicyError> {
    if fused {
        return Ok(x.apply_op2(w, super::fused::RmsNorm { eps: eps as f32 })?);
    }
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

/// `silu(gate) * up`.
pub fn silu_gate(gate: &Tensor, up: &Tensor, fused: bool) -> Result<Tensor, PolicyError> {
    if fused {
        return Ok(gate.apply_op2(up, super::fused::SiluGate)?);
    }
    Ok((candle_nn::ops::silu(gate)? * up)?)
}

/// Everything attention needs besides q, k, v: RoPE angles per token and which keys are real,
/// prepared once per forward for every layer.
pub struct AttnInputs {
    b: usize,
    t: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    /// Fused CPU op (Some) or the composite candle path (None).
    fused: Option<FusedTables>,
    /// Composite path: cos, sin `[B, 1, T, D]` and the additive mask `[B, 1, 1, T, T]`.
    composite: Option<(Tensor, Tensor, Tensor)>,
}

/// The fused op's rotary cos and sin tables and its attention mask, shared by every layer.
type FusedTables = (Arc<Vec<f32>>, Arc<Vec<f32>>, Arc<Vec<bool>>);

impl AttnInputs {
    pub fn new(
        p: &Policy,
        b: usize,
        t: usize,
        positions: &[u32],
        key_real: &[Vec<bool>],
        fused: bool,
    ) -> Result<AttnInputs, PolicyError> {
        let a = p.arch();
        let d = a.head_dim;
        let mut me = AttnInputs {
            b,
            t,
            heads: a.num_heads,
            kv_heads: a.num_kv_heads,
            d,
            fused: None,
            composite: None,
        };
        if fused {
            let (cos, sin) = p.rope_vec();
            let mut c = Vec::with_capacity(b * t * d);
            let mut s = Vec::with_capacity(b * t * d);
            for &pos in positions {
                let pos = pos as usize;
                c.extend_from_slice(&cos[pos * d..(pos + 1) * d]);
                s.extend_from_slice(&sin[pos * d..(pos + 1) * d]);
            }
            let real = key_real.iter().flatten().copied().collect();
            me.fused = Some((Arc::new(c), Arc::new(s), Arc::new(real)));
        } else {
            let dev = p.device();
            let pos_t = Tensor::from_vec(positions.to_vec(), b * t, dev)?;
            let cos = p.cos.index_select(&pos_t, 0)?.reshape((b, 1, t, d))?;
            let sin = p.sin.index_select(&pos_t, 0)?.reshape((b, 1, t, d))?;
            let mask = attention_mask(key_real, t, dev)?.unsqueeze(1)?;
            me.composite = Some((cos, sin, mask));
        }
        Ok(me)
    }

    /// The fused attention op for these inputs (`None` on the composite path).
    pub fn fused_op(&self) -> Option<super::fused_attention::Attention> {
        let (cos, sin, real) = self.fused.as_ref()?;
        Some(super::fused_attention::Attention {
            b: self.b,
            t: self.t,
            heads: self.heads,
            kv_heads: self.kv_heads,
            d: self.d,
            cos: cos.clone(),
            sin: sin.clone(),
            key_real: real.clone(),
            block: super::fused_attention::CAUSAL_BLOCK,
        })
    }

    /// RoPE + causal GQA attention: q `[B*T, heads*d]`, k and v `[B*T, kv_heads*d]`
    /// (pre-RoPE) to `[B*T, heads*d]`.
    pub fn apply(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor, PolicyError> {
        let (b, t, hq, hkv, hd) = (self.b, self.t, self.heads, self.kv_heads, self.d);
        if let Some(op) = self.fused_op() {
            return Ok(q
                .contiguous()?
                .apply_op3(&k.contiguous()?, &v.contiguous()?, op)?);
        }
        let Some((cos, sin, mask)) = &self.composite else {
            return Err(PolicyError::Input("attention inputs not prepared".into()));
        };
        let group = hq / hkv;
        let scale = 1.0 / (hd as f64).sqrt();
        // Queries sharing a kv head are stacked along the time axis: [B, KV, G*T, D], so one
        // matmul per kv head serves its whole group without repeating k and v.
        let q = q.reshape((b, t, hq, hd))?.transpose(1, 2)?.contiguous()?;
        let q = rope(&q, cos, sin)?.reshape((b, hkv, group * t, hd))?;
        let k = k.reshape((b, t, hkv, hd))?.transpose(1, 2)?.contiguous()?;
        let k = rope(&k, cos, sin)?;
        let v = v.reshape((b, t, hkv, hd))?.transpose(1, 2)?.contiguous()?;
        let scores = (q.matmul(&k.t()?)? * scale)?.reshape((b, hkv, group, t, t))?;
        let probs = softmax(&scores.broadcast_add(mask)?)?.reshape((b, hkv, group * t, t))?;
        Ok(probs
            .matmul(&v)?
            .reshape((b, hq, t, hd))?
            .transpose(1, 2)?
            .reshape((b * t, hq * hd))?)
    }
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

/// `log p(target)` and entropy per row of `logits` `[N, V]`.
pub fn logprob_entropy(
    logits: &Tensor,
    targets: &[u32],
    fused: bool,
) -> Result<(Tensor, Tensor), PolicyError> {
    if fused {
        let op = super::fused::LogprobEntropy {
            targets: Arc::new(targets.to_vec()),
        };
        let both = logits.contiguous()?.apply_op1(op)?;
        return Ok((
            both.narrow(1, 0, 1)?.squeeze(1)?,
            both.narrow(1, 1, 1)?.squeeze(1)?,
        ));
    }
    let targets = Tensor::from_vec(targets.to_vec(), targets.len(), logits.device())?;
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = logp.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    let entropy = (logp.exp()? * &logp)?.sum(D::Minus1)?.neg()?;
    Ok((picked, entropy))
}
