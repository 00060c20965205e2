//! Plain f32 CPU kernels for the inference path: no graph, no per-op allocation.

use rayon::prelude::*;

/// Work (multiply-adds) below which splitting across threads costs more than it saves.
const PAR_THRESHOLD: usize = 1 << 18;

/// How a weight matrix of a linear layer is laid out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum WLayout {
    /// `[n, k]` row-major: the Hugging Face `[out, in]` layout (used for the tied embedding,
    /// which is also read row by row as the token lookup table).
    OutIn,
    /// `[k, n]` row-major. gemm's microkernel wants the weight operand column-major; in this
    /// layout it reads it in place, while `OutIn` makes gemm repack the whole matrix on every
    /// call, which dominated decoding at small batches (a 12.7M-parameter model spent a fifth
    /// of its decode time packing).
    InOut,
}

/// Transpose a `[rows, cols]` row-major matrix into `[cols, rows]` row-major.
pub fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(w.len(), rows * cols);
    let mut t = vec![0.0; w.len()];
    for (r, row) in w.chunks_exact(cols).enumerate() {
        for (c, v) in row.iter().enumerate() {
            t[c * rows + r] = *v;
        }
    }
    t
}

/// Whether `work` (multiply-adds, or elements of a row-wise op) is worth splitting across
/// threads.
pub(super) fn worth_threads(work: usize) -> bool {
    work >= PAR_THRESHOLD && rayon::current_num_threads() > 1
}

/// gemm's threading for a product of `work` multiply-adds.
pub(super) fn parallelism(work: usize) -> gemm::Parallelism {
    if worth_threads(work) {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    }
}

/// `out[m, n] = x[m, k] @ W` where `W` is the `[k, n]` weight stored as `layout` says, plus
/// `bias[n]` when given. Decode-sized products (a few rows) with a large `InOut` weight go to
/// [`super::skinny`], everything else to gemm.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    layout: WLayout,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut Vec<f32>,
) {
    let decode_sized = (2..=super::skinny::MAX_ROWS).contains(&m);
    if layout == WLayout::InOut && decode_sized && k * n >= super::skinny::MIN_WEIGHTS {
        let threads = match parallelism(m * n * k) {
            gemm::Parallelism::Rayon(t) => t,
            gemm::Parallelism::None => 1,
        };
        super::skinny::product(x, m, k, w, n, bias, threads, out);
    } else {
        gemm_product(x, m, k, w, layout, n, bias, out);
    }
}

/// [`linear`] through gemm whatever the shape (also the baseline of `tsr bench model --only
/// kernel`).
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_product(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    layout: WLayout,
    n: usize,
    bias: Option<&[f32]>,
    out: &mut Vec<f32>,
) {
    assert_eq!(x.len(), m * k, "linear: input of the wrong size");
    assert_eq!(w.len(), n * k, "linear: weight of the wrong size");
    out.clear();
    // gemm's single-row and single-column paths view `out` as a slice, so it must be initialised
    // there; so must every output of an empty product.
    if m == 0 || n == 0 || k == 0 || m == 1 || n == 1 {
        out.resize(m * n, 0.0);
    }
    if m == 0 || n == 0 || k == 0 {
        if let (Some(b), true) = (bias, n > 0) {
            out.chunks_exact_mut(n)
                .for_each(|row| row.copy_from_slice(b));
        }
        return;
    }
    // Otherwise the product overwrites every element (gemm is told not to read `out`), so the
    // buffer is not zeroed first: that memset was 1% of a `small` training step.
    if out.is_empty() {
        out.reserve(m * n);
    }
    let par = parallelism(m * n * k);
    // Strides of W's element (row kk, column j): (row stride, column stride).
    let (w_rs, w_cs) = match layout {
        WLayout::OutIn => (1, k as isize),
        WLayout::InOut => (n as isize, 1),
    };
    // SAFETY: every pointer covers the extent implied by its (m, n, k, strides), checked above;
    // `out` has capacity for m * n elements, all of which gemm writes before `set_len`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            w_cs,
            w_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
        out.set_len(m * n);
    }
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(n) {
            for (o, bv) in row.iter_mut().zip(b) {
                *o += bv;
            }
        }
    }
}

