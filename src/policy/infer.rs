//! The inference forward: packed (ragged) batches over per-sequence KV caches.
//!
//! Sequences of different lengths are concatenated token-wise (no padding), each token carries
//! its own position, and attention reads only its own sequence's cache. A forked sample's cache
//! is the prompt's cache (shared, `Arc`) followed by its own tokens, so best-of-N costs one
//! prompt prefill plus N decodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::block_attention::{ForkQuery, Heads, MIN_BLOCK_ROWS, attend_block, attend_forks};
use super::kernels::{
    KvView, WLayout, attend, linear, par_rows, rms_norm_rows, rope_head, silu_gate, transpose,
};
use super::{Arch, Params, PolicyError};

/// One layer's weights, fused where that makes matmuls larger (q|k|v, gate|up), each matrix
/// stored `[in, out]` ([`WLayout::InOut`]) so the matmuls read it without repacking.
struct LayerW {
    ln1: Vec<f32>,
    qkv_w: Vec<f32>,
    qkv_b: Vec<f32>,
    o_w: Vec<f32>,
    ln2: Vec<f32>,
    gu_w: Vec<f32>,
    down_w: Vec<f32>,
}

/// A detached f32 copy of the weights laid out for the CPU kernels.
pub struct InferWeights {
    arch: Arch,
    embed: Vec<f32>,
    /// `lm_head.weight` (transposed, `[hidden, vocab]`) when untied; `None` reuses `embed`
    /// as it is (a transposed copy of a tied embedding would double its memory).
    head: Option<Vec<f32>>,
    norm: Vec<f32>,
    layers: Vec<LayerW>,
    /// RoPE tables `[positions, head_dim]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// Cached keys and values of one layer, `[len, kv_heads * head_dim]` each.
#[derive(Debug, Clone, Default)]
pub struct LayerKv {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// The KV cache of one sequence.
#[derive(Debug, Clone, Default)]
pub struct SeqCache {
    /// Shared prompt cache of forked samples (one entry per layer).
    pub prefix: Option<Arc<Vec<LayerKv>>>,
    /// Tokens held in `prefix`.
    pub prefix_len: usize,
    /// This sequence's own tokens (one entry per layer).
    pub own: Vec<LayerKv>,
    /// Tokens held in `own`.
    pub own_len: usize,
}

impl SeqCache {
    pub fn len(&self) -> usize {
        self.prefix_len + self.own_len
    }

    /// A new sequence continuing this one; this one's tokens become a shared prefix.
    pub fn freeze(self) -> Arc<Vec<LayerKv>> {
        assert!(
            self.prefix.is_none(),
            "only an unforked prompt cache is frozen"
        );
        Arc::new(self.own)
    }

    /// The same sequence with its shared prefix copied in, so that it can be frozen as a
    /// prefix itself (a prompt prefilled on top of a cached earlier prompt).
    pub fn flatten(self) -> SeqCache {
        let Some(prefix) = self.prefix else {
            return self;
        };
        let own = prefix
            .iter()
            .zip(self.own)
            .map(|(pre, own)| LayerKv {
                k: [pre.k.as_slice(), &own.k].concat(),
                v: [pre.v.as_slice(), &own.v].concat(),
            })
            .collect();
        SeqCache {
            prefix: None,
            prefix_len: 0,
            own,
            own_len: self.prefix_len + self.own_len,
        }
    }

    /// A fresh sequence that continues `prefix` of `len` tokens.
    pub fn forked(prefix: &Arc<Vec<LayerKv>>, len: usize) -> SeqCache {
        SeqCache {
            prefix: Some(prefix.clone()),
            prefix_len: len,
            own: Vec::new(),
            own_len: 0,
        }
    }

