//! RL math against verl: data-driven over every `rl_*/vectors.json` under the reference folder
//! (`TSR_REFERENCE_DIR`, default `../shared/reference`). Every case of a known `kind` must match
//! every output it carries (an output key this test does not check is a failure, as is an unknown
//! kind), so new files or new outputs cannot pass silently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use candle_core::{Device, Tensor, Var};
use serde_json::Value;
use tsr::algo::{
    AggMode, GaeVariant, KlKind, PpoClip, actor_loss, agg_loss, entropy_from_logits, gae_variant,
    grpo_advantages, kl_penalty, policy_loss, value_loss,
};

/// f64 math is compared at this absolute-or-relative tolerance.
const TOL_F64: f64 = 1e-9;
/// f32 tensor results are compared at this absolute-or-relative tolerance.
const TOL_F32: f64 = 1e-5;

fn reference_dir() -> PathBuf {
    std::env::var_os("TSR_REFERENCE_DIR").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference")),
        PathBuf::from,
    )
}

/// A JSON object whose keys are ticked off as they are checked, so leftovers can be reported.
struct Outputs<'a> {
    object: &'a serde_json::Map<String, Value>,
    checked: BTreeSet<String>,
}

impl<'a> Outputs<'a> {
    fn new(value: &'a Value) -> Result<Self> {
        let object = value.as_object().context("outputs is not an object")?;
        Ok(Self {
            object,
            checked: BTreeSet::new(),
        })
    }
    fn get(&mut self, key: &str) -> Result<&'a Value> {
        self.checked.insert(key.to_owned());
        self.object
            .get(key)
            .with_context(|| format!("missing output {key}"))
    }
    fn scalar(&mut self, key: &str, actual: f64, tol: f64) -> Result<()> {
        let expected = self.get(key)?.as_f64().context(key.to_owned())?;
        close(key, actual, expected, tol)
    }
    fn matrix(&mut self, key: &str, actual: &[Vec<f64>], tol: f64) -> Result<()> {
        let expected = matrix(self.get(key)?).context(key.to_owned())?;
        close_matrix(key, actual, &expected, tol)
    }
    fn vector(&mut self, key: &str, actual: &[f64], tol: f64) -> Result<()> {
        let expected: Vec<f64> = serde_json::from_value(self.get(key)?.clone())
            .with_context(|| format!("{key}: expected a [B] array of numbers"))?;
        close_matrix(key, &[actual.to_vec()], &[expected], tol)
    }
    fn finish(self) -> Result<()> {
        let unchecked: Vec<&String> = self
            .object
            .keys()
            .filter(|k| !self.checked.contains(*k))
            .collect();
        ensure!(unchecked.is_empty(), "outputs not checked: {unchecked:?}");
        Ok(())
    }
}

fn close(what: &str, actual: f64, expected: f64, tol: f64) -> Result<()> {
    ensure!(
        (actual - expected).abs() <= tol * expected.abs().max(1.0),
        "{what}: got {actual}, expected {expected} (tol {tol})"
    );
    Ok(())
}

fn close_matrix(what: &str, actual: &[Vec<f64>], expected: &[Vec<f64>], tol: f64) -> Result<()> {
    ensure!(actual.len() == expected.len(), "{what}: row count differs");
    for (b, (ra, re)) in actual.iter().zip(expected).enumerate() {
        ensure!(ra.len() == re.len(), "{what}: row {b} length differs");
        for (t, (a, e)) in ra.iter().zip(re).enumerate() {
            close(&format!("{what}[{b}][{t}]"), *a, *e, tol)?;
        }
    }
    Ok(())
}

fn matrix(v: &Value) -> Result<Vec<Vec<f64>>> {
    serde_json::from_value(v.clone()).context("expected a [B][T] array of numbers")
}

fn input<'a>(case: &'a Value, key: &str) -> Result<&'a Value> {
    case["inputs"]
        .get(key)
        .with_context(|| format!("missing input {key}"))
}

fn hyper<'a>(case: &'a Value, key: &str) -> Result<&'a Value> {
    case["hyperparams"]
        .get(key)
        .with_context(|| format!("missing hyperparameter {key}"))
}

fn hyper_f64(case: &Value, key: &str) -> Result<f64> {
    hyper(case, key)?.as_f64().context(key.to_owned())
}

fn tensor(v: &Value) -> Result<Tensor> {
    let m = matrix(v)?;
    let (rows, cols) = (m.len(), m.first().map_or(0, Vec::len));
    let flat: Vec<f32> = m.into_iter().flatten().map(|x| x as f32).collect();
    Ok(Tensor::from_vec(flat, (rows, cols), &Device::Cpu)?)
}

