//! Fused CPU ops with hand-written backward passes for the training forward.
//!
//! Plain candle spends most of a small model's training step on per-op overhead (an allocation
//! and a pass over memory per elementwise op, and 2-4 more in backward). These ops do RMSNorm,
//! SiLU-gate, RoPE + causal GQA attention (in `fused_attention`), and log-softmax + pick + entropy in one pass each.
//! Each is checked against the composite candle version (values and gradients) in tests.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

pub(crate) fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("fused op needs contiguous input"),
    }
}

pub(crate) fn vec_of(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// `f` over a tensor's f32 elements, read in place when the tensor is a contiguous CPU tensor
/// (backward and the optimizer read every weight and gradient each step; copying them cost
/// `small` 2-3% of a training step) and from a copy otherwise. The storage stays read-locked
/// while `f` runs: nested calls must not be given tensors that another thread may be writing.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(CpuStorage::F32(data)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&data[a..b]));
        }
    }
    Ok(f(&vec_of(t)?))
}

/// `x / sqrt(mean(x^2) + eps) * w` over rows of width `w.len()`.
pub struct RmsNorm {
    pub eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "tsr-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        if w.is_empty() || x.len() % w.len() != 0 {
            candle_core::bail!("rms norm: input rows are not as wide as the weight");
        }
        let mut out = Vec::new();
        super::kernels::rms_norm_rows(x, w, self.eps, &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, gv) = (vec_of(x)?, vec_of(w)?, vec_of(g)?);
        let mut gx = vec![0.0f32; xv.len()];
        let mut gw = vec![0.0f32; wv.len()];
        rms_norm_backward(&xv, &wv, self.eps, &gv, &mut gx, &mut gw);
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), x.device())?),
            Some(Tensor::from_vec(gw, w.shape(), w.device())?),
        ))
    }
}

/// Rows per task of [`rms_norm_backward`]. Each block sums its own weight gradient and the
/// blocks' sums are added in block order, so the result is the same however many threads ran.
const NORM_BLOCK_ROWS: usize = 32;

/// Backward of RMSNorm over rows of `x`: adds the input gradient into `gx` and the weight
/// gradient into `gw`, given the output gradient `g`. Blocks of rows run in parallel (this
/// ran on one thread while the other idled in a two-thread training step).
pub(crate) fn rms_norm_backward(
    x: &[f32],
    w: &[f32],
    eps: f32,
    g: &[f32],
    gx: &mut [f32],
    gw: &mut [f32],
) {
    let h = w.len();
    let block = NORM_BLOCK_ROWS * h;
    let one_block = |b: usize, gxb: &mut [f32]| -> Vec<f32> {
        let mut gwb = vec![0.0f32; h];
        let (xb, gb) = (&x[b * block..], &g[b * block..]);
        for ((xr, gr), gxr) in xb
            .chunks_exact(h)
            .zip(gb.chunks_exact(h))
            .zip(gxb.chunks_exact_mut(h))
        {
            let ms = xr.iter().map(|v| v * v).sum::<f32>() / h as f32;
            let r = 1.0 / (ms + eps).sqrt();
            let mut s = 0.0f32;
            for j in 0..h {
                s += gr[j] * w[j] * xr[j];
                gwb[j] += gr[j] * xr[j] * r;
            }
            let c = r * r * r * s / h as f32;
            for j in 0..h {
                gxr[j] += r * w[j] * gr[j] - xr[j] * c;
            }
        }
        gwb
    };
    let partials: Vec<Vec<f32>> = if super::kernels::worth_threads(x.len()) {
        gx.par_chunks_mut(block)
            .enumerate()
            .map(|(b, gxb)| one_block(b, gxb))
            .collect()
    } else {
        gx.chunks_mut(block)
            .enumerate()
            .map(|(b, gxb)| one_block(b, gxb))
            .collect()
    };
    for gwb in partials {
        gw.iter_mut().zip(&gwb).for_each(|(a, b)| *a += b);
    }
}

/// `silu(gate) * up`, elementwise.
pub struct SiluGate;

impl CustomOp2 for SiluGate {
    fn name(&self) -> &'static str {
        "tsr-silu-gate"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (slice(s1, l1)?, slice(s2, l2)?);
        let mut out = vec![0.0f32; g.len()];
        super::simd::silu_gate(g, &u[..g.len()], &mut out);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (gv, uv, dy) = (vec_of(gate)?, vec_of(up)?, vec_of(g)?);
        let mut dg = vec![0.0f32; gv.len()];
        let mut du = vec![0.0f32; gv.len()];
        super::simd::silu_gate_backward(&gv, &uv, &dy, &mut dg, &mut du);
        Ok((
            Some(Tensor::from_vec(dg, gate.shape(), gate.device())?),
            Some(Tensor::from_vec(du, up.shape(), up.device())?),
        ))
    }
}

/// Per row of logits `[N, V]`: `[log_softmax[target], entropy]` as `[N, 2]`.
pub struct LogprobEntropy {
    pub targets: Arc<Vec<u32>>,
}

fn softmax_row(z: &[f32], p: &mut Vec<f32>) -> (f32, f32) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    p.clear();
    p.extend_from_slice(z);
    let sum = super::simd::exp_shifted(p, max);
    let lse = max + sum.ln();
    p.iter_mut().for_each(|x| *x /= sum);
    // entropy = lse - sum p z
    let pz: f32 = p.iter().zip(z).map(|(p, z)| p * z).sum();
    (lse, lse - pz)
}

impl CustomOp1 for LogprobEntropy {
    fn name(&self) -> &'static str {
        "tsr-logprob-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let z = slice(s, l)?;
        let n = self.targets.len();
        let v = z.len() / n.max(1);
        let mut out = vec![0.0f32; 2 * n];
        out.par_chunks_mut(2).enumerate().for_each(|(i, o)| {
            let mut p = Vec::with_capacity(v);
            let row = &z[i * v..(i + 1) * v];
            let (lse, ent) = softmax_row(row, &mut p);
            o[0] = row[self.targets[i] as usize] - lse;
            o[1] = ent;
        });
        Ok((CpuStorage::F32(out), Shape::from((n, 2))))
    }

    fn bwd(&self, logits: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (z, r, g) = (vec_of(logits)?, vec_of(res)?, vec_of(grad)?);
        let n = self.targets.len();
        let v = z.len() / n.max(1);
        let mut dz = vec![0.0f32; z.len()];
        dz.par_chunks_mut(v).enumerate().for_each(|(i, dzr)| {
            let mut p = Vec::with_capacity(v);
            let row = &z[i * v..(i + 1) * v];
            let (lse, _) = softmax_row(row, &mut p);
            let (g_lp, g_ent, ent) = (g[2 * i], g[2 * i + 1], r[2 * i + 1]);
            for j in 0..v {
                let logp = row[j] - lse;
                dzr[j] = -g_lp * p[j] - g_ent * p[j] * (logp + ent);
            }
            dzr[self.targets[i] as usize] += g_lp;
        });
        Ok(Some(Tensor::from_vec(dz, logits.shape(), logits.device())?))
    }
}
