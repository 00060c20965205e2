//! Fused RoPE + causal grouped-query attention for the training forward, with backward.
//!
//! Works on `[B*T, heads*d]` projections directly (no transposes); every product is a strided
//! gemm per (batch row, head), and backward recomputes the probabilities instead of storing
//! `B*heads*T*T` floats. Queries go in blocks of [`CAUSAL_BLOCK`] rows, each multiplied only
//! with the keys it can see: the upper triangle of the scores, which the causal mask zeroes, is
//! mostly never computed (a 300-token sequence needs 60% of the full products).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::fused::{slice, vec_of};
use super::kernels::{View, dot, matmul_strided, par_rows};

/// Query rows per block: a block of rows `i0..i1` is multiplied with keys `0..i1` only. Smaller
/// blocks skip more of the masked triangle but make gemm's products thinner.
pub const CAUSAL_BLOCK: usize = 64;

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
    /// Query rows per causal block ([`CAUSAL_BLOCK`]; tests vary it).
    pub block: usize,
}

impl Attention {
    /// Rotate every head of `x` (`[B*T, heads*d]`) by its token's angles; `sign` -1 undoes it.
    fn rope(&self, x: &mut [f32], heads: usize, sign: f32) {
        let (d, half) = (self.d, self.d / 2);
        let work = x.len();
        par_rows(x, heads * d, work, |tok, row| {
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
        });
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
                let vv = View {
                    data: &v[(bi * t * nkv + g) * d..],
                    rs: nkv * d,
                    cs: 1,
                };
                let mut p = Vec::new();
                let mut o = vec![0.0f32; t * d];
                for (i0, i1) in self.blocks() {
                    self.probs(&q, &k, bi, h, (i0, i1), &mut p);
                    let probs = View {
                        data: &p,
                        rs: i1,
                        cs: 1,
                    };
                    matmul_strided(i1 - i0, d, i1, probs, vv, &mut o[i0 * d..i1 * d], false);
                }
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
                let (mut p, mut ds) = (Vec::new(), Vec::new());
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
                    let off = (bi * t * nh + h) * d;
                    for (i0, i1) in self.blocks() {
                        let rows = i1 - i0;
                        self.probs(&q, &k, bi, h, (i0, i1), &mut p);
                        let first = off + i0 * nh * d;
                        let dov = View {
                            data: &dout[first..],
                            rs: nh * d,
                            cs: 1,
                        };
                        // dP = dO V^T, then dS = P * (dP - rowsum(dO * O)) * scale.
                        ds.resize(rows * i1, 0.0);
                        matmul_strided(rows, i1, d, dov, vt, &mut ds, false);
                        for r in 0..rows {
                            let row = first + r * nh * d;
                            let di = dot(&dout[row..row + d], &o[row..row + d]);
                            for x in r * i1..(r + 1) * i1 {
                                ds[x] = p[x] * (ds[x] - di) * scale;
                            }
                        }
                        let dsv = View {
                            data: &ds,
                            rs: i1,
                            cs: 1,
                        };
                        let dq_rows = &mut dq[(hi * t + i0) * d..(hi * t + i1) * d];
                        matmul_strided(rows, d, i1, dsv, kview, dq_rows, false);
                        // Keys 0..i1 collect this block's share of dK and dV.
                        let dst = View {
                            data: &ds,
                            rs: 1,
                            cs: i1,
                        };
                        let qv = View {
                            data: &q[first..],
                            rs: nh * d,
                            cs: 1,
                        };
                        matmul_strided(i1, d, rows, dst, qv, &mut dk[..i1 * d], true);
                        let pt = View {
                            data: &p,
                            rs: 1,
                            cs: i1,
                        };
                        matmul_strided(i1, d, rows, pt, dov, &mut dv[..i1 * d], true);
                    }
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

    /// Query blocks `(i0, i1)`: rows `i0..i1`, which see keys `0..i1`.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let step = self.block.max(1);
        (0..self.t)
            .step_by(step)
            .map(move |i0| (i0, (i0 + step).min(self.t)))
    }

    /// Attention probabilities of the query block `(i0, i1)` of head `h` in batch row `bi` over
    /// keys `0..i1`, into `p` as `[i1 - i0, i1]`, with causal and key masks; a query with no
    /// visible key gets an all-zero row.
    fn probs(
        &self,
        q: &[f32],
        k: &[f32],
        bi: usize,
        h: usize,
        block: (usize, usize),
        p: &mut Vec<f32>,
    ) {
        let (i0, i1) = block;
        let (t, d, nh, nkv) = (self.t, self.d, self.heads, self.kv_heads);
        let g = h / (nh / nkv);
        let qv = View {
            data: &q[(bi * t * nh + h) * d + i0 * nh * d..],
            rs: nh * d,
            cs: 1,
        };
        let kt = View {
            data: &k[(bi * t * nkv + g) * d..],
            rs: 1,
            cs: nkv * d,
        };
        p.resize((i1 - i0) * i1, 0.0);
        matmul_strided(i1 - i0, i1, d, qv, kt, p, false);
        let scale = 1.0 / (d as f32).sqrt();
        let real = &self.key_real[bi * t..bi * t + i1];
        for (r, row) in p.chunks_exact_mut(i1).enumerate() {
            let i = i0 + r;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    fn attention(block: usize) -> Attention {
        let (b, t, d) = (2, 150, 8);
        let angles: Vec<f32> = (0..b * t * d).map(|i| (i % 97) as f32 * 0.05).collect();
        // Left padding in the second row, a hidden key in the middle of the first.
        let key_real = (0..b * t).map(|i| i != 70 && !(t..t + 5).contains(&i));
        Attention {
            b,
            t,
            heads: 4,
            kv_heads: 2,
            d,
            cos: Arc::new(angles.iter().map(|a| a.cos()).collect()),
            sin: Arc::new(angles.iter().map(|a| a.sin()).collect()),
            key_real: Arc::new(key_real.collect()),
            block,
        }
    }

    #[test]
    fn causal_blocks_give_the_unblocked_values_and_gradients() {
        let whole = attention(150);
        let (bt, nh, nkv, d) = (2 * 150, 4, 2, 8);
        let (q, k, v) = (
            values(bt * nh * d, 1),
            values(bt * nkv * d, 2),
            values(bt * nkv * d, 3),
        );
        let dout = values(bt * nh * d, 4);
        let o = whole.forward(&q, &k, &v);
        let (dq, dk, dv) = whole.backward(&q, &k, &v, &o, &dout);
        let close = |a: &[f32], b: &[f32], what: &str| {
            assert_eq!(a.len(), b.len());
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                    "{what}[{i}]: {x} vs {y}"
                );
            }
        };
        // The fully masked queries (left padding) output zeros, blocked or not.
        assert!(o[150 * nh * d..151 * nh * d].iter().all(|&x| x == 0.0));
        for block in [64, 17, 1] {
            let blocked = attention(block);
            let ob = blocked.forward(&q, &k, &v);
            close(&ob, &o, "out");
            let (bq, bk, bv) = blocked.backward(&q, &k, &v, &ob, &dout);
            close(&bq, &dq, "dq");
            close(&bk, &dk, "dk");
            close(&bv, &dv, "dv");
        }
    }
}
