//! Building a run from a config: the environment, the tokenizer (built over the task's text for
//! from-scratch presets, loaded for pretrained folders), the policy and optimizer, the run folder;
//! or reopening all of it from a run folder's newest complete checkpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::driver::TrainState;
use super::learner::Learner;
use super::run_dir::RunDir;
use crate::config::{Config, ConfigError, ConfigIssue};
use crate::env::{TaskEnv, TaskKind};
use crate::policy::{Policy, PolicyOptimizer, ReplyGrammar, Tokenizer};
use crate::search::EpisodeSettings;
use crate::search::prompt::{PromptForm, tokenizer_corpus};

/// Everything a training run needs, before a backend is chosen.
pub struct Setup {
    pub config: Config,
    pub env: TaskEnv,
    pub learner: Learner,
    pub settings: EpisodeSettings,
    pub run: RunDir,
    pub state: TrainState,
}

/// The prompt form the config asks for ("auto": compact for from-scratch presets).
pub fn prompt_form(config: &Config) -> PromptForm {
    PromptForm::parse(&config.train.prompt_form).unwrap_or(if config.model.path.is_empty() {
        PromptForm::Compact
    } else {
        PromptForm::Chat
    })
}

pub fn episode_settings(config: &Config) -> EpisodeSettings {
    EpisodeSettings {
        rules: config.env.rules(),
        max_turns: config.env.max_turns,
        form: prompt_form(config),
        context_limit: config.model.context_limit,
        max_new_tokens: config.model.max_new_tokens,
    }
}

/// A config whose values pass their checks but whose files or sizes cannot build what it
/// names (a level file that does not exist, a catalog too small to split): still the config's
/// fault, so exit 78 like any other config problem.
fn config_problem(key: &str, problem: impl std::fmt::Display) -> anyhow::Error {
    ConfigError {
        source_name: "the configuration".into(),
        issues: vec![ConfigIssue {
            key: key.into(),
            problem: format!("{problem:#}"),
        }],
    }
    .into()
}

pub fn build_env(config: &Config) -> Result<TaskEnv> {
    let kind = TaskKind::parse(&config.env.task)?;
    TaskEnv::new(kind, config).map_err(|e| config_problem(&config.env.task, e))
}

/// A new policy: a preset over a tokenizer built from the task's text, or a pretrained folder.
pub fn build_policy(config: &Config, env: &TaskEnv) -> Result<(Policy, PolicyOptimizer)> {
    let tokenizer = if config.model.path.is_empty() {
        let corpus = tokenizer_corpus(
            env,
            prompt_form(config),
            config.env.max_actions_per_turn,
            400,
        );
        Tokenizer::build_for_corpus_sized(&corpus, config.model.tokenizer_vocab)?
    } else {
        let path = Path::new(&config.model.path).join("tokenizer.json");
        if !path.is_file() {
            let problem = format!("{} does not exist", path.display());
            return Err(config_problem("model.path", problem));
        }
        Tokenizer::load(&path).with_context(|| format!("loading {}", path.display()))?
    };
    let mut policy = Policy::from_section(&config.model, &tokenizer, config.run.seed)?;
    policy.set_reply_grammar(reply_grammar(config, env, policy.tokenizer())?);
    let optimizer = PolicyOptimizer::new(&policy, &config.model)?;
    Ok((policy, optimizer))
}

/// The grammar of `train.constrained_reply`: every reply of 1 to `max_actions_per_turn` actions
/// in the compact form, followed by the end-of-turn token.
pub fn reply_grammar(
    config: &Config,
    env: &TaskEnv,
    tokenizer: &Tokenizer,
) -> Result<Option<Arc<ReplyGrammar>>> {
    if !config.train.constrained_reply {
        return Ok(None);
    }
    let names = crate::env::Env::action_names(env);
    let mut replies: Vec<Vec<u32>> = Vec::new();
    let mut sequences: Vec<Vec<&str>> = vec![Vec::new()];
    for _ in 0..config.env.max_actions_per_turn {
        sequences = sequences
            .iter()
            .flat_map(|s| {
                names.iter().map(move |n| {
                    let mut s = s.clone();
                    s.push(n.as_str());
                    s
                })
            })
            .collect();
        for parts in &sequences {
            let mut ids = tokenizer.encode(&crate::search::answer_text(parts))?;
            ids.push(tokenizer.eos_id());
            replies.push(ids);
        }
    }
    Ok(Some(Arc::new(ReplyGrammar::new(&replies))))
}

