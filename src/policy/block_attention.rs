//! Attention for a sequence that appends many tokens at once (a prompt prefill).
//!
//! Per-token attention reads every cached key once per query, a matrix-vector product per
//! row; over a whole prompt that was a quarter of a trainer's rollout time. Here the block's
//! queries of one head go through two matmuls (scores, then the weighted values) over the
//! sequence's keys and values gathered contiguously once per kv head.

use rayon::prelude::*;

use super::kernels::{KvView, View, matmul_strided};

/// Blocks of at least this many new tokens take the matmul path.
pub const MIN_BLOCK_ROWS: usize = 8;

/// Shape of the attention.
#[derive(Clone, Copy)]
pub struct Heads {
    pub heads: usize,
    pub kv_heads: usize,
    pub d: usize,
}

/// Attention of `rows` new tokens at positions `start..start + rows`, whose queries are the
/// first `heads * d` values of each `width`-wide row of `q_rows`, over `kv` (which already holds
/// their keys and values). Returns `[rows, heads * d]`.
pub fn attend_block(
    q_rows: &[f32],
    width: usize,
    rows: usize,
    start: usize,
    kv: &KvView<'_>,
    shape: Heads,
) -> Vec<f32> {
    let Heads { heads, kv_heads, d } = shape;
    let (group, kv_row, ctx) = (heads / kv_heads, kv_heads * d, start + rows);
    let scale = 1.0 / (d as f32).sqrt();
    let per_group: Vec<Vec<f32>> = (0..kv_heads)
        .into_par_iter()
        .map(|g| {
            // This kv head's keys and values as contiguous `[ctx, d]` matrices.
            let (mut kg, mut vg) = (Vec::with_capacity(ctx * d), Vec::with_capacity(ctx * d));
            let mut left = ctx;
            for (k, v) in kv.segments {
                let take = left.min(k.len() / kv_row);
                for p in 0..take {
                    kg.extend_from_slice(&k[p * kv_row + g * d..p * kv_row + (g + 1) * d]);
                    vg.extend_from_slice(&v[p * kv_row + g * d..p * kv_row + (g + 1) * d]);
                }
                left -= take;
            }
            let mut out = vec![0.0f32; group * rows * d];
            let mut p = vec![0.0f32; rows * ctx];
            for j in 0..group {
                let h = g * group + j;
                let q = View {
                    data: &q_rows[h * d..],
                    rs: width,
                    cs: 1,
                };
                let kt = View {
                    data: &kg,
                    rs: 1,
                    cs: d,
                };
                matmul_strided(rows, ctx, d, q, kt, &mut p, false);
                for (i, row) in p.chunks_exact_mut(ctx).enumerate() {
                    let (visible, future) = row.split_at_mut(start + i + 1);
                    visible.iter_mut().for_each(|x| *x *= scale);
                    let max = visible.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let inv = 1.0 / super::simd::exp_shifted(visible, max);
                    visible.iter_mut().for_each(|x| *x *= inv);
                    future.fill(0.0);
                }
                let probs = View {
                    data: &p,
                    rs: ctx,
                    cs: 1,
                };
                let values = View {
                    data: &vg,
                    rs: d,
                    cs: 1,
                };
                let oh = &mut out[j * rows * d..(j + 1) * rows * d];
                matmul_strided(rows, d, ctx, probs, values, oh, false);
            }
            out
        })
        .collect();
    let mut out = vec![0.0f32; rows * heads * d];
    for (g, o) in per_group.iter().enumerate() {
        for j in 0..group {
            let h = g * group + j;
            for i in 0..rows {
                let src = &o[(j * rows + i) * d..(j * rows + i + 1) * d];
                out[i * heads * d + h * d..i * heads * d + (h + 1) * d].copy_from_slice(src);
            }
        }
    }
    out
}

/// One single-token query of a forked sequence: its `[heads * d]` query, how many cached
/// positions it sees (`upto`, at least the shared prefix), and its own keys and values (rows of
/// `kv_heads * d` after the prefix).
pub struct ForkQuery<'a> {
    pub q: &'a [f32],
    pub upto: usize,
    pub own_k: &'a [f32],
    pub own_v: &'a [f32],
}