fn to_matrix(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    let rows: Vec<Vec<f32>> = t.to_vec2()?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_iter().map(f64::from).collect())
        .collect())
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(f64::from(t.to_scalar::<f32>()?))
}

fn agg_mode_of(case: &Value, meta: &Value) -> Result<AggMode> {
    let name = case["hyperparams"]
        .get("loss_agg_mode")
        .or_else(|| meta["hyperparams"].get("loss_agg_mode"))
        .and_then(Value::as_str)
        .unwrap_or("token-mean");
    Ok(AggMode::parse(name)?)
}

fn check_gae(case: &Value) -> Result<()> {
    let rewards = matrix(input(case, "token_level_rewards")?)?;
    let values = matrix(input(case, "values")?)?;
    let mask = matrix(input(case, "response_mask")?)?;
    let (gamma, lambda) = (hyper_f64(case, "gamma")?, hyper_f64(case, "lam")?);
    let sets = [
        ("outputs", GaeVariant::Verl),
        ("outputs_legacy_verl_pre_pr2337", GaeVariant::LegacyVerl),
        ("outputs_ragen_valid_positions", GaeVariant::Ragen),
    ];
    let known: Vec<&str> = sets.iter().map(|(k, _)| *k).collect();
    for key in case.as_object().context("case")?.keys() {
        ensure!(
            !key.starts_with("outputs") || known.contains(&key.as_str()),
            "unknown GAE output set {key}"
        );
    }
    for (key, variant) in sets {
        let Some(expected) = case.get(key) else {
            continue;
        };
        let got = gae_variant(variant, &rewards, &values, &mask, gamma, lambda, true)?;
        let mut out = Outputs::new(expected)?;
        out.matrix("advantages", &got.advantages, TOL_F64)?;
        out.matrix("returns", &got.returns, TOL_F64)?;
        if expected.get("advantages_before_whitening").is_some() {
            out.matrix("advantages_before_whitening", &got.raw_advantages, TOL_F64)?;
        }
        if expected.get("whiten_mean").is_some() {
            out.scalar("whiten_mean", got.whiten_mean, TOL_F64)?;
            out.scalar("whiten_var_unbiased", got.whiten_var, TOL_F64)?;
        }
        out.finish().with_context(|| key.to_owned())?;
    }
    Ok(())
}

fn check_grpo(case: &Value) -> Result<()> {
    let rewards = matrix(input(case, "token_level_rewards")?)?;
    let mask = matrix(input(case, "response_mask")?)?;
    let index: Vec<String> = input(case, "index")?
        .as_array()
        .context("index")?
        .iter()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .collect();
    let norm = hyper(case, "norm_adv_by_std_in_grpo")?
        .as_bool()
        .context("norm_adv_by_std_in_grpo")?;
    let got = grpo_advantages(&rewards, &mask, &index, norm, hyper_f64(case, "epsilon")?)?;
    let mut out = Outputs::new(&case["outputs"])?;
    out.matrix("advantages", &got.advantages, TOL_F64)?;
    // verl returns the advantages as the returns.
    out.matrix("returns", &got.advantages, TOL_F64)?;
    out.vector("scores", &got.scores, TOL_F64)?;
    out.vector("per_sequence_scalar", &got.scalars, TOL_F64)?;
    out.finish()
}

fn all_modes(
    out: &mut Outputs,
    key: &str,
    per_mode: impl Fn(AggMode) -> Result<f64>,
) -> Result<()> {
    let by_mode = out.get(key)?.as_object().context(key.to_owned())?;
    for (name, expected) in by_mode {
        let got = per_mode(AggMode::parse(name)?)?;
        close(
            &format!("{key}.{name}"),
            got,
            expected.as_f64().context("mode")?,
            TOL_F32,
        )?;
    }
    Ok(())
}

fn pg_loss_of(case: &Value, mode: AggMode) -> Result<(Var, tsr::algo::PolicyLossOut)> {
    let logp = Var::from_tensor(&tensor(input(case, "log_prob")?)?)?;
    let clip = PpoClip {
        low: hyper_f64(case, "clip_ratio_low")?,
        high: hyper_f64(case, "clip_ratio_high")?,
        dual_c: hyper_f64(case, "clip_ratio_c")?,
    };
    let out = policy_loss(
        logp.as_tensor(),
        &tensor(input(case, "old_log_prob")?)?,
        &tensor(input(case, "advantages")?)?,
        &tensor(input(case, "response_mask")?)?,
        &clip,
        mode,
    )?;
    Ok((logp, out))
}

