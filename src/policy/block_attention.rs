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
}
