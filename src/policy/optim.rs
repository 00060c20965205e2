//! AdamW with two learning rates (actor, critic), global-norm clipping and a skip on non-finite
//! gradients. Hand-written rather than `candle_nn::AdamW` because that one has one learning
//! rate for all parameters and keeps its moments private, so they could not be checkpointed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor, Var};
use rayon::prelude::*;

use super::{ModelSection, Policy, PolicyError};

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptStats {
    /// Global L2 norm of the gradient before clipping.
    pub grad_norm: f64,
    /// True when the norm was not finite and nothing was changed.
    pub skipped: bool,
}

/// One parameter with its moments and group.
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    /// Value-head parameters use `critic_lr`.
    critic: bool,
}

/// Constants of one AdamW step.
struct AdamHyper {
    b1: f64,
    b2: f64,
    /// Bias corrections `1 - beta^t`.
    c1: f64,
    c2: f64,
    eps: f64,
    wd: f64,
    /// Gradient scale from clipping (1 = none).
    clip: f64,
}

/// The same update as the tensor version, in place on the moments and the weights (the tensor
/// version costs ten candle ops per parameter, which dominates small models' steps; copying
/// every buffer out and back in cost `small` 3% of a training step).
fn adamw_cpu(slot: &mut Slot, g: &Tensor, lr: f64, h: &AdamHyper) -> Result<(), PolicyError> {
    let clip = h.clip as f32;
    // A gradient that reached us as a strided view is copied once; the rest is in place.
    let g = &g.contiguous()?;
    slot.m.inplace_op2(
        g,
        &Moment {
            beta: h.b1 as f32,
            clip,
            square: false,
        },
    )?;
    slot.v.inplace_op2(
        g,
        &Moment {
            beta: h.b2 as f32,
            clip,
            square: true,
        },
    )?;
    let apply = Apply {
        c1: h.c1 as f32,
        c2: h.c2 as f32,
        eps: h.eps as f32,
        lr: lr as f32,
        decay: (1.0 - lr * h.wd) as f32,
    };
    slot.var.as_tensor().inplace_op3(&slot.m, &slot.v, &apply)?;
    Ok(())
}

/// The same update as candle tensor ops, for parameters on other devices.
fn adamw_tensors(slot: &mut Slot, g: &Tensor, lr: f64, h: &AdamHyper) -> Result<(), PolicyError> {
    let g = if h.clip < 1.0 {
        (g * h.clip)?
    } else {
        g.clone()
    };
    slot.m = ((&slot.m * h.b1)? + (&g * (1.0 - h.b1))?)?;
    slot.v = ((&slot.v * h.b2)? + (g.sqr()? * (1.0 - h.b2))?)?;
    let denom = ((&slot.v / h.c2)?.sqrt()? + h.eps)?;
    let update = ((&slot.m / h.c1)? / denom)?;
    let decayed = (slot.var.as_tensor() * (1.0 - lr * h.wd))?;
    slot.var.set(&(decayed - (update * lr)?)?)?;
    Ok(())
}

/// Squared L2 norm of a gradient (0 when the loss did not reach the parameter).
fn squared_norm(g: Option<&Tensor>) -> Result<f64, PolicyError> {
    Ok(match g {
        Some(g) if g.device().is_cpu() => {
            super::fused::with_f32(g, |g| g.iter().map(|&x| (x as f64) * (x as f64)).sum())?
        }
        Some(g) => g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64,
        None => 0.0,
    })
}

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => candle_core::bail!("AdamW needs contiguous tensors"),
    }
}

fn contiguous_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    match (l.contiguous_offsets(), s) {
        (Some((a, b)), CpuStorage::F32(v)) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("AdamW needs contiguous f32 tensors"),
    }
}

/// A moment's update in place: `m = beta m + (1 - beta) (clip g)` (or `(clip g)^2`).
struct Moment {
    beta: f32,
    clip: f32,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "tsr-adam-moment"
    }

    fn cpu_fwd(
        &self,
        m: &mut CpuStorage,
        lm: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> candle_core::Result<()> {
        let (m, g) = (contiguous_mut(m, lm)?, contiguous(g, lg)?);
        if m.len() != g.len() {
            candle_core::bail!("AdamW: moment and gradient differ in length");
        }
        let (beta, rest, clip) = (self.beta, 1.0 - self.beta, self.clip);
        if self.square {
            m.iter_mut()
                .zip(g)
                .for_each(|(m, &g)| *m = beta * *m + rest * (clip * g) * (clip * g));
        } else {
            m.iter_mut()
                .zip(g)
                .for_each(|(m, &g)| *m = beta * *m + rest * (clip * g));
        }
        Ok(())
    }
}

/// The weight update in place: `p = p (1 - lr wd) - lr (m / c1) / (sqrt(v / c2) + eps)`.
struct Apply {
    c1: f32,
    c2: f32,
    eps: f32,
    lr: f32,
    decay: f32,
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "tsr-adamw-apply"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        lp: &Layout,
        m: &CpuStorage,
        lm: &Layout,
        v: &CpuStorage,
        lv: &Layout,
    ) -> candle_core::Result<()> {
        let p = contiguous_mut(p, lp)?;
        let (m, v) = (contiguous(m, lm)?, contiguous(v, lv)?);
        if m.len() != p.len() || v.len() != p.len() {
            candle_core::bail!("AdamW: weight and moments differ in length");
        }
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            let update = (m / self.c1) / ((v / self.c2).sqrt() + self.eps);
            *p = *p * self.decay - self.lr * update;
        }
        Ok(())
    }
}