    fn view(&self, layer: usize) -> KvView<'_> {
        let empty: (&[f32], &[f32]) = (&[], &[]);
        let pre = self
            .prefix
            .as_ref()
            .map_or(empty, |p| (p[layer].k.as_slice(), p[layer].v.as_slice()));
        let own = self
            .own
            .get(layer)
            .map_or(empty, |l| (l.k.as_slice(), l.v.as_slice()));
        KvView {
            segments: [pre, own],
        }
    }
}

fn data(p: &Params, name: &str) -> Result<Vec<f32>, PolicyError> {
    Ok(p.get(name)?
        .flatten_all()?
        .to_device(&candle_core::Device::Cpu)?
        .to_vec1::<f32>()?)
}

impl InferWeights {
    pub fn build(arch: &Arch, p: &Params, rope_len: usize) -> Result<InferWeights, PolicyError> {
        let mut layers = Vec::with_capacity(arch.num_layers);
        let (h, iw) = (arch.hidden_size, arch.intermediate_size);
        let qkv_out = (arch.num_heads + 2 * arch.num_kv_heads) * arch.head_dim;
        let qw = arch.num_heads * arch.head_dim;
        for l in 0..arch.num_layers {
            let n = |s: &str| data(p, &format!("model.layers.{l}.{s}"));
            let cat = |parts: &[&str]| -> Result<Vec<f32>, PolicyError> {
                let mut out = Vec::new();
                for s in parts {
                    out.extend(n(s)?);
                }
                Ok(out)
            };
            // HF stores `[out, in]`; the kernels read `[in, out]`.
            let qkv = cat(&[
                "self_attn.q_proj.weight",
                "self_attn.k_proj.weight",
                "self_attn.v_proj.weight",
            ])?;
            let gu = cat(&["mlp.gate_proj.weight", "mlp.up_proj.weight"])?;
            layers.push(LayerW {
                ln1: n("input_layernorm.weight")?,
                qkv_w: transpose(&qkv, qkv_out, h),
                qkv_b: cat(&[
                    "self_attn.q_proj.bias",
                    "self_attn.k_proj.bias",
                    "self_attn.v_proj.bias",
                ])?,
                o_w: transpose(&n("self_attn.o_proj.weight")?, h, qw),
                ln2: n("post_attention_layernorm.weight")?,
                gu_w: transpose(&gu, 2 * iw, h),
                down_w: transpose(&n("mlp.down_proj.weight")?, h, iw),
            });
        }
        let (cos, sin) = super::ops::rope_tables_vec(arch.head_dim, arch.rope_theta, rope_len);
        Ok(InferWeights {
            arch: arch.clone(),
            embed: data(p, "model.embed_tokens.weight")?,
            head: if arch.tie_word_embeddings {
                None
            } else {
                Some(transpose(&data(p, "lm_head.weight")?, arch.vocab_size, h))
            },
            norm: data(p, "model.norm.weight")?,
            layers,
            cos,
            sin,
        })
    }

    fn rope_len(&self) -> usize {
        self.cos.len() / self.arch.head_dim
    }