/// RMSNorm of each `h`-wide row of `x` into `out` (rows split across threads when a training
/// batch's worth of them: this ran on one thread while the other idled).
pub fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut Vec<f32>) {
    let h = w.len();
    out.clear();
    out.resize(x.len(), 0.0);
    par_rows(out, h, x.len(), |i, o| {
        let row = &x[i * h..(i + 1) * h];
        let ms = row.iter().map(|v| v * v).sum::<f32>() / h as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, v), wv) in o.iter_mut().zip(row).zip(w) {
            *o = v * inv * wv;
        }
    });
}

/// Rotate-half RoPE in place on one head vector at the angles of `cos`/`sin` rows.
#[inline]
pub fn rope_head(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    for j in 0..half {
        let (a, b) = (x[j], x[j + half]);
        x[j] = a * cos[j] - b * sin[j];
        x[j + half] = b * cos[j + half] + a * sin[j + half];
    }
}

/// `silu(gate) * up` where each row of `gu` is `[gate (i) | up (i)]`.
pub fn silu_gate(gu: &[f32], i: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(gu.len() / 2, 0.0);
    par_rows(out, i, gu.len(), |r, o| {
        let (g, u) = gu[2 * i * r..2 * i * (r + 1)].split_at(i);
        super::simd::silu_gate(g, u, o);
    });
}

/// Dot product in 8 independent lanes so the compiler vectorises it (always inlined, so that
/// it takes the target features of its caller).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Key/value rows of one sequence in one layer, as slices of `[len, kv_heads * head_dim]`
/// segments: a shared prefix first (the prompt of forked samples), then the sequence's own.
pub struct KvView<'a> {
    pub segments: [(&'a [f32], &'a [f32]); 2],
}

/// Attention of one query token (all heads, `q` is `[heads * d]`) over the first `upto` cached
/// positions of `kv`; writes `[heads * d]` into `out`. `scratch` holds the scores.
///
/// Compiled for several x86 feature levels and picked at run time (see [`super::simd`]): the
/// scalar loop was a sixth of decoding time. The query heads sharing a key/value head are
/// handled together, so each cached key and value row is read once per group, not per head.
#[multiversion::multiversion(targets("x86_64+avx512f", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    kv: &KvView<'_>,
    upto: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    scratch: &mut Vec<f32>,
    out: &mut [f32],
) {
    let group = heads / kv_heads;
    let row = kv_heads * d;
    let scale = 1.0 / (d as f32).sqrt();
    out[..heads * d].fill(0.0);
    for g in 0..kv_heads {
        let heads_of_g = g * group..(g + 1) * group;
        scratch.clear();
        scratch.resize(group * upto, 0.0);
        let mut p = 0;
        for (k, _) in kv.segments {
            let take = (upto - p).min(k.len() / row);
            for kp in k.chunks_exact(row).take(take) {
                let kh = &kp[g * d..(g + 1) * d];
                for (j, h) in heads_of_g.clone().enumerate() {
                    scratch[j * upto + p] = dot(&q[h * d..(h + 1) * d], kh) * scale;
                }
                p += 1;
            }
        }
        for scores in scratch.chunks_exact_mut(upto) {
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let inv = 1.0 / super::simd::exp_shifted(scores, max);
            scores.iter_mut().for_each(|s| *s *= inv);
        }
        let mut p = 0;
        for (_, v) in kv.segments {
            let take = (upto - p).min(v.len() / row);
            for vp in v.chunks_exact(row).take(take) {
                let vh = &vp[g * d..(g + 1) * d];
                for (j, h) in heads_of_g.clone().enumerate() {
                    let wgt = scratch[j * upto + p];
                    for (o, vv) in out[h * d..(h + 1) * d].iter_mut().zip(vh) {
                        *o += wgt * vv;
                    }
                }
                p += 1;
            }
        }
    }
}

