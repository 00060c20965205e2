//! Products of a few rows with a `[k, n]` weight, as in decoding (one row per sequence in the
//! batch).
//!
//! Hand-written because gemm, which every other product here uses, is up to 2x slower on the
//! weights of a decode step when they do not stay in cache: with a few rows it walks the weight
//! column block by column block, one cache line per weight row, every line on a new page. This
//! kernel reads the weight once, whole row after row. On weights that stay in cache between
//! steps (all of `tiny`'s 3 MB) gemm's register blocking wins by 1.2-2.5x, so `linear` sends only
//! large matrices here (measured per preset: BENCHMARKS.md, "Decode kernel").

use rayon::prelude::*;

/// Most rows this kernel takes: its time grows with the rows (every output element is loaded
/// and stored once per 8 weight rows), gemm's hardly at all below 64 rows. Whole `small` decode
/// steps' products, against gemm's time (quiet machine, tenth session): 0.49-0.60 at 2 rows,
/// 0.60-0.64 at 4, 0.59-0.72 at 8, 0.81-0.97 at 16, 0.84-1.12 at 32 with one thread; 0.48-0.54,
/// 0.70-0.81, 0.75-0.89, 0.92-1.08, 1.16-1.33 with two. gemm's single-row path is as fast as
/// this kernel at one row.
pub const MAX_ROWS: usize = 8;

/// Fewest weights (`k * n`) of a matrix this kernel takes, 512 KB of f32: `small`'s attention
/// projections (0.6-1 MB) gain as much as its MLP, while every matrix of `tiny` (at most 0.35
/// MB, the whole model a few MB) stays cached between steps, where gemm is faster.
pub const MIN_WEIGHTS: usize = 1 << 17;

/// Output columns per pass over the weight rows: whole rows for every model here, so the weight
/// streams contiguously (runs of up to 16 KB, which the hardware prefetcher follows). Passes of
/// 256 columns (1 KB runs, every one on a new page) were 1.3-1.5x slower on `small`'s decode
/// products (BENCHMARKS.md, "Decode kernel", tenth session) although their output rows stayed
/// in L1.
const COLS: usize = 4096;

/// Columns per thread are a multiple of this (four cache lines of 16 floats), so the threads'
/// ranges of a weight row share at most one line (none when the row starts on a line).
const SPLIT: usize = 64;

/// Weight rows combined per read-modify-write of an output element: 8 multiply-adds per load
/// and store of the output instead of one.
const UNROLL: usize = 8;

/// `out[m, n] = x[m, k] @ w[k, n] (+ bias[n])`, `w` row-major. `out` is resized to `m * n`.
/// Every output row is computed by the same operations in the same order whatever `m` is, so a
/// sequence's logits do not depend on what else shares its batch.
#[allow(clippy::too_many_arguments)]
pub fn product(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    threads: usize,
    out: &mut Vec<f32>,
) {
    assert_eq!(x.len(), m * k, "skinny product: input of the wrong size");
    assert_eq!(w.len(), k * n, "skinny product: weight of the wrong size");
    if let Some(b) = bias {
        assert_eq!(b.len(), n, "skinny product: bias of the wrong size");
    }
    out.clear();
    out.resize(m * n, 0.0);
    if threads <= 1 || n < 2 * SPLIT {
        columns(x, m, k, w, n, 0..n, bias, out, n);
        return;
    }
    // Each thread takes a contiguous range of output columns into its own `[m, width]` buffer,
    // copied into place afterwards (m * n floats, small beside the k * n weights it read).
    let per = n.div_ceil(threads).div_ceil(SPLIT) * SPLIT;
    let parts: Vec<(usize, Vec<f32>)> = (0..n.div_ceil(per))
        .into_par_iter()
        .map(|t| {
            let cols = t * per..((t + 1) * per).min(n);
            let width = cols.len();
            let mut part = vec![0.0; m * width];
            columns(x, m, k, w, n, cols.clone(), bias, &mut part, width);
            (cols.start, part)
        })
        .collect();
    for (start, part) in parts {
        let width = part.len() / m;
        for (r, row) in part.chunks_exact(width).enumerate() {
            out[r * n + start..r * n + start + width].copy_from_slice(row);
        }
    }
}

