//! Fused RoPE + causal grouped-query attention for the training forward, with backward.
//!
//! Works on `[B*T, heads*d]` projections directly (no transposes); every product is a strided
//! gemm per (batch row, head), and backward recomputes the probabilities instead of storing
//! `B*heads*T*T` floats.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fused::{slice, vec_of};
use super::kernels::{View, dot, matmul_strided};

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

    /// Attention of pre-RoPE `q` `[B*T, heads*d]` over `k`, `v` `[B*T, kv_heads*d]`: `[B*T, heads*d]`.
    pub fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        let (b, t, d, nh, nkv) = (self.b, self.t, self.d, self.heads, self.kv_heads);
        let mut q = q.to_vec();
        let mut k = k.to_vec();
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
        out
    }

    /// Gradients of [`Attention::forward`] for its inputs, given its output `o` and the output
    /// gradient `dout`.
    pub fn backward(
        &self,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        o: &[f32],
        dout: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (b, t, d, nh, nkv) = (self.b, self.t, self.d, self.heads, self.kv_heads);
        let group = nh / nkv;
        let scale = 1.0 / (d as f32).sqrt();
        let (mut q, mut k) = (q.to_vec(), k.to_vec());
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
        (dq, dk, dv)
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
            // Hidden keys become -inf, which `exp` maps to exactly 0.
            let (visible, future) = row.split_at_mut(i + 1);
            for (x, &r) in visible.iter_mut().zip(real) {
                *x = if r { *x * scale } else { f32::NEG_INFINITY };
            }
            future.fill(0.0);
            let sum = super::simd::exp_shifted(visible, max);
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
        let (q, k, v) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        let out = self.forward(q, k, v);
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
        let (q, k, v) = (vec_of(q_in)?, vec_of(k_in)?, vec_of(v_in)?);
        let (o, dout) = (vec_of(res)?, vec_of(grad)?);
        let (dq, dk, dv) = self.backward(&q, &k, &v, &o, &dout);
        Ok((
            Some(Tensor::from_vec(dq, q_in.shape(), q_in.device())?),
            Some(Tensor::from_vec(dk, k_in.shape(), k_in.device())?),
            Some(Tensor::from_vec(dv, v_in.shape(), v_in.device())?),
        ))
    }
}
