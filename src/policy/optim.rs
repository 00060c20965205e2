//! AdamW with two learning rates (actor, critic), global-norm clipping and a skip on non-finite
//! gradients. Hand-written rather than `candle_nn::AdamW` because that one has one learning
//! rate for all parameters and keeps its moments private, so they could not be checkpointed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{Tensor, Var};

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

/// The same update as the tensor version, in one pass over memory (the tensor version costs
/// ten candle ops per parameter, which dominates small models' steps).
fn adamw_cpu(slot: &mut Slot, g: &Tensor, lr: f64, h: &AdamHyper) -> Result<(), PolicyError> {
    let flat =
        |t: &Tensor| -> Result<Vec<f32>, PolicyError> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    let (gv, mut m, mut v, mut p) = (
        flat(g)?,
        flat(&slot.m)?,
        flat(&slot.v)?,
        flat(slot.var.as_tensor())?,
    );
    let (b1, b2, clip) = (h.b1 as f32, h.b2 as f32, h.clip as f32);
    let (c1, c2, eps) = (h.c1 as f32, h.c2 as f32, h.eps as f32);
    let (lr32, decay) = (lr as f32, (1.0 - lr * h.wd) as f32);
    for i in 0..p.len() {
        let g = gv[i] * clip;
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        let update = (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        p[i] = p[i] * decay - lr32 * update;
    }
    let shape = slot.var.shape().clone();
    let dev = slot.var.device().clone();
    slot.m = Tensor::from_vec(m, shape.clone(), &dev)?;
    slot.v = Tensor::from_vec(v, shape.clone(), &dev)?;
    slot.var.set(&Tensor::from_vec(p, shape, &dev)?)?;
    Ok(())
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
        let mut total = 0.0f64;
        let mut found = Vec::with_capacity(self.slots.len());
        self.last_grad_norms.clear();
        for slot in &self.slots {
            let g = grads.get(slot.var.as_tensor()).map(Tensor::detach);
            let sq = match &g {
                Some(g) if g.device().is_cpu() => g
                    .flatten_all()?
                    .to_vec1::<f32>()?
                    .iter()
                    .map(|&x| (x as f64) * (x as f64))
                    .sum(),
                Some(g) => g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64,
                None => 0.0,
            };
            total += sq;
            self.last_grad_norms.push((slot.name.clone(), sq.sqrt()));
            found.push(g);
        }
        let grad_norm = total.sqrt();
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
        for (slot, g) in self.slots.iter_mut().zip(found) {
            let Some(g) = g else { continue };
            let lr = if slot.critic { self.critic_lr } else { self.lr };
            if slot.var.device().is_cpu() {
                adamw_cpu(slot, &g, lr, &hyper)?;
                continue;
            }
            let g = if clip < 1.0 { (g * clip)? } else { g };
            slot.m = ((&slot.m * b1)? + (&g * (1.0 - b1))?)?;
            slot.v = ((&slot.v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&slot.v / c2)?.sqrt()? + self.eps)?;
            let update = ((&slot.m / c1)? / denom)?;
            let decayed = (slot.var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            slot.var.set(&(decayed - (update * lr)?)?)?;
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
