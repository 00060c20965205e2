//! `Policy`: weights, value head, device, tokenizer and generation limits in one `Send` value.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use super::infer::InferWeights;
use super::prompt_cache::PromptStore;
use super::{Arch, ModelSection, Params, PolicyError, Tokenizer, Weights, preset_arch};

/// Generation limits taken from `[model]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Prompt + reply tokens at most; also the length of the RoPE tables.
    pub context_limit: usize,
    /// Default reply length for requests that give 0.
    pub max_new_tokens: usize,
    /// Keep the tail of an over-long prompt instead of failing.
    pub truncate_long_prompts: bool,
    /// Prompt caches kept between generation calls.
    pub prompt_cache_entries: usize,
}

/// The policy network.
pub struct Policy {
    pub(crate) arch: Arch,
    pub(crate) params: Params,
    pub(crate) device: Device,
    /// RoPE tables `[context_limit, head_dim]` on `device`, for the training forward.
    pub(crate) cos: Tensor,
    pub(crate) sin: Tensor,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) limits: Limits,
    /// Bumped whenever the weights change (optimizer step, `load_weights`), so the inference
    /// copy below is rebuilt lazily.
    pub(crate) version: Arc<AtomicU64>,
    /// Use the fused CPU ops (with hand-written backward) in the training forward; false uses
    /// composite candle ops (any device). On by default on CPU.
    fused: std::sync::atomic::AtomicBool,
    /// RoPE tables as flat vectors (for the fused ops).
    rope_vec: (Arc<Vec<f32>>, Arc<Vec<f32>>),
    /// CPU inference layout of the weights, tagged with the `version` it was built from.
    infer: Mutex<Option<(u64, Arc<InferWeights>)>>,
    /// When set, [`Policy::generate`] only produces replies of this grammar (see
    /// [`super::grammar`]); the learner trains only its choice positions.
    reply_grammar: Option<Arc<super::ReplyGrammar>>,
    /// Recent prompts' caches for the current weights (see [`super::prompt_cache`]).
    pub(crate) prompts: Mutex<PromptStore>,
}

/// Where the tensors live, parsed from `[model] device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

/// Parse "cpu" or "cuda:N"; CUDA without the `cuda` cargo feature is an error.
pub fn parse_device(name: &str) -> Result<DeviceSpec, PolicyError> {
    let err = |m: &str| PolicyError::Device(name.to_owned(), m.to_owned());
    match name.trim() {
        "cpu" => Ok(DeviceSpec::Cpu),
        other => {
            let idx = other
                .strip_prefix("cuda:")
                .or_else(|| (other == "cuda").then_some("0"))
                .ok_or_else(|| err("expected \"cpu\" or \"cuda:N\""))?
                .parse::<usize>()
                .map_err(|_| err("expected \"cuda:N\" with N a GPU index"))?;
            if cfg!(feature = "cuda") {
                Ok(DeviceSpec::Cuda(idx))
            } else {
                Err(err(
                    "this build has no CUDA support; rebuild with `--features cuda`",
                ))
            }
        }
    }
}

pub(crate) fn open_device(name: &str) -> Result<Device, PolicyError> {
    match parse_device(name)? {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Cuda(i) => {
            Device::new_cuda(i).map_err(|e| PolicyError::Device(name.to_owned(), e.to_string()))
        }
    }
}

impl Policy {
    /// A from-scratch preset (`s.path` empty; weights from `seed`, vocabulary from
    /// `tokenizer`) or a Hugging Face folder (`config.json` + `model.safetensors`).
    pub fn from_section(
        s: &ModelSection,
        tokenizer: &Tokenizer,
        seed: u64,
    ) -> Result<Policy, PolicyError> {
        let device = open_device(&s.device)?;
        if s.path.is_empty() {
            let arch = preset_arch(&s.preset, tokenizer.vocab_size(), s.context_limit)?;
            let params = Params::init(&arch, seed, &device)?;
            return Self::assemble(arch, params, device, tokenizer, s);
        }
        let dir = Path::new(&s.path);
        let arch = Arch::from_config_json(&dir.join("config.json"))?;
        let file = dir.join("model.safetensors");
        if !file.exists() && dir.join("model.safetensors.index.json").exists() {
            return Err(PolicyError::bad_file(
                file,
                "sharded checkpoints are not supported; merge the shards into model.safetensors",
            ));
        }
        let params = Params::load(&arch, &file, &device, true, true)?;
        Self::assemble(arch, params, device, tokenizer, s)
    }