fn check_policy_loss(case: &Value, meta: &Value) -> Result<()> {
    let (_, got) = pg_loss_of(case, agg_mode_of(case, meta)?)?;
    let mut out = Outputs::new(&case["outputs"])?;
    out.scalar("pg_loss", scalar(&got.loss)?, TOL_F32)?;
    out.scalar("pg_clipfrac", got.clipfrac, TOL_F32)?;
    out.scalar("ppo_kl", got.ppo_kl, TOL_F32)?;
    out.scalar("pg_clipfrac_lower", got.clipfrac_lower, TOL_F32)?;
    out.matrix("pg_losses_per_token", &to_matrix(&got.per_token)?, TOL_F32)?;
    out.matrix("ratio", &to_matrix(&got.ratio)?, TOL_F32)?;
    all_modes(&mut out, "pg_loss_by_agg_mode", |mode| {
        scalar(&pg_loss_of(case, mode)?.1.loss)
    })?;
    let token_mean = pg_loss_of(case, AggMode::TokenMean)?;
    let grads = token_mean.1.loss.backward()?;
    let grad = grads
        .get(&token_mean.0)
        .context("no gradient for log_prob")?;
    out.matrix(
        "grad_pg_loss_wrt_log_prob_token_mean",
        &to_matrix(grad)?,
        TOL_F32,
    )?;
    out.finish()
}

fn check_value_loss(case: &Value, meta: &Value) -> Result<()> {
    let vpred = Var::from_tensor(&tensor(input(case, "vpreds")?)?)?;
    let values = tensor(input(case, "values")?)?;
    let returns = tensor(input(case, "returns")?)?;
    let mask = tensor(input(case, "response_mask")?)?;
    let cliprange = hyper_f64(case, "cliprange_value")?;
    let run = |mode| value_loss(vpred.as_tensor(), &values, &returns, &mask, cliprange, mode);
    let got = run(agg_mode_of(case, meta)?)?;
    let mut out = Outputs::new(&case["outputs"])?;
    out.scalar("vf_loss", scalar(&got.loss)?, TOL_F32)?;
    out.scalar("vf_clipfrac", got.clipfrac, TOL_F32)?;
    out.matrix(
        "clipped_vf_losses_per_token",
        &to_matrix(&got.per_token)?,
        TOL_F32,
    )?;
    all_modes(&mut out, "vf_loss_by_agg_mode", |mode| {
        scalar(&run(mode)?.loss)
    })?;
    let grads = got.loss.backward()?;
    let grad = grads.get(&vpred).context("no gradient for vpreds")?;
    out.matrix("grad_vf_loss_wrt_vpreds", &to_matrix(grad)?, TOL_F32)?;
    out.finish()
}

fn logits_tensor(case: &Value) -> Result<Tensor> {
    let cube: Vec<Vec<Vec<f64>>> = serde_json::from_value(input(case, "logits")?.clone())?;
    let (b, t) = (cube.len(), cube.first().map_or(0, Vec::len));
    let v = cube.first().and_then(|r| r.first()).map_or(0, Vec::len);
    let flat: Vec<f32> = cube
        .into_iter()
        .flatten()
        .flatten()
        .map(|x| x as f32)
        .collect();
    Ok(Tensor::from_vec(flat, (b, t, v), &Device::Cpu)?)
}

fn entropy_loss_of(case: &Value, mode: AggMode) -> Result<(Var, Tensor, Tensor)> {
    let logits = Var::from_tensor(&logits_tensor(case)?)?;
    let per_token = entropy_from_logits(logits.as_tensor())?;
    let loss = agg_loss(&per_token, &tensor(input(case, "response_mask")?)?, mode)?;
    Ok((logits, per_token, loss))
}

fn check_entropy(case: &Value, meta: &Value) -> Result<()> {
    let (logits, per_token, loss) = entropy_loss_of(case, agg_mode_of(case, meta)?)?;
    let mut out = Outputs::new(&case["outputs"])?;
    out.scalar("entropy_loss", scalar(&loss)?, TOL_F32)?;
    out.matrix("entropy_per_token", &to_matrix(&per_token)?, TOL_F32)?;
    let grads = loss.backward()?;
    let grad = grads.get(&logits).context("no gradient for logits")?;
    // Compared as [B·T, V] rows.
    let expected: Vec<Vec<Vec<f64>>> =
        serde_json::from_value(out.get("grad_entropy_loss_wrt_logits")?.clone())?;
    let expected: Vec<Vec<f64>> = expected.into_iter().flatten().collect();
    close_matrix(
        "grad_entropy",
        &to_matrix(&grad.flatten_to(1)?)?,
        &expected,
        TOL_F32,
    )?;
    out.finish()
}