/// Attention of the next tokens of several forks of one prompt: the scores and weighted values
/// over the shared prefix (`prefix_k`/`prefix_v`, `prefix_len` rows) are two matmuls for all
/// forks' queries together, so the prompt's keys and values are read once per step rather than
/// once per fork; each fork's own tokens are added row by row. Returns `[heads * d]` per query.
///
/// The kv heads are independent, so a long prefix spreads them over the threads: best-of-N
/// over one prompt is a single group of forks, which alone on the calling thread held a
/// quarter of a `small` decode step while the other thread waited (BENCHMARKS.md, "Policy
/// model", twelfth session). Each head is computed the same way whatever the split.
pub fn attend_forks(
    forks: &[ForkQuery<'_>],
    prefix_k: &[f32],
    prefix_v: &[f32],
    prefix_len: usize,
    shape: Heads,
) -> Vec<Vec<f32>> {
    let Heads { heads, kv_heads, d } = shape;
    let group = heads / kv_heads;
    let one = |g: usize| fork_head(forks, prefix_k, prefix_v, prefix_len, shape, g);
    let work = forks.len() * group * prefix_len * d * kv_heads;
    let per_head: Vec<Vec<f32>> = if super::kernels::worth_threads(work) {
        (0..kv_heads).into_par_iter().map(one).collect()
    } else {
        (0..kv_heads).map(one).collect()
    };
    let mut outs = vec![vec![0.0f32; heads * d]; forks.len()];
    for (g, head) in per_head.iter().enumerate() {
        for (fi, out) in outs.iter_mut().enumerate() {
            let rows = &head[fi * group * d..(fi + 1) * group * d];
            out[g * group * d..(g + 1) * group * d].copy_from_slice(rows);
        }
    }
    outs
}

/// [`attend_forks`] for the query heads of kv head `g`: `[forks * group, d]`, fork-major.
fn fork_head(
    forks: &[ForkQuery<'_>],
    prefix_k: &[f32],
    prefix_v: &[f32],
    lp: usize,
    shape: Heads,
    g: usize,
) -> Vec<f32> {
    let Heads { heads, kv_heads, d } = shape;
    let (group, kv_row) = (heads / kv_heads, kv_heads * d);
    let scale = 1.0 / (d as f32).sqrt();
    let rows = forks.len() * group;
    let mut out = vec![0.0f32; rows * d];
    let (mut sp, mut op) = (vec![0.0f32; rows * lp], vec![0.0f32; rows * d]);
    let mut own_scores = Vec::new();
    // Queries of this kv head's group, fork-major: row f * group + j.
    let mut qg = Vec::with_capacity(rows * d);
    for f in forks {
        qg.extend_from_slice(&f.q[g * group * d..(g + 1) * group * d]);
    }
    let q = View {
        data: &qg,
        rs: d,
        cs: 1,
    };
    let kt = View {
        data: &prefix_k[g * d..],
        rs: 1,
        cs: kv_row,
    };
    matmul_strided(rows, lp, d, q, kt, &mut sp, false);
    for (fi, f) in forks.iter().enumerate() {
        let own = f.upto - lp;
        for j in 0..group {
            let r = fi * group + j;
            let qh = &qg[r * d..(r + 1) * d];
            own_scores.clear();
            own_scores.extend((0..own).map(|p| {
                super::kernels::dot(qh, &f.own_k[p * kv_row + g * d..p * kv_row + (g + 1) * d])
                    * scale
            }));
            let pre = &mut sp[r * lp..(r + 1) * lp];
            pre.iter_mut().for_each(|x| *x *= scale);
            let max = pre
                .iter()
                .chain(own_scores.iter())
                .copied()
                .fold(f32::NEG_INFINITY, f32::max);
            let sum =
                super::simd::exp_shifted(pre, max) + super::simd::exp_shifted(&mut own_scores, max);
            let inv = 1.0 / sum;
            pre.iter_mut().for_each(|x| *x *= inv);
            let o = &mut out[r * d..(r + 1) * d];
            for (p, w) in own_scores.iter().enumerate() {
                let v = &f.own_v[p * kv_row + g * d..p * kv_row + (g + 1) * d];
                o.iter_mut().zip(v).for_each(|(o, v)| *o += w * inv * v);
            }
        }
    }
    let probs = View {
        data: &sp,
        rs: lp,
        cs: 1,
    };
    let values = View {
        data: &prefix_v[g * d..],
        rs: kv_row,
        cs: 1,
    };
    matmul_strided(rows, d, lp, probs, values, &mut op, false);
    out.iter_mut().zip(&op).for_each(|(o, v)| *o += v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::kernels::attend;

    #[test]
    fn block_attention_equals_row_by_row_attention_over_a_forked_cache() {
        let shape = Heads {
            heads: 4,
            kv_heads: 2,
            d: 8,
        };
        let (kv_row, q_w) = (shape.kv_heads * shape.d, shape.heads * shape.d);
        let val = |i: usize| ((i * 37 % 101) as f32 / 50.0 - 1.0) * 0.7;
        // A shared prefix of 5 tokens, then this sequence's own 3 earlier + 11 new tokens.
        let (pre, own, rows) = (5, 14, 11);
        let pk: Vec<f32> = (0..pre * kv_row).map(val).collect();
        let pv: Vec<f32> = (0..pre * kv_row).map(|i| val(i + 7)).collect();
        let ok: Vec<f32> = (0..own * kv_row).map(|i| val(i + 13)).collect();
        let ov: Vec<f32> = (0..own * kv_row).map(|i| val(i + 29)).collect();
        let kv = KvView {
            segments: [(&pk, &pv), (&ok, &ov)],
        };
        let width = q_w + 2 * kv_row;
        let q_rows: Vec<f32> = (0..rows * width).map(|i| val(i + 3)).collect();
        let start = pre + own - rows;
        let block = attend_block(&q_rows, width, rows, start, &kv, shape);
        let mut scratch = Vec::new();
        for i in 0..rows {
            let mut one = vec![0.0; q_w];
            let q = &q_rows[i * width..i * width + q_w];
            attend(q, &kv, start + i + 1, 4, 2, 8, &mut scratch, &mut one);
            for (a, b) in one.iter().zip(&block[i * q_w..(i + 1) * q_w]) {
                assert!((a - b).abs() < 1e-5, "row {i}: {a} vs {b}");
            }
        }
    }

    /// Forks with 1, 2 and 4 own tokens (the last being the query's own) over a prefix of `lp`
    /// tokens: `attend_forks` against row-by-row attention, and the outputs themselves.
    fn forks_against_row_by_row(lp: usize, forks_n: usize) -> Vec<Vec<f32>> {
        let shape = Heads {
            heads: 4,
            kv_heads: 2,
            d: 16,
        };
        let (kv_row, q_w) = (shape.kv_heads * shape.d, shape.heads * shape.d);
        let val = |i: usize| ((i * 53 % 97) as f32 / 48.0 - 1.0) * 0.9;
        let pk: Vec<f32> = (0..lp * kv_row).map(val).collect();
        let pv: Vec<f32> = (0..lp * kv_row).map(|i| val(i + 5)).collect();
        let owns: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..forks_n)
            .map(|f| {
                let n = [1usize, 2, 4][f % 3];
                let k = (0..n * kv_row).map(|i| val(i + 11 * f + 17)).collect();
                let v = (0..n * kv_row).map(|i| val(i + 7 * f + 23)).collect();
                let q = (0..q_w).map(|i| val(i + 13 * f + 31)).collect();
                (k, v, q)
            })
            .collect();
        let forks: Vec<ForkQuery<'_>> = owns
            .iter()
            .map(|(k, v, q)| ForkQuery {
                q,
                upto: lp + k.len() / kv_row,
                own_k: k,
                own_v: v,
            })
            .collect();
        let got = attend_forks(&forks, &pk, &pv, lp, shape);
        let mut scratch = Vec::new();
        for (f, fork) in forks.iter().enumerate() {
            let kv = KvView {
                segments: [(&pk, &pv), (fork.own_k, fork.own_v)],
            };
            let mut one = vec![0.0; q_w];
            attend(fork.q, &kv, fork.upto, 4, 2, 16, &mut scratch, &mut one);
            for (a, b) in one.iter().zip(&got[f]) {
                assert!((a - b).abs() < 1e-5, "fork {f}: {a} vs {b}");
            }
        }
        got
    }

    #[test]
    fn forks_over_a_shared_prefix_equal_row_by_row_attention() {
        forks_against_row_by_row(9, 3);
    }

    /// A prefix long enough for the kv heads to go to different threads gives the same bits as
    /// one thread.
    #[test]
    fn forks_split_across_threads_match_one_thread() {
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    // 4 forks x 2 query heads per kv head x 1024 keys x d 16 x 2 kv heads.
                    let split = crate::policy::kernels::worth_threads(4 * 2 * 1024 * 16 * 2);
                    (split, forks_against_row_by_row(1024, 4))
                })
        };
        let (split, two) = run(2);
        let (serial, one) = run(1);
        assert!(
            split && !serial,
            "the sizes must take the parallel path on two threads only"
        );
        assert_eq!(two, one);
    }
}