    pub(crate) fn assemble(
        arch: Arch,
        params: Params,
        device: Device,
        tokenizer: &Tokenizer,
        s: &ModelSection,
    ) -> Result<Policy, PolicyError> {
        if tokenizer.vocab_size() > arch.vocab_size {
            return Err(PolicyError::Config(format!(
                "tokenizer has {} ids but the model's embedding has only {} rows (model.embed_tokens.weight)",
                tokenizer.vocab_size(),
                arch.vocab_size
            )));
        }
        let (cos, sin) =
            super::ops::rope_tables(arch.head_dim, arch.rope_theta, s.context_limit, &device)?;
        let (cv, sv) = super::ops::rope_tables_vec(arch.head_dim, arch.rope_theta, s.context_limit);
        Ok(Policy {
            fused: std::sync::atomic::AtomicBool::new(device.is_cpu()),
            arch,
            params,
            device,
            cos,
            sin,
            tokenizer: tokenizer.clone(),
            limits: Limits {
                context_limit: s.context_limit,
                max_new_tokens: s.max_new_tokens,
                truncate_long_prompts: s.truncate_long_prompts,
                prompt_cache_entries: s.prompt_cache_entries,
            },
            prompts: Mutex::new(PromptStore::new(s.prompt_cache_entries)),
            version: Arc::new(AtomicU64::new(0)),
            rope_vec: (Arc::new(cv), Arc::new(sv)),
            infer: Mutex::new(None),
            reply_grammar: None,
        })
    }

    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Constrain every later [`Policy::generate`] to `grammar` (None: free decoding).
    pub fn set_reply_grammar(&mut self, grammar: Option<Arc<super::ReplyGrammar>>) {
        self.reply_grammar = grammar;
    }

    pub fn reply_grammar(&self) -> Option<&Arc<super::ReplyGrammar>> {
        self.reply_grammar.as_ref()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Choose fused CPU ops (true, CPU only) or composite candle ops for the training forward;
    /// both give the same values and gradients up to float rounding.
    pub fn set_fused_ops(&self, on: bool) {
        self.fused
            .store(on && self.device.is_cpu(), Ordering::SeqCst);
    }

    pub(crate) fn fused_ops(&self) -> bool {
        self.fused.load(Ordering::SeqCst)
    }

    pub(crate) fn rope_vec(&self) -> (&[f32], &[f32]) {
        (&self.rope_vec.0, &self.rope_vec.1)
    }

    pub(crate) fn rope_len(&self) -> usize {
        self.limits.context_limit
    }

    /// Deep copy of every tensor, for publishing to the inference side.
    pub fn snapshot(&self) -> Result<Weights, PolicyError> {
        self.params.snapshot()
    }

    /// Overwrite the weights with `w` (same names and shapes).
    pub fn load_weights(&mut self, w: &Weights) -> Result<(), PolicyError> {
        self.params.assign(w)?;
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn check_ids(&self, ids: impl Iterator<Item = u32>) -> Result<(), PolicyError> {
        for id in ids {
            if id as usize >= self.arch.vocab_size {
                return Err(PolicyError::Input(format!(
                    "token id {id} is outside the model vocabulary ({})",
                    self.arch.vocab_size
                )));
            }
        }
        Ok(())
    }

    /// The inference layout of the current weights, rebuilt when they changed.
    /// The prompt-cache store, emptied first if the weights changed since it was filled.
    pub(crate) fn prompt_store(&self) -> std::sync::MutexGuard<'_, PromptStore> {
        let mut store = self.prompts.lock().unwrap_or_else(|p| p.into_inner());
        store.set_version(self.version.load(Ordering::SeqCst));
        store
    }

    /// Prompt tokens found in the prompt-cache store so far (not prefilled again).
    pub fn prompt_tokens_reused(&self) -> u64 {
        self.prompts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reused_tokens
    }

    pub(crate) fn infer_weights(&self) -> Result<Arc<InferWeights>, PolicyError> {
        let now = self.version.load(Ordering::SeqCst);
        let mut guard = self.infer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((v, w)) = guard.as_ref()
            && *v == now
        {
            return Ok(w.clone());
        }
        let w = Arc::new(InferWeights::build(
            &self.arch,
            &self.params,
            self.rope_len(),
        )?);
        *guard = Some((now, w.clone()));
        Ok(w)
    }

    /// Log-probs `[T]` of `ids` from the incremental (KV-cache) path, fed in chunks of
    /// `chunk` tokens; entry 0 is 0. For checking the cache against the full forward.
    pub fn incremental_logprobs(&self, ids: &[u32], chunk: usize) -> Result<Vec<f32>, PolicyError> {
        let w = self.infer_weights()?;
        let v = self.arch.vocab_size;
        let mut cache = vec![super::infer::SeqCache::default()];
        let mut out = vec![0.0];
        let mut start = 0;
        while start + 1 < ids.len() {
            let end = (start + chunk.max(1)).min(ids.len() - 1);
            let logits = w.forward(&mut cache, &[&ids[start..end]], true)?;
            for (j, t) in (start..end).enumerate() {
                out.push(super::sampling::logprob_of(
                    &logits[j * v..(j + 1) * v],
                    ids[t + 1],
                ));
            }
            start = end;
        }
        Ok(out)
    }
}