/// The actor total needs the policy loss and entropy of sibling cases: the policy case with the
/// same `log_prob` input, and the file's entropy case; both are recomputed, not read.
fn check_kl(case: &Value, cases: &[Value], meta: &Value) -> Result<()> {
    let logp = tensor(input(case, "log_prob")?)?;
    let ref_logp = tensor(input(case, "ref_log_prob")?)?;
    let mask = tensor(input(case, "response_mask")?)?;
    let mode = agg_mode_of(case, meta)?;
    let mut out = Outputs::new(&case["outputs"])?;
    let by_kind = out.get("kl")?.as_object().context("kl")?;
    for (name, expected) in by_kind {
        let per_token = kl_penalty(&logp, &ref_logp, KlKind::parse(name)?)?;
        let mut kind_out = Outputs::new(expected)?;
        kind_out.matrix("per_token", &to_matrix(&per_token)?, TOL_F32)?;
        let mean = scalar(&agg_loss(&per_token, &mask, AggMode::TokenMean)?)?;
        kind_out.scalar("kl_loss_token_mean", mean, TOL_F32)?;
        kind_out.finish().with_context(|| format!("kl.{name}"))?;
    }
    let policy_case = cases
        .iter()
        .find(|c| {
            c["kind"] == "policy_loss_vanilla"
                && c["inputs"]["log_prob"] == case["inputs"]["log_prob"]
        })
        .context("no policy_loss_vanilla case with the same log_prob for the actor total")?;
    let entropy_case = cases
        .iter()
        .find(|c| c["kind"] == "entropy_loss")
        .context("no entropy_loss case for the actor total")?;
    let pg = pg_loss_of(policy_case, mode)?.1.loss;
    let entropy = entropy_loss_of(entropy_case, mode)?.2;
    let kl_kind = KlKind::parse(
        hyper(case, "kl_loss_type")?
            .as_str()
            .context("kl_loss_type")?,
    )?;
    let kl = agg_loss(&kl_penalty(&logp, &ref_logp, kl_kind)?, &mask, mode)?;
    let total = actor_loss(
        &pg,
        &entropy,
        Some(&kl),
        hyper_f64(case, "entropy_coeff")?,
        hyper_f64(case, "kl_loss_coef")?,
    )?;
    out.scalar("actor_policy_loss_total", scalar(&total)?, TOL_F32)?;
    out.finish()
}

fn check_case(case: &Value, cases: &[Value], meta: &Value) -> Result<()> {
    match case["kind"].as_str().unwrap_or("") {
        "gae" => check_gae(case),
        "grpo" => check_grpo(case),
        "policy_loss_vanilla" => check_policy_loss(case, meta),
        "value_loss" => check_value_loss(case, meta),
        "entropy_loss" => check_entropy(case, meta),
        "kl_loss" => check_kl(case, cases, meta),
        other => bail!("unknown case kind {other:?}: teach tests/rl_conformance.rs to check it"),
    }
}

fn rl_sets(root: &Path) -> Result<Vec<PathBuf>> {
    let mut sets: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("reading reference folder {}", root.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("rl_"))
        })
        .collect();
    sets.sort();
    Ok(sets)
}

#[test]
fn every_rl_reference_case_matches_verl() -> Result<()> {
    let root = reference_dir();
    let sets = rl_sets(&root)?;
    ensure!(!sets.is_empty(), "no rl_* folder under {}", root.display());
    let mut failures = Vec::new();
    let mut ran = 0;
    for set in sets {
        let file = set.join("vectors.json");
        let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
        let doc: Value = serde_json::from_str(&text).with_context(|| file.display().to_string())?;
        let cases = doc["cases"]
            .as_array()
            .ok_or_else(|| anyhow!("{}: no cases", file.display()))?;
        for case in cases {
            let name = format!(
                "{}:{} ({})",
                set.file_name().unwrap_or_default().to_string_lossy(),
                case["name"].as_str().unwrap_or("?"),
                case["kind"].as_str().unwrap_or("?")
            );
            ran += 1;
            match check_case(case, cases, &doc["meta"]) {
                Ok(()) => println!("ok   {name}"),
                Err(e) => {
                    println!("FAIL {name}: {e:#}");
                    failures.push(format!("{name}: {e:#}"));
                }
            }
        }
    }
    println!("{ran} RL cases run, {} failed", failures.len());
    ensure!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    Ok(())
}
