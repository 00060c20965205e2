//! Checkpoints: a self-contained folder a Hugging Face loader can also read.
//!
//! `model.safetensors` (HF names + value head), `config.json`, `tokenizer.json`,
//! `optimizer.safetensors` (AdamW moments), and `training_state.json` (optimizer step, a hash
//! of the model settings, and the trainer's own state: step, policy version, RNG states...).
//! Each file is written under a temporary name and renamed into place; `training_state.json`
//! goes last, so its presence marks a complete checkpoint.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::{Arch, ModelSection, Params, Policy, PolicyError, PolicyOptimizer, Tokenizer};

const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const STATE: &str = "training_state.json";

/// FNV-1a of the model settings that must match on resume (stable across Rust versions,
/// unlike `DefaultHasher`; one short loop instead of a hashing dependency).
fn settings_hash(arch: &Arch) -> String {
    let text = serde_json::to_string(arch).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Files whose CRC-32 is recorded in `training_state.json` and checked on load.
const CHECKED: [&str; 4] = [MODEL, "config.json", "tokenizer.json", OPTIMIZER];

fn checksum(path: &Path) -> Result<String, PolicyError> {
    let bytes = std::fs::read(path).map_err(|e| PolicyError::io(path, e))?;
    Ok(format!("{:08x}", crc32fast::hash(&bytes)))
}

/// Compare each file against the checksums saved with it (checkpoints without them pass).
fn verify_checksums(dir: &Path, meta: &serde_json::Value) -> Result<(), PolicyError> {
    let Some(sums) = meta.get("checksums").and_then(|c| c.as_object()) else {
        return Ok(());
    };
    for (name, want) in sums {
        let path = dir.join(name);
        let got = checksum(&path)?;
        if Some(got.as_str()) != want.as_str() {
            return Err(PolicyError::bad_file(
                &path,
                format!(
                    "checksum {got} differs from the {want} saved with it: the file is damaged"
                ),
            ));
        }
    }
    Ok(())
}

fn write_atomic(
    path: &Path,
    f: impl FnOnce(&Path) -> Result<(), PolicyError>,
) -> Result<(), PolicyError> {
    let tmp = path.with_extension("tmp");
    f(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| PolicyError::io(path, e))
}

impl Policy {
    /// Save weights, tokenizer, optimizer moments and `state` (the trainer's JSON) to `dir`.
    pub fn save_checkpoint(
        &self,
        dir: &Path,
        opt: &PolicyOptimizer,
        state: &serde_json::Value,
    ) -> Result<(), PolicyError> {
        std::fs::create_dir_all(dir).map_err(|e| PolicyError::io(dir, e))?;
        // Remove the completion marker first so a crash mid-save never leaves a checkpoint that
        // looks complete but mixes old and new files.
        let state_path = dir.join(STATE);
        if state_path.exists() {
            std::fs::remove_file(&state_path).map_err(|e| PolicyError::io(&state_path, e))?;
        }
        write_atomic(&dir.join(MODEL), |p| self.params.save(p))?;
        let config = serde_json::to_string_pretty(&self.arch.to_config_json()).unwrap_or_default();
        write_atomic(&dir.join("config.json"), |p| {
            std::fs::write(p, &config).map_err(|e| PolicyError::io(p, e))
        })?;
        write_atomic(&dir.join("tokenizer.json"), |p| self.tokenizer.save(p))?;
        let moments: HashMap<String, Tensor> = opt.moments().into_iter().collect();
        write_atomic(&dir.join(OPTIMIZER), |p| {
            candle_core::safetensors::save(&moments, p)
                .map_err(|e| PolicyError::bad_file(p, format!("cannot write: {e}")))
        })?;
        let mut checksums = serde_json::Map::new();
        for name in CHECKED {
            checksums.insert(name.into(), checksum(&dir.join(name))?.into());
        }
        let meta = serde_json::json!({
            "checksums": checksums,
            "optimizer_step": opt.step,
            "model_hash": settings_hash(&self.arch),
            "trainer": state,
        });
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        write_atomic(&state_path, |p| {
            std::fs::write(p, &text).map_err(|e| PolicyError::io(p, e))
        })
    }

    /// Load a checkpoint written by [`Policy::save_checkpoint`]; `s` gives device, limits and
    /// optimizer settings. Returns the trainer's JSON state as saved.
    pub fn load_checkpoint(
        dir: &Path,
        s: &ModelSection,
    ) -> Result<(Policy, PolicyOptimizer, serde_json::Value), PolicyError> {
        let state_path = dir.join(STATE);
        let text =
            std::fs::read_to_string(&state_path).map_err(|e| PolicyError::io(&state_path, e))?;
        let meta: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| PolicyError::bad_file(&state_path, format!("not JSON: {e}")))?;
        verify_checksums(dir, &meta)?;
        let tokenizer = Tokenizer::load(&dir.join("tokenizer.json"))?;
        let arch = Arch::from_config_json(&dir.join("config.json"))?;
        let want = meta
            .get("model_hash")
            .and_then(|h| h.as_str())
            .unwrap_or("");
        if want != settings_hash(&arch) {
            return Err(PolicyError::bad_file(
                &state_path,
                "model_hash does not match config.json (files from different checkpoints?)",
            ));
        }
        let device = super::policy::open_device(&s.device)?;
        let params = Params::load(&arch, &dir.join(MODEL), &device, false, false)?;
        let policy = Policy::assemble(arch, params, device.clone(), &tokenizer, s)?;
        let mut opt = PolicyOptimizer::new(&policy, s)?;
        opt.step = meta
            .get("optimizer_step")
            .and_then(|x| x.as_u64())
            .unwrap_or(0);
        let opt_path = dir.join(OPTIMIZER);
        let moments = candle_core::safetensors::load(&opt_path, &device)
            .map_err(|e| PolicyError::bad_file(&opt_path, format!("cannot read: {e}")))?;
        let expected = 2 * policy.params.names().len();
        if moments.len() != expected {
            return Err(PolicyError::bad_file(
                &opt_path,
                format!("{} tensors, expected {expected}", moments.len()),
            ));
        }
        let mut names: Vec<_> = moments.into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in names {
            if t.dtype() != DType::F32 {
                return Err(PolicyError::bad_tensor(
                    &opt_path,
                    name,
                    format!("dtype {:?}, expected F32", t.dtype()),
                ));
            }
            if !opt.set_moment(&name, t) {
                return Err(PolicyError::bad_tensor(
                    &opt_path,
                    name,
                    "unknown name or wrong shape",
                ));
            }
        }
        let state = meta
            .get("trainer")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        Ok((policy, opt, state))
    }
}
