//! The trainable tensors under their Hugging Face names, seeded initialisation, and loading
//! with checks of names, shapes and dtypes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Arch, PolicyError};

/// Name of the PPO critic's projection (scalar per position) in checkpoints.
pub const VALUE_W: &str = "value_head.weight";
pub const VALUE_B: &str = "value_head.bias";

/// All trainable tensors, in a fixed order (the order of [`Params::names`]).
#[derive(Debug, Clone)]
pub struct Params {
    /// HF name of each tensor, parallel to `vars`.
    names: Vec<String>,
    /// The tensors; candle `Var`s so that backward reaches them.
    vars: Vec<Var>,
    /// Index by name, for the forward pass.
    index: HashMap<String, usize>,
}

/// A deep copy of every tensor (decoder and value head), e.g. for publishing to actors.
#[derive(Debug, Clone)]
pub struct Weights {
    /// (HF name, tensor) in [`Params`] order.
    pub tensors: Vec<(String, Tensor)>,
}

/// Names and shapes of every tensor the architecture needs, value head last.
pub fn expected_shapes(a: &Arch) -> Vec<(String, Vec<usize>)> {
    let (h, d) = (a.hidden_size, a.head_dim);
    let (q, kv, i) = (a.num_heads * d, a.num_kv_heads * d, a.intermediate_size);
    let mut out = vec![(
        "model.embed_tokens.weight".to_owned(),
        vec![a.vocab_size, h],
    )];
    for l in 0..a.num_layers {
        let p = format!("model.layers.{l}");
        out.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            (format!("{p}.self_attn.q_proj.bias"), vec![q]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.k_proj.bias"), vec![kv]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.v_proj.bias"), vec![kv]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
    }
    out.push(("model.norm.weight".to_owned(), vec![h]));
    if !a.tie_word_embeddings {
        out.push(("lm_head.weight".to_owned(), vec![a.vocab_size, h]));
    }
    out.push((VALUE_W.to_owned(), vec![1, h]));
    out.push((VALUE_B.to_owned(), vec![1]));
    out
}

/// Standard normal by Box-Muller: one line, where rand_distr (for rand 0.10) is not a dependency.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

impl Params {
    fn from_tensors(list: Vec<(String, Tensor)>) -> Result<Params, PolicyError> {
        let mut names = Vec::with_capacity(list.len());
        let mut vars = Vec::with_capacity(list.len());
        for (n, t) in list {
            names.push(n);
            vars.push(Var::from_tensor(&t)?);
        }
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        Ok(Params { names, vars, index })
    }

    /// Fresh weights from `seed`: matrices ~ N(0, 0.02), norms 1, biases 0, value head 0
    /// (so the critic starts at 0 while its gradient is not).
    pub fn init(a: &Arch, seed: u64, device: &Device) -> Result<Params, PolicyError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut list = Vec::new();
        for (name, shape) in expected_shapes(a) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.ends_with("norm.weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") || name.starts_with("value_head") {
                vec![0.0; n]
            } else {
                (0..n).map(|_| 0.02 * normal(&mut rng)).collect()
            };
            list.push((name, Tensor::from_vec(data, shape, device)?));
        }
        Self::from_tensors(list)
    }

    /// Load a safetensors file holding exactly the tensors of `a` (the value head may be absent
    /// when `value_head_optional`; it then starts at 0). Float16/bfloat16 files are widened to
    /// f32 when `allow_cast`; otherwise every tensor must be f32.
    pub fn load(
        a: &Arch,
        file: &Path,
        device: &Device,
        value_head_optional: bool,
        allow_cast: bool,
    ) -> Result<Params, PolicyError> {
        let mut found = candle_core::safetensors::load(file, device)
            .map_err(|e| PolicyError::bad_file(file, format!("cannot read safetensors: {e}")))?;
        let mut list = Vec::new();
        for (name, shape) in expected_shapes(a) {
            let is_value = name.starts_with("value_head");
            let t = match found.remove(&name) {
                Some(t) => t,
                None if is_value && value_head_optional => {
                    Tensor::zeros(shape.as_slice(), DType::F32, device)?
                }
                None => {
                    return Err(PolicyError::bad_tensor(file, name, "missing"));
                }
            };
            if t.dims() != shape.as_slice() {
                return Err(PolicyError::bad_tensor(
                    file,
                    name,
                    format!("shape {:?}, expected {shape:?}", t.dims()),
                ));
            }
            let t = match t.dtype() {
                DType::F32 => t,
                DType::F16 | DType::BF16 if allow_cast => t.to_dtype(DType::F32)?,
                other => {
                    return Err(PolicyError::bad_tensor(
                        file,
                        name,
                        format!("dtype {other:?}, expected F32"),
                    ));
                }
            };
            list.push((name, t));
        }
        if let Some(extra) = found.keys().min() {
            return Err(PolicyError::bad_tensor(
                file,
                extra.clone(),
                "unexpected tensor (not part of this architecture)",
            ));
        }
        Self::from_tensors(list)
    }

    /// Write every tensor (HF names, value head included) to `file` as f32 safetensors.
    pub fn save(&self, file: &Path) -> Result<(), PolicyError> {
        let map: HashMap<String, Tensor> = self
            .names
            .iter()
            .zip(&self.vars)
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&map, file)
            .map_err(|e| PolicyError::bad_file(file, format!("cannot write safetensors: {e}")))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// The tensor called `name` (tracked for backward).
    pub fn get(&self, name: &str) -> Result<&Tensor, PolicyError> {
        self.index
            .get(name)
            .map(|&i| self.vars[i].as_tensor())
            .ok_or_else(|| PolicyError::Config(format!("no parameter {name}")))
    }

    /// Deep copy of every tensor.
    pub fn snapshot(&self) -> Result<Weights, PolicyError> {
        let tensors = self
            .names
            .iter()
            .zip(&self.vars)
            .map(|(n, v)| Ok((n.clone(), v.as_tensor().copy()?.detach())))
            .collect::<Result<_, PolicyError>>()?;
        Ok(Weights { tensors })
    }

    /// Overwrite every tensor from `w`, which must have the same names and shapes.
    pub fn assign(&self, w: &Weights) -> Result<(), PolicyError> {
        if w.tensors.len() != self.names.len() {
            return Err(PolicyError::Input(format!(
                "weights have {} tensors, the policy {}",
                w.tensors.len(),
                self.names.len()
            )));
        }
        for ((name, t), (own, var)) in w.tensors.iter().zip(self.names.iter().zip(&self.vars)) {
            if name != own || t.dims() != var.dims() {
                return Err(PolicyError::Input(format!(
                    "weights tensor {name} {:?} does not match policy tensor {own} {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }
}