/// Optimizer state for a [`Policy`].
pub struct PolicyOptimizer {
    slots: Vec<Slot>,
    /// Applied steps (skipped ones do not count); Adam's bias correction uses it.
    pub step: u64,
    lr: f64,
    critic_lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    grad_clip: f64,
    /// The policy's weight version, bumped on every applied step.
    version: Arc<AtomicU64>,
    /// L2 norm of each parameter's gradient at the last step (0 when it had none).
    last_grad_norms: Vec<(String, f64)>,
}

impl PolicyOptimizer {
    /// Actor parameters at `s.lr`, value head at `s.critic_lr`, moments at zero.
    pub fn new(p: &Policy, s: &ModelSection) -> Result<Self, PolicyError> {
        let mut slots = Vec::new();
        for (name, var) in p.params.names().iter().zip(p.params.vars()) {
            slots.push(Slot {
                name: name.clone(),
                var: var.clone(),
                m: var.zeros_like()?,
                v: var.zeros_like()?,
                critic: name.starts_with("value_head"),
            });
        }
        Ok(PolicyOptimizer {
            slots,
            step: 0,
            lr: s.lr,
            critic_lr: s.critic_lr,
            beta1: s.beta1,
            beta2: s.beta2,
            eps: s.eps,
            weight_decay: s.weight_decay,
            grad_clip: s.grad_clip,
            version: p.version.clone(),
            last_grad_norms: Vec::new(),
        })
    }

    /// Change the learning rates (e.g. for a schedule).
    pub fn set_lrs(&mut self, lr: f64, critic_lr: f64) {
        self.lr = lr;
        self.critic_lr = critic_lr;
    }

    /// Backward of `loss`, clip the global norm at `grad_clip` (0 = no clipping), one AdamW
    /// step. A non-finite norm skips the step (weights and moments untouched). Parameters the
    /// loss does not reach are left alone, as in PyTorch.
    pub fn step(&mut self, loss: &Tensor) -> Result<OptStats, PolicyError> {
        let grads = loss.backward()?;
        let found: Vec<Option<Tensor>> = (self.slots.iter())
            .map(|slot| grads.get(slot.var.as_tensor()).map(Tensor::detach))
            .collect();
        // Parameters are independent, so on the CPU their norms and updates run in parallel
        // (on one thread this was a twentieth of a two-thread `small` step); the norms are
        // summed in parameter order, so the total does not depend on the split. Other devices
        // keep one thread: their ops queue on the device anyway.
        let on_cpu = self.slots.iter().all(|s| s.var.device().is_cpu());
        let squares: Result<Vec<f64>, PolicyError> = if on_cpu {
            found.par_iter().map(|g| squared_norm(g.as_ref())).collect()
        } else {
            found.iter().map(|g| squared_norm(g.as_ref())).collect()
        };
        let squares = squares?;
        self.last_grad_norms = (self.slots.iter().zip(&squares))
            .map(|(slot, sq)| (slot.name.clone(), sq.sqrt()))
            .collect();
        let grad_norm = squares.iter().sum::<f64>().sqrt();
        if !grad_norm.is_finite() {
            return Ok(OptStats {
                grad_norm,
                skipped: true,
            });
        }
        let clip = if self.grad_clip > 0.0 && grad_norm > self.grad_clip {
            self.grad_clip / (grad_norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        let hyper = AdamHyper {
            b1,
            b2,
            c1,
            c2,
            eps: self.eps,
            wd: self.weight_decay,
            clip,
        };
        let (lr, critic_lr) = (self.lr, self.critic_lr);
        let update = |(slot, g): (&mut Slot, Option<Tensor>)| -> Result<(), PolicyError> {
            let Some(g) = g else { return Ok(()) };
            let lr = if slot.critic { critic_lr } else { lr };
            if slot.var.device().is_cpu() {
                adamw_cpu(slot, &g, lr, &hyper)
            } else {
                adamw_tensors(slot, &g, lr, &hyper)
            }
        };
        if on_cpu {
            (self.slots.par_iter_mut().zip(found)).try_for_each(update)?;
        } else {
            (self.slots.iter_mut().zip(found)).try_for_each(update)?;
        }
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(OptStats {
            grad_norm,
            skipped: false,
        })
    }

    /// Per-parameter gradient L2 norms of the last `step` call, by HF name.
    pub fn last_grad_norms(&self) -> &[(String, f64)] {
        &self.last_grad_norms
    }

    /// Moments as `m.<name>` / `v.<name>` tensors, for checkpoints.
    pub(crate) fn moments(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for s in &self.slots {
            out.push((format!("m.{}", s.name), s.m.clone()));
            out.push((format!("v.{}", s.name), s.v.clone()));
        }
        out
    }

    /// Restore moments by name (shapes checked by the caller's loader).
    pub(crate) fn set_moment(&mut self, key: &str, t: Tensor) -> bool {
        for s in &mut self.slots {
            if key == format!("m.{}", s.name) && t.dims() == s.m.dims() {
                s.m = t;
                return true;
            }
            if key == format!("v.{}", s.name) && t.dims() == s.v.dims() {
                s.v = t;
                return true;
            }
        }
        false
    }
}
