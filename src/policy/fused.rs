//! Fused CPU ops with hand-written backward passes for the training forward.
//!
//! Plain candle spends most of a small model's training step on per-op overhead (an allocation
//! and a pass over memory per elementwise op, and 2-4 more in backward). These ops do RMSNorm,
//! SiLU-gate, RoPE + causal GQA attention, and log-softmax + pick + entropy in one pass each.
//! Each is checked against the composite candle version (values and gradients) in tests.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::{View, dot, matmul_strided};

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("fused op needs contiguous input"),
    }
}

fn vec_of(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
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
        let h = wv.len();
        let mut gx = vec![0.0f32; xv.len()];
        let mut gw = vec![0.0f32; h];
        for ((xr, gr), gxr) in xv
            .chunks_exact(h)
            .zip(gv.chunks_exact(h))
            .zip(gx.chunks_exact_mut(h))
        {
            let ms = xr.iter().map(|v| v * v).sum::<f32>() / h as f32;
            let r = 1.0 / (ms + self.eps).sqrt();
            let mut s = 0.0f32;
            for j in 0..h {
                s += gr[j] * wv[j] * xr[j];
                gw[j] += gr[j] * xr[j] * r;
            }
            let c = r * r * r * s / h as f32;
            for j in 0..h {
                gxr[j] = r * wv[j] * gr[j] - xr[j] * c;
            }
        }
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), x.device())?),
            Some(Tensor::from_vec(gw, w.shape(), w.device())?),
        ))
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
        let out = g
            .iter()
            .zip(u)
            .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
            .collect();
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
        let mut dg = Vec::with_capacity(gv.len());
        let mut du = Vec::with_capacity(gv.len());
        for i in 0..gv.len() {
            let sig = 1.0 / (1.0 + (-gv[i]).exp());
            du.push(dy[i] * gv[i] * sig);
            dg.push(dy[i] * uv[i] * sig * (1.0 + gv[i] * (1.0 - sig)));
        }
        Ok((
            Some(Tensor::from_vec(dg, gate.shape(), gate.device())?),
            Some(Tensor::from_vec(du, up.shape(), up.device())?),
        ))
    }
}

/// RoPE (rotate-half) on q and k, then causal grouped-query attention, for `[B, T, heads*d]`
/// inputs (no transposes needed). Keys with `key_real == false` are never attended to; a query
/// with no visible key outputs zeros. Backward recomputes the probabilities (nothing is stored).
pub struct Attention {
    pub b: usize,
    pub t: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub d: usize,
    /// cos/sin per token `[B*T, d]`, gathered at each token's position.
    pub cos: Arc<Vec<f32>>,
    pub sin: Arc<Vec<f32>>,
    /// `[B*T]`: whether each key may be attended to.
    pub key_real: Arc<Vec<bool>>,
}

impl Attention {
    /// Rotate every head of `x` (`[B*T, heads*d]`) by its token's angles; `sign` -1 undoes it.
    fn rope(&self, x: &mut [f32], heads: usize, sign: f32) {
        let (d, half) = (self.d, self.d / 2);
        for (tok, row) in x.chunks_exact_mut(heads * d).enumerate() {
            let (c, s) = (
                &self.cos[tok * d..tok * d + half],
                &self.sin[tok * d..tok * d + half],
            );
            for hv in row.chunks_exact_mut(d) {
                for j in 0..half {
                    let (a, b) = (hv[j], hv[j + half]);
                    let sn = sign * s[j];
                    hv[j] = a * c[j] - b * sn;
                    hv[j + half] = b * c[j] + a * sn;
                }
            }
        }
    }