/// Run `f(i, chunk_i)` over the `width`-wide chunks of `out`, in parallel when the total work
/// is worth it (below [`PAR_THRESHOLD`], e.g. a decode step's few rows, on the calling thread).
/// Each chunk is computed the same way whatever the split, so results do not depend on it.
pub fn par_rows<F>(out: &mut [f32], width: usize, work: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    if worth_threads(work) {
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(width).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// A strided view of a row-major-ish matrix for [`matmul_strided`]: element (r, c) is at
/// `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// `out[m, n] (+)= a[m, k] @ b[k, n]` for strided views, single-threaded (callers parallelise
/// over independent products). `out` is dense row-major `[m, n]`.
pub fn matmul_strided(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    out: &mut [f32],
    accumulate: bool,
) {
    matmul_views(m, n, k, a, b, out, accumulate, gemm::Parallelism::None)
}

/// One large product (split across threads when the work is worth it) into a new `[m, n]`
/// buffer that is written, never zeroed first (backward allocates one per product; zeroing
/// them was 1-2% of a `small` training step).
pub fn matmul_large_new(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>) -> Vec<f32> {
    // gemm's single-row and single-column paths view the output as a slice: zero it there.
    if m <= 1 || n <= 1 || k == 0 {
        let mut out = vec![0.0; m * n];
        if m > 0 && n > 0 && k > 0 {
            matmul_views(m, n, k, a, b, &mut out, false, parallelism(m * n * k));
        }
        return out;
    }
    let mut out = Vec::with_capacity(m * n);
    check_views(m, n, k, &a, &b);
    // SAFETY: the views are bounds-checked; `out` has capacity for the m * n elements gemm
    // writes (it does not read them: `accumulate` is false) before `set_len`.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            &a,
            &b,
            out.as_mut_ptr(),
            false,
            parallelism(m * n * k),
        );
        out.set_len(m * n);
    }
    out
}

pub(super) fn check_views(m: usize, n: usize, k: usize, a: &View<'_>, b: &View<'_>) {
    // Checked arithmetic: a wrapped offset would pass the bounds check.
    let last = |v: &View<'_>, r: usize, c: usize| {
        (r - 1)
            .checked_mul(v.rs)
            .zip((c - 1).checked_mul(v.cs))
            .and_then(|(x, y)| x.checked_add(y))
    };
    let inside = |v: &View<'_>, r, c| last(v, r, c).is_some_and(|i| i < v.data.len());
    assert!(
        inside(a, m, k) && inside(b, k, n),
        "matmul view out of bounds"
    );
}

/// `out[m, n] (+)= a[m, k] @ b[k, n]`, row-major `out`.
///
/// # Safety
/// `out` must be valid for writes (and reads when `accumulate`) of m * n elements, m, n, k > 0,
/// and the views must pass [`check_views`].
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    a: &View<'_>,
    b: &View<'_>,
    out: *mut f32,
    accumulate: bool,
    par: gemm::Parallelism,
) {
    // SAFETY: the `# Safety` conditions above bound every element gemm touches.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_views(
    m: usize,
    n: usize,
    k: usize,
    a: View<'_>,
    b: View<'_>,
    out: &mut [f32],
    accumulate: bool,
    par: gemm::Parallelism,
) {
    assert!(out.len() >= m * n, "matmul output too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out[..m * n].fill(0.0);
        }
        return;
    }
    check_views(m, n, k, &a, &b);
    // SAFETY: `out` holds m * n elements and the views are bounds-checked above.
    unsafe { gemm_raw(m, n, k, &a, &b, out.as_mut_ptr(), accumulate, par) }
}