/// Run folder name: `{task}-{algo}-{search}-{seed}`; the folder adds the time.
pub fn run_name(config: &Config) -> String {
    format!(
        "{}-{}-{}-{}",
        config.env.task,
        config.algo.kind,
        search_name(config),
        config.run.seed
    )
}

fn search_name(config: &Config) -> String {
    crate::search::strategy_name(config)
}

/// A new learner: the policy (with the format warm-up for from-scratch models) at version 0.
fn new_learner(config: &Config, env: &TaskEnv, settings: &EpisodeSettings) -> Result<Learner> {
    let (policy, mut optimizer) = build_policy(config, env)?;
    if config.model.path.is_empty() && config.train.format_warmup_steps > 0 {
        let t = std::time::Instant::now();
        optimizer.set_lrs(config.train.format_warmup_lr, config.model.critic_lr);
        let tc = &config.train;
        let loss = super::warmup::format_warmup(
            &policy,
            &mut optimizer,
            env,
            settings,
            tc.format_warmup_steps,
            tc.format_warmup_batch,
            config.run.seed,
        )?;
        optimizer.set_lrs(config.model.lr, config.model.critic_lr);
        tracing::info!(
            loss,
            seconds = t.elapsed().as_secs_f64(),
            "format warm-up done"
        );
    }
    let reference = if config.algo.kl_coef > 0.0 {
        Some(copy_of(config, &policy)?)
    } else {
        None
    };
    Ok(Learner {
        policy,
        optimizer,
        algo: config.algo.clone(),
        version: 0,
        reference,
        select_half: config.search.kind == "select",
        lr_schedule: config.model.lr_schedule(config.train.steps),
    })
}

/// An independent copy of `policy`'s current weights (the frozen KL reference).
fn copy_of(config: &Config, policy: &Policy) -> Result<Policy> {
    let mut copy = Policy::from_section(&config.model, policy.tokenizer(), config.run.seed)?;
    copy.load_weights(&policy.snapshot()?)?;
    Ok(copy)
}

fn fresh_state(config: &Config) -> TrainState {
    TrainState {
        config_hash: super::driver::config_hash(config),
        ..TrainState::default()
    }
}

/// A fresh run.
pub fn fresh(config: Config) -> Result<Setup> {
    let env = build_env(&config)?;
    let settings = episode_settings(&config);
    let learner = new_learner(&config, &env, &settings)?;
    let run = RunDir::create(
        Path::new(&config.run.out_dir),
        &run_name(&config),
        &config.to_toml(),
    )?;
    let state = fresh_state(&config);
    Ok(Setup {
        config,
        env,
        learner,
        settings,
        run,
        state,
    })
}

/// The newest complete checkpoint of a run folder.
pub fn latest_checkpoint(run: &RunDir) -> Option<PathBuf> {
    run.checkpoints().pop().map(|(_, p)| p)
}

/// What a checkpoint restores: the weights, the optimizer's moments and the trainer's state.
pub type Restored = (Policy, PolicyOptimizer, TrainState);

/// Load a checkpoint folder: policy, optimizer and the trainer state saved with it.
pub fn load_checkpoint(dir: &Path, config: &Config) -> Result<Restored> {
    let (mut policy, optimizer, state) = Policy::load_checkpoint(dir, &config.model)
        .with_context(|| format!("loading checkpoint {}", dir.display()))?;
    if config.train.constrained_reply {
        let env = build_env(config)?;
        policy.set_reply_grammar(reply_grammar(config, &env, policy.tokenizer())?);
    }
    // The driver also writes the loop state as a readable `train_state.json` beside the
    // checkpoint, which serves when the embedded copy does not parse; when that file is absent,
    // the embedded copy's own error is the one that explains the problem.
    let readable = dir.join("train_state.json");
    let state: TrainState = serde_json::from_value(state.clone())
        .map_err(anyhow::Error::from)
        .or_else(|embedded| {
            if !readable.is_file() {
                return Err(embedded);
            }
            let text = std::fs::read_to_string(&readable)?;
            serde_json::from_str(&text).map_err(anyhow::Error::from)
        })
        .with_context(|| format!("reading the trainer state of {}", dir.display()))?;
    Ok((policy, optimizer, state))
}