/// Output columns `cols` of the product into `dst`, whose rows are `stride` apart and start at
/// column `cols.start`.
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
fn columns(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    cols: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    dst: &mut [f32],
    stride: usize,
) {
    let mut j0 = cols.start;
    while j0 < cols.end {
        let width = COLS.min(cols.end - j0);
        let at = |r: usize| (r * stride + j0 - cols.start)..(r * stride + j0 - cols.start + width);
        for r in 0..m {
            let y = &mut dst[at(r)];
            match bias {
                Some(b) => y.copy_from_slice(&b[j0..j0 + width]),
                None => y.fill(0.0),
            }
        }
        let wrow = |kk: usize| &w[kk * n + j0..kk * n + j0 + width];
        let mut kk = 0;
        while kk + UNROLL <= k {
            let ws: [&[f32]; UNROLL] = std::array::from_fn(|i| wrow(kk + i));
            for r in 0..m {
                let a = &x[r * k + kk..r * k + kk + UNROLL];
                let y = &mut dst[at(r)];
                let [w0, w1, w2, w3, w4, w5, w6, w7] = ws.map(|s| &s[..y.len()]);
                for j in 0..y.len() {
                    y[j] += (a[0] * w0[j] + a[1] * w1[j] + a[2] * w2[j] + a[3] * w3[j])
                        + (a[4] * w4[j] + a[5] * w5[j] + a[6] * w6[j] + a[7] * w7[j]);
                }
            }
            kk += UNROLL;
        }
        for kk in kk..k {
            let w0 = wrow(kk);
            for r in 0..m {
                let a = x[r * k + kk];
                for (y, wv) in dst[at(r)].iter_mut().zip(w0) {
                    *y += a * wv;
                }
            }
        }
        j0 += width;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[f32],
        n: usize,
        b: Option<&[f32]>,
    ) -> Vec<f32> {
        let mut out = vec![0.0f64; m * n];
        for r in 0..m {
            for j in 0..n {
                let mut s = b.map_or(0.0, |b| b[j] as f64);
                for kk in 0..k {
                    s += x[r * k + kk] as f64 * w[kk * n + j] as f64;
                }
                out[r * n + j] = s;
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len as u32)
            .map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn matches_a_float64_product_for_every_shape_edge() {
        // k not a multiple of the unroll, n not a multiple of the thread split, n large enough
        // to split across threads, and n beyond one pass of columns.
        for (m, k, n) in [
            (2, 13, 7),
            (3, 16, 300),
            (5, 37, 513),
            (32, 9, 1030),
            (2, 8, 256),
            (3, 11, 2 * COLS + 5),
        ] {
            let (x, w, b) = (values(m * k, 1), values(k * n, 2), values(n, 3));
            for bias in [None, Some(b.as_slice())] {
                let want = reference(&x, m, k, &w, n, bias);
                for threads in [1, 3] {
                    let mut out = vec![7.0; 3];
                    product(&x, m, k, &w, n, bias, threads, &mut out);
                    assert_eq!(out.len(), m * n);
                    for (o, e) in out.iter().zip(&want) {
                        assert!(
                            (o - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{m}x{k}x{n}: {o} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_does_not_depend_on_the_other_rows_or_threads() {
        let (m, k, n) = (6, 40, 700);
        let (x, w) = (values(m * k, 4), values(k * n, 5));
        let mut all = Vec::new();
        product(&x, m, k, &w, n, None, 2, &mut all);
        for r in 0..m {
            let mut one = Vec::new();
            let pair: Vec<f32> = [&x[r * k..(r + 1) * k], &x[..k]].concat();
            product(&pair, 2, k, &w, n, None, 1, &mut one);
            assert_eq!(&one[..n], &all[r * n..(r + 1) * n], "row {r}");
        }
    }
}
