//! One whole decoder layer as a single CPU op with a hand-written backward.
//!
//! candle's backprop gives every graph node's gradient a fresh zero tensor and then adds the
//! incoming gradient to it, so each activation-sized node costs an allocation, a memset and an
//! add; with ~15 such nodes per layer that was a sixth of a small model's training step. Here a
//! layer is one node: the forward keeps its intermediate activations for the backward, which
//! runs the layer's matmuls, RMSNorm, SiLU-gate and attention backward directly on buffers.
//! The composite candle layer (`forward_full` without fused ops) is the reference it is tested
//! against (`tests/policy_fused.rs`).

use std::ops::Range;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::Arch;
use super::fused::{rms_norm_backward, slice, with_f32};
use super::fused_attention::Attention;
use super::kernels::{View, WLayout, linear, matmul_large_new, par_rows, rms_norm_rows, silu_gate};
use super::regions::Regions;

/// The parameter names of one layer in the order they are packed into the op's weight input.
pub const PACKED_PARAMS: [&str; 12] = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.bias",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
];

/// Where each fused matrix sits in the packed weights (HF `[out, in]` layouts, q|k|v and
/// gate|up stacked along `out`).
struct Offsets {
    ln1: Range<usize>,
    qkv_w: Range<usize>,
    qkv_b: Range<usize>,
    o_w: Range<usize>,
    ln2: Range<usize>,
    gu_w: Range<usize>,
    down_w: Range<usize>,
}

/// Activations of the forward that the backward needs.
struct Saved {
    h1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    x1: Vec<f32>,
    h2: Vec<f32>,
    gu: Vec<f32>,
    m: Vec<f32>,
}

/// `y = x1 + down(silu(gate(h2)) * up(h2))`, `h2 = rms(x1)`, `x1 = x + o(attn(qkv(rms(x))))`
/// over `[B*T, H]` rows, with the layer's weights packed as [`PACKED_PARAMS`].
pub struct DecoderLayer {
    hidden: usize,
    q_width: usize,
    kv_width: usize,
    inter: usize,
    eps: f32,
    attn: Attention,
    /// Filled by the forward, taken by the backward (recomputed if missing, e.g. when the
    /// backward runs twice); freed with the graph when no backward comes.
    saved: Mutex<Option<Saved>>,
}

impl DecoderLayer {
    pub fn new(arch: &Arch, attn: Attention) -> DecoderLayer {
        DecoderLayer {
            hidden: arch.hidden_size,
            q_width: arch.num_heads * arch.head_dim,
            kv_width: arch.num_kv_heads * arch.head_dim,
            inter: arch.intermediate_size,
            eps: arch.rms_norm_eps as f32,
            attn,
            saved: Mutex::new(None),
        }
    }

    fn qkv_width(&self) -> usize {
        self.q_width + 2 * self.kv_width
    }

    fn offsets(&self) -> Offsets {
        let (h, qkv, i) = (self.hidden, self.qkv_width(), self.inter);
        let mut at = 0;
        let mut next = |len: usize| {
            at += len;
            at - len..at
        };
        Offsets {
            ln1: next(h),
            qkv_w: next(qkv * h),
            qkv_b: next(qkv),
            o_w: next(h * self.q_width),
            ln2: next(h),
            gu_w: next(2 * i * h),
            down_w: next(h * i),
        }
    }

    /// Packed weight length this layer expects.
    pub fn weights_len(&self) -> usize {
        self.offsets().down_w.end
    }