    /// Append `tokens[s]` to sequence `s` for every s, and return logits `[rows, V]` of the
    /// last appended token of each sequence that appended any (`all = false`), or of every
    /// appended token in order (`all = true`).
    pub fn forward(
        &self,
        caches: &mut [SeqCache],
        tokens: &[&[u32]],
        all: bool,
    ) -> Result<Vec<f32>, PolicyError> {
        let a = &self.arch;
        let (h, d, nh, nkv) = (a.hidden_size, a.head_dim, a.num_heads, a.num_kv_heads);
        let (qw, kvw, iw) = (nh * d, nkv * d, a.intermediate_size);
        let eps = a.rms_norm_eps as f32;
        // Token-wise bookkeeping: which sequence and position each packed row is.
        let mut seq_of = Vec::new();
        let mut pos_of = Vec::new();
        for (s, toks) in tokens.iter().enumerate() {
            let base = caches[s].len();
            if base + toks.len() > self.rope_len() {
                return Err(PolicyError::Input(format!(
                    "sequence {s} would reach {} tokens, beyond the context limit {}",
                    base + toks.len(),
                    self.rope_len()
                )));
            }
            for (j, &t) in toks.iter().enumerate() {
                if t as usize >= a.vocab_size {
                    return Err(PolicyError::Input(format!(
                        "token id {t} is outside the model vocabulary ({})",
                        a.vocab_size
                    )));
                }
                seq_of.push(s);
                pos_of.push(base + j);
            }
            if caches[s].own.is_empty() {
                caches[s].own = vec![LayerKv::default(); a.num_layers];
            }
        }
        let n = seq_of.len();
        let mut x = Vec::with_capacity(n * h);
        for toks in tokens {
            for &t in toks.iter() {
                x.extend_from_slice(&self.embed[t as usize * h..(t as usize + 1) * h]);
            }
        }
        let (mut hbuf, mut qkv, mut attn, mut proj, mut gu, mut act) = (
            Vec::new(),
            Vec::new(),
            vec![0.0; n * qw],
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        for (l, w) in self.layers.iter().enumerate() {
            rms_norm_rows(&x, &w.ln1, eps, &mut hbuf);
            linear(
                &hbuf,
                n,
                h,
                &w.qkv_w,
                WLayout::InOut,
                qw + 2 * kvw,
                Some(&w.qkv_b),
                &mut qkv,
            );
            let width = qw + 2 * kvw;
            for (row, &p) in qkv.chunks_exact_mut(width).zip(&pos_of) {
                let (cos, sin) = (&self.cos[p * d..(p + 1) * d], &self.sin[p * d..(p + 1) * d]);
                for head in row[..qw + kvw].chunks_exact_mut(d) {
                    rope_head(head, cos, sin);
                }
            }
            for (row, &s) in qkv.chunks_exact(width).zip(&seq_of) {
                let kv = &mut caches[s].own[l];
                kv.k.extend_from_slice(&row[qw..qw + kvw]);
                kv.v.extend_from_slice(&row[qw + kvw..]);
            }
            let caches_ref = &*caches;
            let qkv_ref = &qkv;
            // Long blocks (prompt prefills) by matmuls, the other rows one by one.
            let mut first = 0;
            let mut blocks = Vec::new();
            for (s, toks) in tokens.iter().enumerate() {
                if toks.len() >= MIN_BLOCK_ROWS {
                    blocks.push((s, first, toks.len()));
                }
                first += toks.len();
            }
            let shape = Heads {
                heads: nh,
                kv_heads: nkv,
                d,
            };
            for &(s, first, rows) in &blocks {
                let out = attend_block(
                    &qkv[first * width..],
                    width,
                    rows,
                    pos_of[first],
                    &caches_ref[s].view(l),
                    shape,
                );
                attn[first * qw..(first + rows) * qw].copy_from_slice(&out);
            }
            let in_block = |i: usize| tokens[seq_of[i]].len() >= MIN_BLOCK_ROWS;
            // Other rows of forked sequences: together per shared prompt.
            let mut forks: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
            for i in (0..n).filter(|&i| !in_block(i)) {
                if let Some(prefix) = &caches_ref[seq_of[i]].prefix {
                    forks
                        .entry(Arc::as_ptr(prefix) as usize)
                        .or_default()
                        .push(i);
                }
            }
            let fork_out: Vec<(Vec<usize>, Vec<Vec<f32>>)> = forks
                .into_values()
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|rows| {
                    let first = &caches_ref[seq_of[rows[0]]];
                    let prefix = &first.prefix.as_ref().expect("forked rows")[l];
                    let queries: Vec<ForkQuery<'_>> = rows
                        .iter()
                        .map(|&i| {
                            let own = &caches_ref[seq_of[i]].own[l];
                            ForkQuery {
                                q: &qkv_ref[i * width..i * width + qw],
                                upto: pos_of[i] + 1,
                                own_k: &own.k,
                                own_v: &own.v,
                            }
                        })
                        .collect();
                    let lp = first.prefix_len;
                    let out = attend_forks(&queries, &prefix.k, &prefix.v, lp, shape);
                    (rows, out)
                })
                .collect();
            let mut done = vec![false; n];
            for (rows, outs) in fork_out {
                for (i, o) in rows.into_iter().zip(outs) {
                    attn[i * qw..(i + 1) * qw].copy_from_slice(&o);
                    done[i] = true;
                }
            }
            let work = pos_of.iter().map(|p| (p + 1) * qw).sum::<usize>();
            par_rows(&mut attn, qw, work, |i, out| {
                if in_block(i) || done[i] {
                    return;
                }
                let mut scratch = Vec::new();
                let view = caches_ref[seq_of[i]].view(l);
                let q = &qkv_ref[i * width..i * width + qw];
                attend(q, &view, pos_of[i] + 1, nh, nkv, d, &mut scratch, out);
            });
            linear(&attn, n, qw, &w.o_w, WLayout::InOut, h, None, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
            rms_norm_rows(&x, &w.ln2, eps, &mut hbuf);
            linear(&hbuf, n, h, &w.gu_w, WLayout::InOut, 2 * iw, None, &mut gu);
            silu_gate(&gu, iw, &mut act);
            linear(&act, n, iw, &w.down_w, WLayout::InOut, h, None, &mut proj);
            x.iter_mut().zip(&proj).for_each(|(x, p)| *x += p);
        }
        for (s, toks) in tokens.iter().enumerate() {
            caches[s].own_len += toks.len();
        }
        let rows: Vec<usize> = if all {
            (0..n).collect()
        } else {
            let mut last = Vec::new();
            let mut end = 0;
            for toks in tokens {
                end += toks.len();
                if !toks.is_empty() {
                    last.push(end - 1);
                }
            }
            last
        };
        let picked: Vec<f32> = rows
            .iter()
            .flat_map(|&r| x[r * h..(r + 1) * h].iter().copied())
            .collect();
        rms_norm_rows(&picked, &self.norm, eps, &mut hbuf);
        let (head, layout) = match &self.head {
            Some(t) => (t.as_slice(), WLayout::InOut),
            None => (self.embed.as_slice(), WLayout::OutIn),
        };
        let mut logits = Vec::new();
        let v = a.vocab_size;
        linear(&hbuf, rows.len(), h, head, layout, v, None, &mut logits);
        Ok(logits)
    }
}
