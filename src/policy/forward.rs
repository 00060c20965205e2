//! The differentiable full-sequence forward pass (training and conformance checks).

use candle_core::{D, Tensor};

use super::fused_layer::{DecoderLayer, PACKED_PARAMS};
use super::ops::{AttnInputs, rms_norm, silu_gate};
use super::{Policy, PolicyError};

/// What a full forward produces.
pub struct ForwardOutput {
    /// `model.norm` output `[B, T, H]`: input of the LM head and the value head.
    pub normed: Tensor,
    /// Residual stream `[B, T, H]` before each layer and after the last (HF `hidden_states`
    /// without the final norm); empty unless asked for.
    pub residuals: Vec<Tensor>,
}

impl Policy {
    /// Forward `ids` `[B][T]` (equal lengths) at `positions` `[B][T]`, where `key_real[b][t]`
    /// says whether token t of row b may be attended to (false for padding).
    pub fn forward_full(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        key_real: &[Vec<bool>],
        keep_residuals: bool,
    ) -> Result<ForwardOutput, PolicyError> {
        let a = &self.arch;
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || ids.iter().any(|r| r.len() != t) {
            return Err(PolicyError::Input(
                "forward_full needs B>0 rows of equal length T>0".into(),
            ));
        }
        self.check_ids(ids.iter().flatten().copied())?;
        let max_pos = positions.iter().flatten().copied().max().unwrap_or(0) as usize;
        if max_pos >= self.rope_len() {
            return Err(PolicyError::Input(format!(
                "position {max_pos} is beyond the context limit {}",
                self.rope_len()
            )));
        }
        let dev = &self.device;
        let fused = self.fused_ops();
        let flat_ids: Vec<u32> = ids.iter().flatten().copied().collect();
        let flat_pos: Vec<u32> = positions.iter().flatten().copied().collect();
        let id_t = Tensor::from_vec(flat_ids, b * t, dev)?;
        let attn = AttnInputs::new(self, b, t, &flat_pos, key_real, fused)?;
        let p = &self.params;
        // The residual stream stays 2-D `[B*T, H]` so every projection is one large matmul.
        let mut x = p.get("model.embed_tokens.weight")?.index_select(&id_t, 0)?;
        let mut residuals = Vec::new();
        let eps = a.rms_norm_eps;
        let keep = |x: &Tensor, r: &mut Vec<Tensor>| -> Result<(), PolicyError> {
            if keep_residuals {
                r.push(x.reshape((b, t, a.hidden_size))?);
            }
            Ok(())
        };
        for l in 0..a.num_layers {
            keep(&x, &mut residuals)?;
            let n = |s: &str| p.get(&format!("model.layers.{l}.{s}"));
            if let Some(attn_op) = attn.fused_op() {
                // The whole layer as one op (see `fused_layer`): its weights enter packed.
                let parts = PACKED_PARAMS
                    .iter()
                    .map(|s| Ok(n(s)?.flatten_all()?))
                    .collect::<Result<Vec<_>, PolicyError>>()?;
                let op = DecoderLayer::new(a, attn_op);
                x = x.contiguous()?.apply_op2(&Tensor::cat(&parts, 0)?, op)?;
                continue;
            }
            let h = rms_norm(&x, n("input_layernorm.weight")?, eps, fused)?;
            let lin = |w: &str, bias: &str| -> Result<Tensor, PolicyError> {
                Ok(h.matmul(&n(w)?.t()?)?.broadcast_add(n(bias)?)?)
            };
            let q = lin("self_attn.q_proj.weight", "self_attn.q_proj.bias")?;
            let k = lin("self_attn.k_proj.weight", "self_attn.k_proj.bias")?;
            let v = lin("self_attn.v_proj.weight", "self_attn.v_proj.bias")?;
            let ctx = attn.apply(&q, &k, &v)?;
            x = (x + ctx.matmul(&n("self_attn.o_proj.weight")?.t()?)?)?;
            let h = rms_norm(&x, n("post_attention_layernorm.weight")?, eps, fused)?;
            let gate = h.matmul(&n("mlp.gate_proj.weight")?.t()?)?;
            let up = h.matmul(&n("mlp.up_proj.weight")?.t()?)?;
            let act = silu_gate(&gate, &up, fused)?;
            x = (x + act.matmul(&n("mlp.down_proj.weight")?.t()?)?)?;
        }
        keep(&x, &mut residuals)?;
        let normed = rms_norm(&x, p.get("model.norm.weight")?, eps, fused)?.reshape((
            b,
            t,
            a.hidden_size,
        ))?;
        Ok(ForwardOutput { normed, residuals })
    }

    /// LM head: `[.., H] -> [.., V]`.
    pub fn lm_head(&self, normed: &Tensor) -> Result<Tensor, PolicyError> {
        if normed.rank() == 3 {
            let (b, t, h) = normed.dims3()?;
            return Ok(self
                .lm_head(&normed.reshape((b * t, h))?)?
                .reshape((b, t, ()))?);
        }
        let w = if self.arch.tie_word_embeddings {
            self.params.get("model.embed_tokens.weight")?
        } else {
            self.params.get("lm_head.weight")?
        };
        Ok(normed.broadcast_matmul(&w.t()?)?)
    }

    /// Value head: `[.., H] -> [..]`.
    pub fn value_head(&self, normed: &Tensor) -> Result<Tensor, PolicyError> {
        let w = self.params.get(super::params::VALUE_W)?;
        let b = self.params.get(super::params::VALUE_B)?;
        Ok(normed
            .broadcast_matmul(&w.t()?)?
            .broadcast_add(b)?
            .squeeze(D::Minus1)?)
    }

    /// Logits `[B, T, V]` of unpadded rows of equal length at positions 0..T.
    pub fn logits_full(&self, ids: &[Vec<u32>]) -> Result<Tensor, PolicyError> {
        let t = ids.first().map_or(0, Vec::len);
        let pos: Vec<Vec<u32>> = ids.iter().map(|_| (0..t as u32).collect()).collect();
        let real: Vec<Vec<bool>> = ids.iter().map(|_| vec![true; t]).collect();
        let out = self.forward_full(ids, &pos, &real, false)?;
        self.lm_head(&out.normed)
    }
}