    fn forward(&self, x: &[f32], w: &[f32]) -> (Vec<f32>, Saved) {
        let o = self.offsets();
        let (h, qw, kvw, iw) = (self.hidden, self.q_width, self.kv_width, self.inter);
        let (n, width) = (x.len() / h, self.qkv_width());
        let mut h1 = Vec::new();
        rms_norm_rows(x, &w[o.ln1], self.eps, &mut h1);
        let mut qkv = Vec::new();
        let bias = Some(&w[o.qkv_b]);
        linear(
            &h1,
            n,
            h,
            &w[o.qkv_w],
            WLayout::OutIn,
            width,
            bias,
            &mut qkv,
        );
        let (mut q, mut k, mut v) = (
            Vec::with_capacity(n * qw),
            Vec::with_capacity(n * kvw),
            Vec::with_capacity(n * kvw),
        );
        for row in qkv.chunks_exact(width) {
            q.extend_from_slice(&row[..qw]);
            k.extend_from_slice(&row[qw..qw + kvw]);
            v.extend_from_slice(&row[qw + kvw..]);
        }
        let ctx = self.attn.forward(&q, &k, &v);
        let mut a = Vec::new();
        linear(&ctx, n, qw, &w[o.o_w], WLayout::OutIn, h, None, &mut a);
        let x1: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x + a).collect();
        let mut h2 = Vec::new();
        rms_norm_rows(&x1, &w[o.ln2], self.eps, &mut h2);
        let mut gu = Vec::new();
        linear(&h2, n, h, &w[o.gu_w], WLayout::OutIn, 2 * iw, None, &mut gu);
        let mut m = Vec::new();
        silu_gate(&gu, iw, &mut m);
        let mut down = Vec::new();
        linear(&m, n, iw, &w[o.down_w], WLayout::OutIn, h, None, &mut down);
        let y = x1.iter().zip(&down).map(|(a, b)| a + b).collect();
        let saved = Saved {
            h1,
            q,
            k,
            v,
            ctx,
            x1,
            h2,
            gu,
            m,
        };
        (y, saved)
    }

    /// Gradients for `x` and the packed weights given the output gradient `dy`.
    fn backward(&self, x: &[f32], w: &[f32], s: &Saved, dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let o = self.offsets();
        let (h, qw, kvw, iw) = (self.hidden, self.q_width, self.kv_width, self.inter);
        let (n, width) = (x.len() / h, self.qkv_width());
        // `a @ W^T` has input gradient `g @ W` and weight gradient `g^T @ a`.
        let mut dw = Regions::new(w.len());

        // MLP half: y = x1 + down(m), m = silu(g) * u, [g | u] = gu(h2), h2 = rms(x1).
        let dm = matmul_large_new(n, iw, h, rows(dy, h), rows(&w[o.down_w.clone()], iw));
        let (a, b) = (transposed(dy, h), rows(&s.m, iw));
        dw.product(o.down_w, (h, iw, n), a, b);
        let mut dgu = vec![0.0f32; n * 2 * iw];
        par_rows(&mut dgu, 2 * iw, s.gu.len(), |r, dgu| {
            let (g, u) = s.gu[2 * iw * r..2 * iw * (r + 1)].split_at(iw);
            let (dg, du) = dgu.split_at_mut(iw);
            super::simd::silu_gate_backward(g, u, &dm[iw * r..iw * (r + 1)], dg, du);
        });
        let (a, b) = (rows(&dgu, 2 * iw), rows(&w[o.gu_w.clone()], h));
        let dh2 = matmul_large_new(n, h, 2 * iw, a, b);
        let (a, b) = (transposed(&dgu, 2 * iw), rows(&s.h2, h));
        dw.product(o.gu_w, (2 * iw, h, n), a, b);
        let mut dx1 = dy.to_vec();
        let mut dln2 = vec![0.0f32; h];
        rms_norm_backward(
            &s.x1,
            &w[o.ln2.clone()],
            self.eps,
            &dh2,
            &mut dx1,
            &mut dln2,
        );
        dw.copy(o.ln2, &dln2);

        // Attention half: x1 = x + o(ctx), ctx = attn(q, k, v), [q | k | v] = qkv(h1) + b.
        let dctx = matmul_large_new(n, qw, h, rows(&dx1, h), rows(&w[o.o_w.clone()], qw));
        let (a, b) = (transposed(&dx1, h), rows(&s.ctx, qw));
        dw.product(o.o_w, (h, qw, n), a, b);
        let (dq, dk, dv) = self.attn.backward(&s.q, &s.k, &s.v, &s.ctx, &dctx);
        let mut dqkv = Vec::with_capacity(n * width);
        for i in 0..n {
            dqkv.extend_from_slice(&dq[i * qw..(i + 1) * qw]);
            dqkv.extend_from_slice(&dk[i * kvw..(i + 1) * kvw]);
            dqkv.extend_from_slice(&dv[i * kvw..(i + 1) * kvw]);
        }
        let mut db = vec![0.0f32; width];
        for row in dqkv.chunks_exact(width) {
            db.iter_mut().zip(row).for_each(|(b, g)| *b += g);
        }
        dw.copy(o.qkv_b, &db);
        let (a, b) = (rows(&dqkv, width), rows(&w[o.qkv_w.clone()], h));
        let dh1 = matmul_large_new(n, h, width, a, b);
        let (a, b) = (transposed(&dqkv, width), rows(&s.h1, h));
        dw.product(o.qkv_w, (width, h, n), a, b);
        let mut dx = dx1;
        let mut dln1 = vec![0.0f32; h];
        rms_norm_backward(x, &w[o.ln1.clone()], self.eps, &dh1, &mut dx, &mut dln1);
        dw.copy(o.ln1, &dln1);
        (dx, dw.finish())
    }
}

/// A `[rows, cols]` row-major matrix.
fn rows(data: &[f32], cols: usize) -> View<'_> {
    View {
        data,
        rs: cols,
        cs: 1,
    }
}

/// The transpose of a `[rows, cols]` row-major matrix.
fn transposed(data: &[f32], cols: usize) -> View<'_> {
    View {
        data,
        rs: 1,
        cs: cols,
    }
}

impl CustomOp2 for DecoderLayer {
    fn name(&self) -> &'static str {
        "tsr-decoder-layer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (slice(s1, l1)?, slice(s2, l2)?);
        if w.len() != self.weights_len() || x.len() % self.hidden != 0 {
            candle_core::bail!("decoder layer: packed weights or input of the wrong size");
        }
        let (y, saved) = self.forward(x, w);
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(saved);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (dx, dw) = with_f32(x, |x| {
            with_f32(w, |w| {
                with_f32(g, |g| {
                    let saved = saved.unwrap_or_else(|| self.forward(x, w).1);
                    self.backward(x, w, &saved, g)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
        ))
    }
}