/// The newest complete checkpoint that loads, or None when the run has none. A newer one that
/// fails while an older one loads under the same config is damaged: it is moved aside (renamed
/// `*.corrupt`, kept for inspection) with a warning, so that pruning never keeps it in place of
/// a good one. When none loads, nothing tells a damaged one from a good one (the cause may be
/// the resumed config or the device), so nothing is moved and the resume fails with the
/// newest one's error rather than starting the run over.
fn newest_loadable_checkpoint(
    run: &RunDir,
    config: &Config,
) -> Result<Option<(PathBuf, Restored)>> {
    let mut failed: Vec<(PathBuf, anyhow::Error)> = Vec::new();
    for (_, dir) in run.checkpoints().into_iter().rev() {
        match load_checkpoint(&dir, config) {
            Ok(loaded) => {
                for (bad, e) in failed {
                    let aside = bad.with_extension("corrupt");
                    tracing::warn!(checkpoint = %bad.display(), "skipping a corrupt checkpoint: {e:#}");
                    if let Err(e) = std::fs::rename(&bad, &aside) {
                        tracing::warn!("could not move {} aside: {e}", bad.display());
                    }
                }
                return Ok(Some((dir, loaded)));
            }
            Err(e) => failed.push((dir, e)),
        }
    }
    match failed.into_iter().next() {
        None => Ok(None),
        Some((newest, e)) => Err(e.context(format!(
            "no checkpoint of this run loads under the resumed config (the newest is {}); \
             nothing was moved or truncated",
            newest.display()
        ))),
    }
}

/// Reopen a run folder at its newest complete checkpoint (or from scratch if it has none).
pub fn resume(root: &Path, overrides: &[String]) -> Result<Setup> {
    let mut run = RunDir::open(root)?;
    let config = Config::load(Some(&run.config_path()), overrides)?;
    let env = build_env(&config)?;
    let settings = episode_settings(&config);
    let Some((ckpt, (policy, optimizer, state))) = newest_loadable_checkpoint(&run, &config)?
    else {
        tracing::warn!(run = %root.display(), "no complete checkpoint; starting this run over");
        run.truncate_metrics_for_resume(0)?;
        let learner = new_learner(&config, &env, &settings)?;
        let state = fresh_state(&config);
        return Ok(Setup {
            config,
            env,
            learner,
            settings,
            run,
            state,
        });
    };
    if state.config_hash != super::driver::config_hash(&config) {
        tracing::warn!("the config differs from the one the checkpoint was trained with");
    }
    tracing::info!(checkpoint = %ckpt.display(), step = state.next_step, "resuming");
    run.truncate_metrics_for_resume(state.next_step)?;
    // The KL reference is the model as training began: rebuilt exactly (same seed, same warm-up)
    // rather than stored, so a resumed run penalises against the same weights.
    let reference = match config.algo.kl_coef > 0.0 {
        true => new_learner(&config, &env, &settings)?.reference,
        false => None,
    };
    let learner = Learner {
        policy,
        optimizer,
        algo: config.algo.clone(),
        version: state.version,
        reference,
        select_half: config.search.kind == "select",
        lr_schedule: config.model.lr_schedule(config.train.steps),
    };
    Ok(Setup {
        config,
        env,
        learner,
        settings,
        run,
        state,
    })
}

/// A run ready to train: its backend (serial or actors) and the loop's inputs.
pub struct Running {
    pub backend: Box<dyn super::driver::Backend>,
    pub config: Config,
    pub run: RunDir,
    pub state: TrainState,
}

/// Choose the backend: serial in deterministic mode, else the actor system (which gets a second
/// copy of the weights for its inference actor).
pub fn into_backend(setup: Setup, deterministic: bool) -> Result<Running> {
    let Setup {
        config,
        env,
        learner,
        settings,
        run,
        state,
    } = setup;
    let strategy = crate::search::strategy::Strategy::from_config(&config);
    let backend: Box<dyn super::driver::Backend> = if deterministic || config.run.deterministic {
        let mut serial = super::serial::SerialBackend::new(env, learner, settings, strategy);
        serial.faults = crate::faults::LearnerFaults::new(&config.faults, config.run.seed, None);
        Box::new(serial)
    } else {
        let mut inference =
            Policy::from_section(&config.model, learner.policy.tokenizer(), config.run.seed)?;
        inference.load_weights(&learner.policy.snapshot()?)?;
        inference.set_reply_grammar(learner.policy.reply_grammar().cloned());
        Box::new(crate::actors::wire(
            &config, env, learner, inference, settings, strategy,
        )?)
    };
    Ok(Running {
        backend,
        config,
        run,
        state,
    })
}