    /// Attention probabilities `[T, T]` of head `h` in batch row `bi` (rows: queries), with
    /// causal and key masks; a query with no visible key gets an all-zero row.
    fn probs(&self, q: &[f32], k: &[f32], bi: usize, h: usize, p: &mut [f32]) {
        let (t, d, nh, nkv) = (self.t, self.d, self.heads, self.kv_heads);
        let g = h / (nh / nkv);
        let qv = View {
            data: &q[(bi * t * nh + h) * d..],
            rs: nh * d,
            cs: 1,
        };
        let kt = View {
            data: &k[(bi * t * nkv + g) * d..],
            rs: 1,
            cs: nkv * d,
        };
        matmul_strided(t, t, d, qv, kt, p, false);
        let scale = 1.0 / (d as f32).sqrt();
        let real = &self.key_real[bi * t..(bi + 1) * t];
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            let mut max = f32::NEG_INFINITY;
            for j in 0..=i {
                if real[j] {
                    max = max.max(row[j] * scale);
                }
            }
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            let mut sum = 0.0;
            for j in 0..t {
                row[j] = if j <= i && real[j] {
                    (row[j] * scale - max).exp()
                } else {
                    0.0
                };
                sum += row[j];
            }
            let inv = 1.0 / sum;
            row.iter_mut().for_each(|x| *x *= inv);
        }
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "tsr-rope-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, t, d, nh, nkv) = (self.b, self.t, self.d, self.heads, self.kv_heads);
        let mut q = slice(s1, l1)?.to_vec();
        let mut k = slice(s2, l2)?.to_vec();
        let v = slice(s3, l3)?;
        self.rope(&mut q, nh, 1.0);
        self.rope(&mut k, nkv, 1.0);
        // One task per (batch row, head), each producing its head's `[T, d]` output.
        let heads: Vec<Vec<f32>> = (0..b * nh)
            .into_par_iter()
            .map(|task| {
                let (bi, h) = (task / nh, task % nh);
                let g = h / (nh / nkv);
                let mut p = vec![0.0f32; t * t];
                self.probs(&q, &k, bi, h, &mut p);
                let mut o = vec![0.0f32; t * d];
                let vv = View {
                    data: &v[(bi * t * nkv + g) * d..],
                    rs: nkv * d,
                    cs: 1,
                };
                matmul_strided(
                    t,
                    d,
                    t,
                    View {
                        data: &p,
                        rs: t,
                        cs: 1,
                    },
                    vv,
                    &mut o,
                    false,
                );
                o
            })
            .collect();
        let mut out = vec![0.0f32; b * t * nh * d];
        for (task, o) in heads.iter().enumerate() {
            let (bi, h) = (task / nh, task % nh);
            for i in 0..t {
                let dst = ((bi * t + i) * nh + h) * d;
                out[dst..dst + d].copy_from_slice(&o[i * d..(i + 1) * d]);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q_in: &Tensor,
        k_in: &Tensor,
        v_in: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, d, nh, nkv) = (self.b, self.t, self.d, self.heads, self.kv_heads);
        let group = nh / nkv;
        let scale = 1.0 / (d as f32).sqrt();
        let (mut q, mut k, v) = (vec_of(q_in)?, vec_of(k_in)?, vec_of(v_in)?);
        let (o, dout) = (vec_of(res)?, vec_of(grad)?);
        self.rope(&mut q, nh, 1.0);
        self.rope(&mut k, nkv, 1.0);
        // One task per (batch row, kv head): it owns that head's dk/dv and its query heads'
        // dq, so no two tasks write the same memory. Probabilities are recomputed, not stored.
        let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..b * nkv)
            .into_par_iter()
            .map(|task| {
                let (bi, g) = (task / nkv, task % nkv);
                let mut dq = vec![0.0f32; group * t * d];
                let mut dk = vec![0.0f32; t * d];
                let mut dv = vec![0.0f32; t * d];
                let (mut p, mut ds) = (vec![0.0f32; t * t], vec![0.0f32; t * t]);
                let kv_off = (bi * t * nkv + g) * d;
                let kview = View {
                    data: &k[kv_off..],
                    rs: nkv * d,
                    cs: 1,
                };
                let vt = View {
                    data: &v[kv_off..],
                    rs: 1,
                    cs: nkv * d,
                };
                for hi in 0..group {
                    let h = g * group + hi;
                    self.probs(&q, &k, bi, h, &mut p);
                    let off = (bi * t * nh + h) * d;
                    let dov = View {
                        data: &dout[off..],
                        rs: nh * d,
                        cs: 1,
                    };
                    // dP = dO V^T, then dS = P * (dP - rowsum(dO * O)) * scale.
                    matmul_strided(t, t, d, dov, vt, &mut ds, false);
                    for i in 0..t {
                        let row = off + i * nh * d;
                        let di = dot(&dout[row..row + d], &o[row..row + d]);
                        for j in 0..t {
                            let x = i * t + j;
                            ds[x] = p[x] * (ds[x] - di) * scale;
                        }
                    }
                    let dsv = View {
                        data: &ds,
                        rs: t,
                        cs: 1,
                    };
                    matmul_strided(
                        t,
                        d,
                        t,
                        dsv,
                        kview,
                        &mut dq[hi * t * d..(hi + 1) * t * d],
                        false,
                    );
                    let dst = View {
                        data: &ds,
                        rs: 1,
                        cs: t,
                    };
                    let qv = View {
                        data: &q[off..],
                        rs: nh * d,
                        cs: 1,
                    };
                    matmul_strided(t, d, t, dst, qv, &mut dk, true);
                    let pt = View {
                        data: &p,
                        rs: 1,
                        cs: t,
                    };
                    matmul_strided(t, d, t, pt, dov, &mut dv, true);
                }
                (dq, dk, dv)
            })
            .collect();
        let mut dq = vec![0.0f32; b * t * nh * d];
        let mut dk = vec![0.0f32; b * t * nkv * d];
        let mut dv = vec![0.0f32; b * t * nkv * d];
        for (task, (pq, pk, pv)) in parts.into_iter().enumerate() {
            let (bi, g) = (task / nkv, task % nkv);
            for i in 0..t {
                let tok = bi * t + i;
                for hi in 0..group {
                    let dst = (tok * nh + g * group + hi) * d;
                    dq[dst..dst + d].copy_from_slice(&pq[(hi * t + i) * d..(hi * t + i + 1) * d]);
                }
                let kdst = (tok * nkv + g) * d;
                dk[kdst..kdst + d].copy_from_slice(&pk[i * d..(i + 1) * d]);
                dv[kdst..kdst + d].copy_from_slice(&pv[i * d..(i + 1) * d]);
            }
        }
        self.rope(&mut dq, nh, -1.0);
        self.rope(&mut dk, nkv, -1.0);
        Ok((
            Some(Tensor::from_vec(dq, q_in.shape(), q_in.device())?),
            Some(Tensor::from_vec(dk, k_in.shape(), k_in.device())?),
            Some(Tensor::from_vec(dv, v_in.shape(), v_in.device())?),
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
    let mut sum = 0.0f32;
    for &x in z {
        let e = (x - max).exp();
        p.push(e);
        sum += e;
    }
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
